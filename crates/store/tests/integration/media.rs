//! The media index: pictures and recording segments, their retention and survival-mode
//! claims, the picture fields of events — on both backends.

use crate::common::{TestDb, both_backends, seed_runs};
use sightline_core::{
    Event, EventId, EventKind, EventMedia, MediaRef, PictureKind, Pts, RuleEvent, RunId,
};
use sightline_store::{
    MediaClass, NewMediaObject, NewRecording, RecordingQuery, RunScope, WorkerInfo,
};
use std::time::Duration;

fn pic(run: &RunId, key: &str, bytes: u64) -> NewMediaObject {
    NewMediaObject {
        key: key.into(),
        volume: "vol-a".into(),
        run_id: run.clone(),
        event_id: None,
        kind: PictureKind::Crop,
        bytes,
        width: 10,
        height: 20,
    }
}

fn rec(run: &RunId, key: &str, worker: &str, start: i64) -> NewRecording {
    NewRecording {
        id: uuid::Uuid::now_v7(),
        run_id: run.clone(),
        volume: "vol-a".into(),
        key: key.into(),
        worker: worker.into(),
        start_wall_ms: start,
        start_pts_ns: 0,
    }
}

fn now(db: &TestDb) -> i64 {
    db.clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

use sightline_core::Clock;

async fn pictures_index_and_claims(db: &TestDb) {
    let runs = seed_runs(db, 2).await;
    let s = &db.store;
    for i in 0..5 {
        s.insert_media_object(&pic(&runs[i % 2], &format!("p{i}"), 100 + i as u64))
            .await
            .unwrap();
        db.advance(Duration::from_secs(60));
    }
    let mut other = pic(&runs[0], "elsewhere", 1000);
    other.volume = "vol-b".into();
    s.insert_media_object(&other).await.unwrap();
    let u = s.media_usage("vol-a").await.unwrap();
    assert_eq!((u.pictures, u.picture_bytes), (5, 510));
    assert!(u.oldest_picture_ms.is_some());

    // Survival candidates: only this volume, oldest first.
    let old = s.oldest_media("vol-a", 3).await.unwrap();
    let keys: Vec<_> = old.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["p0", "p1", "p2"]);
    // A claim deletes the rows and returns them; a second claim of the same keys gets
    // nothing (another worker got there first).
    let claimed = s
        .claim_media(MediaClass::Picture, &["p0".into(), "p1".into()])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let again = s
        .claim_media(MediaClass::Picture, &["p0".into(), "p1".into()])
        .await
        .unwrap();
    assert!(again.is_empty());

    // Retention by run scope: p2 (run 0) and p3 (run 1) are older than the cutoff.
    let cut = now(db) - 90_000;
    let only0 = s
        .claim_media_older_than(
            MediaClass::Picture,
            cut,
            &RunScope::Only(runs[0].clone()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        only0.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["p2"]
    );
    let rest = s
        .claim_media_older_than(
            MediaClass::Picture,
            cut,
            &RunScope::Except(vec![runs[0].clone()]),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["p3"]
    );
    assert_eq!(s.media_usage("vol-a").await.unwrap().pictures, 1);

    // Media of a deleted run is an orphan.
    s.delete_run(&runs[0]).await.unwrap();
    let orphans = s.claim_orphan_media(10).await.unwrap();
    let mut keys: Vec<_> = orphans.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["elsewhere", "p4"],
        "run 0's pictures on every volume"
    );
    assert_eq!(s.media_usage("vol-a").await.unwrap().pictures, 0);
}

async fn event_pictures_round_trip_and_can_be_taken_back(db: &TestDb) {
    let runs = seed_runs(db, 1).await;
    let s = &db.store;
    let r = |kind: &str| MediaRef {
        url: format!("http://h/v1/events/x/{kind}.jpg"),
        key: format!("events/r00/x-{kind}.jpg"),
        width: 64,
        height: 96,
    };
    let ev = Event {
        id: EventId::generate(),
        run_id: runs[0].clone(),
        wall_ms: now(db),
        body: RuleEvent::new(EventKind::Detected, "rule", Pts::from_millis(5)),
        media: Some(EventMedia {
            crop: Some(r("crop")),
            snapshot: Some(r("snapshot")),
        }),
    };
    s.insert_events(std::slice::from_ref(&ev)).await.unwrap();
    let back = s.get_event(ev.id).await.unwrap();
    assert_eq!(back, ev);
    assert!(
        s.clear_event_picture(ev.id, PictureKind::Crop)
            .await
            .unwrap()
    );
    let back = s.get_event(ev.id).await.unwrap();
    let m = back.media.unwrap();
    assert!(m.crop.is_none());
    assert_eq!(m.snapshot, Some(r("snapshot")));
    assert!(
        !s.clear_event_picture(EventId::generate(), PictureKind::Crop)
            .await
            .unwrap()
    );
    assert!(s.get_event(EventId::generate()).await.is_err());
}

