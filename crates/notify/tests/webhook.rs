//! Webhook delivery against a real HTTP receiver: retries spaced per policy (real and
//! simulated time), signatures, idempotency keys, batching, dead letters, and redelivery
//! after a crash between insert and delivery.

mod common;

use common::{Receiver, events, seed_run, wait_until};
use sightline_core::{Clock, ManualClock, SystemClock};
use sightline_notify::webhook::{ATTEMPT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use sightline_notify::{
    Notification, Notifier, NotifySection, Secret, SinkConfig, WebhookSinkConfig, verify_signature,
};
use sightline_store::StoreOptions;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "shared-secret";

fn hook(url: &str) -> WebhookSinkConfig {
    let mut w = WebhookSinkConfig::new("hook", url);
    w.secret = Some(Secret::new(SECRET));
    w.timeout_ms = 2000;
    w
}

fn section(w: WebhookSinkConfig) -> NotifySection {
    NotifySection {
        sinks: vec![SinkConfig::Webhook(w)],
        poll_interval_ms: 10,
        ..NotifySection::default()
    }
}

fn header<'a>(h: &'a common::Hit, name: &str) -> &'a str {
    h.headers.get(name).unwrap().to_str().unwrap()
}

/// Fails the first 3 attempts, then succeeds: delivered once accepted, each attempt signed
/// with the event id as idempotency key, the gaps between attempts following the policy
/// (200, 400, 800 ms, minus at most 10 % jitter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_then_delivered_with_spaced_retries() {
    let db = common::sqlite().await;
    let run = seed_run(&db.store, "cam").await;
    let rx = Receiver::start(3, Duration::ZERO).await;
    let mut w = hook(&rx.url);
    w.backoff_base_ms = 200;
    w.backoff_max_ms = 5000;
    w.jitter = 0.1;
    let policy = w.retry_policy();
    let cfg = section(w);
    let n = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();
    let ev = events(&run, 1).remove(0);
    db.store
        .insert_events_routed(std::slice::from_ref(&ev), |e| cfg.route(e))
        .await
        .unwrap();
    n.wake();
    wait_until(Duration::from_secs(10), "a successful attempt", || async {
        rx.hits().iter().any(|h| h.status == 200)
    })
    .await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 4);
    for (i, h) in hits.iter().enumerate() {
        assert!(verify_signature(
            SECRET.as_bytes(),
            &h.body,
            header(h, SIGNATURE_HEADER)
        ));
        assert_eq!(header(h, IDEMPOTENCY_HEADER), ev.id.to_string());
        assert_eq!(header(h, ATTEMPT_HEADER), (i + 1).to_string());
        let note: Notification = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(note.id, ev.id);
    }
    assert!(
        !verify_signature(b"wrong", &hits[0].body, header(&hits[0], SIGNATURE_HEADER)),
        "the signature depends on the secret"
    );
    for k in 1..4u32 {
        let gap = hits[k as usize].at - hits[k as usize - 1].at;
        let nominal = policy.nominal(k);
        assert!(
            gap >= nominal.mul_f64(0.9) && gap < nominal + Duration::from_secs(1),
            "gap {k}: {gap:?}, nominal {nominal:?}"
        );
    }
    wait_until(Duration::from_secs(3), "row delivered", || async {
        db.store.outbox_depth("hook").await.unwrap().pending == 0
    })
    .await;
    n.shutdown().await;
}

/// The same retry schedule in simulated time: nothing is retried before the policy's delay
/// has passed on the injected clock, and each retry happens once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_schedule_in_simulated_time() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(1_735_689_600));
    let db = common::sqlite_with(StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    })
    .await;
    let run = seed_run(&db.store, "cam").await;
    let rx = Receiver::start(3, Duration::ZERO).await;
    let mut w = hook(&rx.url);
    w.backoff_base_ms = 10_000;
    w.backoff_max_ms = 600_000;
    w.jitter = 0.2;
    let policy = w.retry_policy();
    let cfg = section(w);
    let n = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(clock.clone()),
        std::future::pending(),
    )
    .unwrap();
    db.store
        .insert_events_routed(&events(&run, 1), |e| cfg.route(e))
        .await
        .unwrap();
    let far = chrono::DateTime::<chrono::Utc>::from(clock.wall()) + chrono::Duration::days(30);
    for attempt in 1..=3u32 {
        let want = attempt as usize;
        wait_until(Duration::from_secs(5), "an attempt", || async {
            rx.hits().len() == want
        })
        .await;
        // The row records the failure and when it is due again.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let row = loop {
            let rows = db.store.fetch_due("hook", 1, far).await.unwrap();
            if rows[0].attempts == attempt {
                break rows[0].next_attempt_at;
            }
            assert!(std::time::Instant::now() < deadline, "failure not recorded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let now = chrono::DateTime::<chrono::Utc>::from(clock.wall());
        let gap = (row - now).to_std().unwrap();
        let nominal = policy.nominal(attempt);
        assert!(
            gap <= nominal && gap >= nominal.mul_f64(0.8) - Duration::from_millis(1),
            "attempt {attempt}: due after {gap:?}, nominal {nominal:?}"
        );
        // Just before it is due: no retry, however long we wait in real time.
        clock.advance(gap - Duration::from_millis(5));
        n.wake();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(rx.hits().len(), want, "retried before its time");
        clock.advance(Duration::from_millis(5));
        n.wake();
    }
    wait_until(Duration::from_secs(5), "delivered", || async {
        rx.hits().len() == 4 && db.store.outbox_depth("hook").await.unwrap().pending == 0
    })
    .await;
    n.shutdown().await;
}

