//! The outbox: rows written with their events, fetched when due, marked, dead-lettered.

use crate::common::{TestDb, both_backends, seed_runs};
use crate::events::make_events;
use chrono::{DateTime, Duration as CDuration, Utc};
use sightline_core::Event;
use sightline_store::{OutboxState, Store};
use std::collections::HashSet;
use std::time::Duration;

fn now(s: &Store) -> DateTime<Utc> {
    DateTime::<Utc>::from(s.clock().wall())
}

async fn outbox_flow(db: &TestDb) {
    let runs = seed_runs(db, 1).await;
    let s = &db.store;
    let events = make_events(&runs, 25);
    assert_eq!(
        s.insert_events_with_outbox(&events, &["mqtt", "webhook"])
            .await
            .unwrap(),
        25
    );
    // Retried batch: no duplicate outbox rows either.
    s.insert_events_with_outbox(&events, &["mqtt", "webhook"])
        .await
        .unwrap();
    assert_eq!(s.outbox_depth("mqtt").await.unwrap().pending, 25);
    assert_eq!(s.outbox_depth("webhook").await.unwrap().pending, 25);
    assert_eq!(s.outbox_depth("nowhere").await.unwrap().pending, 0);

    // In order, with the event as payload.
    let due = s.fetch_due("mqtt", 10, now(s)).await.unwrap();
    assert_eq!(due.len(), 10);
    assert!(due.windows(2).all(|w| w[0].id < w[1].id));
    let first: Event = serde_json::from_value(due[0].payload.clone()).unwrap();
    assert_eq!(first, events[0]);
    assert!(
        due.iter()
            .all(|r| r.state == OutboxState::Pending && r.sink == "mqtt")
    );

    assert_eq!(
        s.mark_delivered(&due.iter().map(|r| r.id).collect::<Vec<_>>())
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        s.mark_delivered(&[due[0].id]).await.unwrap(),
        0,
        "already delivered"
    );
    assert_eq!(s.outbox_depth("mqtt").await.unwrap().pending, 15);

    // A failure postpones the row; after enough failures it is dead.
    let next = s.fetch_due("mqtt", 1, now(s)).await.unwrap().remove(0);
    s.mark_failed(
        next.id,
        now(s) + CDuration::seconds(10),
        "broker down",
        false,
    )
    .await
    .unwrap();
    let due = s.fetch_due("mqtt", 100, now(s)).await.unwrap();
    assert_eq!(due.len(), 14);
    assert!(due.iter().all(|r| r.id != next.id), "not due yet");
    db.advance(Duration::from_secs(11));
    let retried = s.fetch_due("mqtt", 1, now(s)).await.unwrap().remove(0);
    assert_eq!(
        (retried.id, retried.attempts, retried.last_error.as_deref()),
        (next.id, 1, Some("broker down"))
    );
    s.mark_failed(retried.id, now(s), "still down", true)
        .await
        .unwrap();
    let depth = s.outbox_depth("mqtt").await.unwrap();
    assert_eq!((depth.pending, depth.dead), (14, 1));
    let dead = s.list_dead_letters(Some("mqtt"), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].state, dead[0].attempts), (OutboxState::Dead, 2));
    assert!(
        s.list_dead_letters(Some("webhook"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.mark_failed(dead[0].id, now(s), "x", false).await.is_err(),
        "dead rows are final"
    );
    assert_eq!(s.requeue_dead_letters(&[dead[0].id]).await.unwrap(), 1);
    assert_eq!(
        s.outbox_depth("mqtt").await.unwrap(),
        sightline_store::OutboxDepth {
            pending: 15,
            dead: 0
        }
    );

    // Two delivery tasks claiming concurrently never get the same row.
    let other = db.open_another().await;
    let t = now(s);
    let (a, b) = tokio::join!(
        s.claim_due("webhook", 15, t, Duration::from_secs(30)),
        other.claim_due("webhook", 15, t, Duration::from_secs(30)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids: HashSet<_> = a.iter().chain(&b).map(|r| r.id).collect();
    assert_eq!(ids.len(), a.len() + b.len(), "no row handed out twice");
    assert_eq!(ids.len(), 25);
    assert!(
        s.claim_due("webhook", 100, t, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "hidden"
    );
    s.mark_delivered(&a.iter().map(|r| r.id).collect::<Vec<_>>())
        .await
        .unwrap();
    db.advance(Duration::from_secs(31));
    let again = s
        .claim_due("webhook", 100, now(s), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), b.len(), "unacknowledged rows come back");

    // Retention of delivered rows.
    db.advance(Duration::from_secs(60));
    assert_eq!(
        s.delete_delivered_before(now(s)).await.unwrap(),
        10 + a.len() as u64
    );
}

async fn routed_outbox(db: &TestDb) {
    let runs = seed_runs(db, 1).await;
    let s = &db.store;
    let events = make_events(&runs, 12);
    let n = s
        .insert_events_routed(&events, |e| {
            if e.body.class.as_deref() == Some("person") {
                vec!["people-hook".to_owned()]
            } else {
                vec![]
            }
        })
        .await
        .unwrap();
    assert_eq!(n, 12);
    assert_eq!(s.outbox_depth("people-hook").await.unwrap().pending, 6);
}

both_backends!(outbox_flow, routed_outbox);
