//! Event batches, filters, cursor pagination and retention.

use crate::common::{TestDb, both_backends, seed_runs};
use chrono::{DateTime, Utc};
use sightline_core::ErrorKind;
use sightline_core::error::Classify;
use sightline_core::event::Level;
use sightline_core::{BBox, Direction, Event, EventId, EventKind, Pts, RuleEvent, RunId, TrackId};
use sightline_store::{EventQuery, SortOrder};
use std::collections::HashSet;

const T0: i64 = 1_735_689_600_000;

/// `n` events alternating over `runs`, kinds, classes and zones; wall time 1 s apart.
pub fn make_events(runs: &[RunId], n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let kind = EventKind::ALL[i % EventKind::ALL.len()];
            let mut body = RuleEvent::new(
                kind,
                format!("rule-{}", i % 3),
                Pts::from_millis(i as i64 * 40),
            );
            body.track_id = Some(TrackId(i as u64));
            body.class = Some(if (i / 6) % 2 == 0 { "person" } else { "car" }.to_owned());
            body.confidence = Some(0.5 + (i % 50) as f32 / 100.0);
            body.bbox = Some(BBox::new(i as f32, 2.0, i as f32 + 10.5, 20.25));
            match kind {
                EventKind::LineCross => {
                    body.line = Some("gate".into());
                    body.direction = Some(if i % 4 == 0 {
                        Direction::In
                    } else {
                        Direction::Out
                    });
                    body.count = Some(i as u32);
                }
                EventKind::Count => {
                    body.zone = Some(format!("zone-{}", i % 2));
                    body.count = Some(3);
                    body.level = Some(Level::Above);
                }
                EventKind::Dwell => {
                    body.zone = Some(format!("zone-{}", i % 2));
                    body.dwell_s = Some(12.5);
                }
                _ => body.zone = Some(format!("zone-{}", i % 2)),
            }
            if i % 5 == 0 {
                // What a secondary stage had learnt about the track.
                body.attributes
                    .insert("plate".into(), format!("KA01AB{:04}", i % 10_000));
            }
            Event {
                id: EventId::generate(),
                run_id: runs[i % runs.len()].clone(),
                wall_ms: T0 + i as i64 * 1000,
                body,
                media: None,
            }
        })
        .collect()
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

async fn batch_insert_and_query(db: &TestDb) {
    let runs = seed_runs(db, 2).await;
    let s = &db.store;
    let events = make_events(&runs, 1203); // more than one INSERT chunk
    assert_eq!(s.insert_events(&events).await.unwrap(), 1203);
    // Retrying the same batch inserts nothing new.
    assert_eq!(s.insert_events(&events[..10]).await.unwrap(), 0);
    assert_eq!(s.insert_events(&[]).await.unwrap(), 0);

    // A batch is one transaction: an event of an unknown run fails it as a whole, outbox
    // rows included.
    let mut bad = make_events(&runs, 5);
    bad[3].run_id = RunId::parse("ghost").unwrap();
    let err = s
        .insert_events_with_outbox(&bad, &["mqtt"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(s.outbox_depth("mqtt").await.unwrap().pending, 0);
    let ids: HashSet<_> = bad.iter().map(|e| e.id).collect();
    let stored = collect(s, EventQuery::default()).await;
    assert!(
        stored.iter().all(|e| !ids.contains(&e.id)),
        "nothing of the failed batch stored"
    );

    // Everything round-trips, in id order.
    let all = collect(
        s,
        EventQuery {
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 1203);
    let mut expected = events.clone();
    expected.sort_by_key(|e| e.id);
    assert_eq!(all, expected, "every field round-trips");

    // Filters.
    let q = EventQuery {
        run: Some(runs[0].clone()),
        ..Default::default()
    };
    let got = collect(s, q).await;
    assert_eq!(got.len(), 602);
    assert!(got.iter().all(|e| e.run_id == runs[0]));

    let q = EventQuery {
        kind: Some(EventKind::LineCross),
        class: Some("car".into()),
        ..Default::default()
    };
    let want: Vec<_> = expected
        .iter()
        .filter(|e| e.body.kind == EventKind::LineCross && e.body.class.as_deref() == Some("car"))
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(collect(s, q).await, want);

    let q = EventQuery {
        zone: Some("zone-1".into()),
        ..Default::default()
    };
    assert!(
        collect(s, q)
            .await
            .iter()
            .all(|e| e.body.zone.as_deref() == Some("zone-1"))
    );
    let q = EventQuery {
        line: Some("gate".into()),
        ..Default::default()
    };
    assert_eq!(
        collect(s, q).await.len(),
        expected.iter().filter(|e| e.body.line.is_some()).count()
    );

    let q = EventQuery {
        since: Some(at(T0 + 100_000)),
        until: Some(at(T0 + 200_000)),
        ..Default::default()
    };
    let got = collect(s, q).await;
    assert_eq!(got.len(), 100, "since inclusive, until exclusive");
    assert!(
        got.iter()
            .all(|e| (T0 + 100_000..T0 + 200_000).contains(&e.wall_ms))
    );

    // Newest first, paginated the other way.
    let desc = collect(
        s,
        EventQuery {
            order: SortOrder::Desc,
            limit: 77,
            ..Default::default()
        },
    )
    .await;
    let mut rev = expected.clone();
    rev.reverse();
    assert_eq!(desc, rev);

    let bad = s
        .query_events(&EventQuery {
            cursor: Some("nope".into()),
            ..Default::default()
        })
        .await;
    assert!(bad.is_err());

    // Retention: the first 300 seconds go (with their outbox rows, if any).
    assert_eq!(
        s.delete_events_older_than(at(T0 + 300_000)).await.unwrap(),
        300
    );
    let left = collect(s, EventQuery::default()).await;
    assert_eq!(left.len(), 903);
    assert!(left.iter().all(|e| e.wall_ms >= T0 + 300_000));
    // Deleting a run takes its events with it.
    let r = &runs[1];
    s.request_stop(r).await.unwrap();
    s.delete_run(r).await.unwrap();
    assert!(
        collect(s, EventQuery::default())
            .await
            .iter()
            .all(|e| e.run_id == runs[0])
    );
}

/// Follows cursors to the end, checking page sizes and that nothing repeats.
async fn collect(s: &sightline_store::Store, mut q: EventQuery) -> Vec<Event> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let page = s.query_events(&q).await.unwrap();
        assert!(page.corrupt.is_empty());
        assert!(page.items.len() <= sightline_store::page::MAX_LIMIT as usize);
        for e in &page.items {
            assert!(ids.insert(e.id), "event {} returned twice", e.id);
        }
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

both_backends!(batch_insert_and_query);