/// An endpoint that always fails: after `max_attempts` the rows are dead letters, visible in
/// the store and in the status, and the sink shows as failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_after_max_attempts() {
    let db = common::sqlite().await;
    let run = seed_run(&db.store, "cam").await;
    let rx = Receiver::start(usize::MAX, Duration::ZERO).await;
    let mut w = hook(&rx.url);
    w.max_attempts = 2;
    w.backoff_base_ms = 10;
    let cfg = section(w);
    let n = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();
    db.store
        .insert_events_routed(&events(&run, 3), |e| cfg.route(e))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "three dead letters", || async {
        db.store.outbox_depth("hook").await.unwrap().dead == 3
    })
    .await;
    assert_eq!(rx.hits().len(), 6, "two attempts each");
    let dead = db.store.list_dead_letters(Some("hook"), 10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert!(
        dead.iter()
            .all(|r| r.last_error.as_deref() == Some("HTTP 500 Internal Server Error"))
    );
    wait_until(Duration::from_secs(3), "status", || async {
        let s = &n.status()[0];
        s.dead == 3 && s.pending == 0 && !s.connected && s.last_error.is_some()
    })
    .await;
    n.shutdown().await;
}

/// Events stored while no notifier runs (a crash between insert and delivery), then a
/// notifier that is killed mid-way (dropped: its tasks are aborted with requests in
/// flight): a new notifier delivers everything left, batched as JSON arrays; every event
/// arrives at least once and deduping by id gives exactly the stored set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_delivers_what_was_left() {
    let db = match common::postgres().await {
        Some(db) => db,
        None => common::sqlite().await,
    };
    let run = seed_run(&db.store, "cam").await;
    let rx = Receiver::start(0, Duration::from_millis(40)).await;
    let mut w = hook(&rx.url);
    w.batch = 3;
    w.max_concurrency = 2;
    w.timeout_ms = 300;
    let cfg = section(w);
    let evs = events(&run, 60);
    db.store
        .insert_events_routed(&evs, |e| cfg.route(e))
        .await
        .unwrap();
    assert_eq!(db.store.outbox_depth("hook").await.unwrap().pending, 60);

    let first = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();
    wait_until(Duration::from_secs(5), "some deliveries", || async {
        rx.hits().len() >= 4
    })
    .await;
    drop(first); // crash
    let left = db.store.outbox_depth("hook").await.unwrap().pending;
    assert!(left > 0 && left < 60, "{left} left");

    let (tx, stop) = tokio::sync::oneshot::channel::<()>();
    let second = Notifier::start(db.store.clone(), &cfg, Arc::new(SystemClock), async move {
        let _ = stop.await;
    })
    .unwrap();
    wait_until(Duration::from_secs(10), "the rest delivered", || async {
        db.store.outbox_depth("hook").await.unwrap().pending == 0
    })
    .await;
    let mut ids = HashSet::new();
    let mut received = 0;
    for h in rx.hits() {
        let batch: Vec<Notification> = serde_json::from_slice(&h.body).unwrap();
        assert!(!batch.is_empty() && batch.len() <= 3);
        assert!(header(&h, IDEMPOTENCY_HEADER).starts_with("batch-"));
        assert!(verify_signature(
            SECRET.as_bytes(),
            &h.body,
            header(&h, SIGNATURE_HEADER)
        ));
        received += batch.len();
        ids.extend(batch.into_iter().map(|n| n.id));
    }
    let want: HashSet<_> = evs.iter().map(|e| e.id).collect();
    assert_eq!(ids, want);
    assert!(received >= 60);
    // The shutdown future given to start stops the tasks too.
    assert!(second.is_running());
    tx.send(()).unwrap();
    wait_until(Duration::from_secs(3), "tasks stopped", || async {
        !second.is_running()
    })
    .await;
    second.shutdown().await;
}

/// On PostgreSQL the notifier listens for committed event batches: events written by
/// another process (another store handle, no `wake()`) are delivered at once even with a
/// one-minute poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_delivery() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let run = seed_run(&db.store, "cam").await;
    let rx = Receiver::start(0, Duration::ZERO).await;
    let mut cfg = section(hook(&rx.url));
    cfg.poll_interval_ms = 60_000;
    let n = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();
    // Let the first (empty) poll and the LISTEN happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = sightline_store::Store::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    writer
        .insert_events_routed(&events(&run, 3), |e| cfg.route(e))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "delivery without wake()",
        || async { rx.hits().len() == 3 },
    )
    .await;
    writer.close().await;
    n.shutdown().await;
}