async fn recordings_are_listed_by_time_and_open_ones_are_kept(db: &TestDb) {
    let runs = seed_runs(db, 1).await;
    let s = &db.store;
    let t0 = now(db);
    s.heartbeat_worker(&WorkerInfo {
        id: "w-live".into(),
        host: "h".into(),
        capacity: 1,
    })
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..4i64 {
        let r = rec(&runs[0], &format!("s{i}"), "w-live", t0 + i * 60_000);
        s.open_recording(&r).await.unwrap();
        if i < 3 {
            s.close_recording(r.id, "closed", t0 + (i + 1) * 60_000, 60_000_000_000, 1000)
                .await
                .unwrap();
        }
        ids.push(r.id);
    }
    // s3 is open (the current moment). A segment of a dead writer, left open:
    let dead = rec(&runs[0], "dead", "w-gone", t0 - 3_600_000);
    s.open_recording(&dead).await.unwrap();

    let q = |since: Option<i64>, until: Option<i64>, closed_only| RecordingQuery {
        run: Some(runs[0].clone()),
        since_ms: since,
        until_ms: until,
        closed_only,
        cursor: None,
        limit: 0,
    };
    let keys = |p: sightline_store::Page<sightline_store::Recording>| {
        p.items.into_iter().map(|r| r.key).collect::<Vec<_>>()
    };
    // Overlapping 1:30–2:30: s1 and s2.
    let p = s
        .list_recordings(&q(Some(t0 + 90_000), Some(t0 + 150_000), true))
        .await
        .unwrap();
    assert_eq!(keys(p), ["s1", "s2"]);
    // The open segment overlaps any range after its start.
    let p = s
        .list_recordings(&q(Some(t0 + 200_000), None, false))
        .await
        .unwrap();
    assert_eq!(keys(p), ["dead", "s3"], "open segments have no end yet");
    // Pagination.
    let mut all = Vec::new();
    let mut query = q(None, None, false);
    query.limit = 2;
    loop {
        let p = s.list_recordings(&query).await.unwrap();
        all.extend(p.items.iter().map(|r| r.key.clone()));
        match p.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all, ["dead", "s0", "s1", "s2", "s3"]);

    // Survival candidates never include open segments.
    let cand = s.oldest_media("vol-a", 10).await.unwrap();
    let ck: Vec<_> = cand.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(ck, ["s0", "s1", "s2"]);
    // The dead writer's segment becomes abandoned (deletable); the live writer's is kept.
    db.advance(Duration::from_secs(120));
    s.heartbeat_worker(&WorkerInfo {
        id: "w-live".into(),
        host: "h".into(),
        capacity: 1,
    })
    .await
    .unwrap();
    let n = s.abandon_stale_recordings(now(db) - 60_000).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(s.get_recording(dead.id).await.unwrap().state, "abandoned");
    assert_eq!(s.get_recording(ids[3]).await.unwrap().state, "open");
    let claimed = s
        .claim_media(MediaClass::Segment, &["s3".into(), "dead".into()])
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
        ["dead"],
        "an open segment is never claimed"
    );
    let u = s.media_usage("vol-a").await.unwrap();
    assert_eq!((u.segments, u.segment_bytes), (4, 3000));
}

async fn event_retention_by_scope(db: &TestDb) {
    let runs = seed_runs(db, 2).await;
    let s = &db.store;
    let mk = |run: &RunId, wall_ms: i64| Event {
        id: EventId::generate(),
        run_id: run.clone(),
        wall_ms,
        body: RuleEvent::new(EventKind::Detected, "r", Pts::ZERO),
        media: None,
    };
    let t = now(db);
    let evs: Vec<Event> = (0..10)
        .map(|i| mk(&runs[i % 2], t - 10_000 + i as i64 * 1000))
        .collect();
    s.insert_events(&evs).await.unwrap();
    // Older than t-5s for run 0 only: events 0, 2, 4.
    let n = s
        .delete_events_batch(t - 5000, &RunScope::Only(runs[0].clone()), 100)
        .await
        .unwrap();
    assert_eq!(n, 3);
    // Batches: at most `limit` per call.
    let n = s
        .delete_events_batch(t, &RunScope::Except(vec![runs[0].clone()]), 2)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n = s.delete_events_batch(t, &RunScope::All, 100).await.unwrap();
    assert_eq!(n, 5);
}

both_backends!(
    pictures_index_and_claims,
    event_pictures_round_trip_and_can_be_taken_back,
    recordings_are_listed_by_time_and_open_ones_are_kept,
    event_retention_by_scope,
);
