//! Claiming, renewing, transitions and release: exactly one owner at a time.

use crate::common::{TestDb, both_backends, seed_runs};
use sightline_core::error::Classify;
use sightline_core::{ErrorKind, RunId, RunState, SystemClock};
use sightline_store::{Reason, Store, StoreError, WorkerInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(30);

async fn claim_renew_release(db: &TestDb) {
    let ids = seed_runs(db, 5).await;
    let s = &db.store;
    let a = s.claim_runs("wa", 3, TTL).await.unwrap();
    assert_eq!(
        a.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids[..3].to_vec(),
        "oldest first"
    );
    for r in &a {
        assert_eq!(r.state, RunState::Starting);
        assert_eq!(r.owner.as_deref(), Some("wa"));
        assert_eq!(r.attempts, 1);
        assert!(r.lease_expires_at.is_some());
    }
    assert!(
        s.claim_runs("wa", 3, TTL).await.unwrap().is_empty(),
        "at capacity"
    );
    let b = s.claim_runs("wb", 10, TTL).await.unwrap();
    assert_eq!(b.len(), 2);
    assert!(
        s.claim_runs("wc", 10, TTL).await.unwrap().is_empty(),
        "nothing left"
    );

    db.advance(Duration::from_secs(20));
    assert_eq!(s.renew_leases("wa", TTL).await.unwrap(), ids[..3].to_vec());
    db.advance(Duration::from_secs(20));
    // wa renewed, so nothing expired for it; wb did not, so its two runs are up for takeover.
    let c = s.claim_runs("wc", 10, TTL).await.unwrap();
    assert_eq!(
        c.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );

    s.transition(
        &ids[0],
        "wa",
        RunState::Starting,
        RunState::Running,
        "source_opened",
    )
    .await
    .unwrap();
    let released = s.release_runs("wa").await.unwrap();
    assert_eq!(released, ids[..3].to_vec());
    for id in &ids[..3] {
        let r = s.get_run(id).await.unwrap();
        assert_eq!(
            (r.state, r.owner.as_deref(), r.lease_expires_at),
            (RunState::Pending, None, None)
        );
        let last = s.transitions(id).await.unwrap().pop().unwrap();
        assert_eq!(
            (last.to, last.reason.as_str(), last.worker.as_deref()),
            (RunState::Pending, "released", Some("wa"))
        );
    }
    assert!(s.renew_leases("wa", TTL).await.unwrap().is_empty());
    // The next worker resumes them, counting another attempt.
    let d = s.claim_runs("wd", 10, TTL).await.unwrap();
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|r| r.attempts == 2));
}

async fn lease_expiry_takeover(db: &TestDb) {
    let ids = seed_runs(db, 2).await;
    let s = &db.store;
    let other = db.open_another().await; // a second process
    let id = &ids[0];
    s.claim_runs("old", 1, TTL).await.unwrap();
    s.transition(
        id,
        "old",
        RunState::Starting,
        RunState::Running,
        "source_opened",
    )
    .await
    .unwrap();

    // Not expired yet: nobody else may take it.
    db.advance(Duration::from_secs(29));
    let got = other.claim_runs("new", 1, TTL).await.unwrap();
    assert_eq!(
        got.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&ids[1]],
        "only the pending run"
    );

    // The old owner stops heart-beating; the lease expires and the run is taken over.
    db.advance(Duration::from_secs(2));
    let got = other.claim_runs("new", 2, TTL).await.unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        (&r.id, r.state, r.owner.as_deref(), r.attempts),
        (id, RunState::Starting, Some("new"), 2)
    );
    let last = other.transitions(id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.from, last.to, last.reason.as_str()),
        (Some(RunState::Running), RunState::Starting, "lease_expired")
    );
    assert!(last.message.unwrap().contains("old"));

    // The old owner wakes up: its renewal no longer lists the run, and it cannot write.
    assert!(s.renew_leases("old", TTL).await.unwrap().is_empty());
    let err = s
        .transition(
            id,
            "old",
            RunState::Running,
            RunState::Retrying,
            "source_lost",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseLost { ref owner, .. } if owner.as_deref() == Some("new")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let r = other.get_run(id).await.unwrap();
    assert_eq!(
        (r.state, r.owner.as_deref()),
        (RunState::Starting, Some("new"))
    );
    other
        .transition(
            id,
            "new",
            RunState::Starting,
            RunState::Running,
            "source_opened",
        )
        .await
        .unwrap();

    // An expired run that was stopping is finished rather than restarted.
    other
        .transition(
            id,
            "new",
            RunState::Running,
            RunState::Stopping,
            "stop_requested",
        )
        .await
        .unwrap();
    db.advance(Duration::from_secs(31));
    assert!(
        s.claim_runs("third", 5, TTL)
            .await
            .unwrap()
            .iter()
            .all(|r| &r.id != id)
    );
    let r = s.get_run(id).await.unwrap();
    assert_eq!((r.state, r.owner), (RunState::Stopped, None));
}

/// The same with the real clock and a short TTL.
async fn short_ttl_real_clock(db: &TestDb) {
    let ids = seed_runs(db, 1).await;
    let a = db.open_with_clock(Arc::new(SystemClock)).await;
    let b = db.open_with_clock(Arc::new(SystemClock)).await;
    let ttl = Duration::from_millis(300);
    assert_eq!(a.claim_runs("a", 1, ttl).await.unwrap().len(), 1);
    assert!(b.claim_runs("b", 1, ttl).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.renew_leases("a", ttl).await.unwrap(), ids);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let got = b.claim_runs("b", 1, ttl).await.unwrap();
    assert_eq!(got.len(), 1, "taken over after expiry");
    assert!(a.renew_leases("a", ttl).await.unwrap().is_empty());
    assert!(matches!(
        a.transition(&ids[0], "a", RunState::Starting, RunState::Running, "x")
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
}

/// 8 claimers in 2 pools race until `total` runs are claimed; returns who got what.
async fn race(pools: &[Store; 2], prefix: &str, total: usize) -> BTreeMap<RunId, String> {
    let claimed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store: Store = pools[w % 2].clone();
        let claimed = claimed.clone();
        let worker = format!("{prefix}{w}");
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..2000 {
                if claimed.load(Ordering::SeqCst) >= total {
                    break;
                }
                let got = match store.claim_runs(&worker, 5, TTL).await {
                    Ok(g) => g,
                    // SQLite writers may time out waiting for the lock under contention; a
                    // real engine retries on its next tick.
                    Err(e) if e.kind() == ErrorKind::Unavailable => continue,
                    Err(e) => panic!("{worker}: {e}"),
                };
                claimed.fetch_add(got.len(), Ordering::SeqCst);
                for r in got {
                    assert_eq!(r.owner.as_deref(), Some(worker.as_str()));
                    store
                        .transition(
                            &r.id,
                            &worker,
                            RunState::Starting,
                            RunState::Running,
                            "source_opened",
                        )
                        .await
                        .expect("owner can move its run");
                    mine.push(r.id);
                }
                tokio::task::yield_now().await;
            }
            (worker, mine)
        }));
    }
    let mut owner_of: BTreeMap<RunId, String> = BTreeMap::new();
    for t in tasks {
        let (worker, mine) = t.await.unwrap();
        assert!(mine.len() <= 5, "{worker} exceeded its capacity");
        for id in mine {
            if let Some(prev) = owner_of.insert(id.clone(), worker.clone()) {
                panic!("{id} claimed by both {prev} and {worker}");
            }
        }
    }
    owner_of
}

/// 8 claimers in 2 pools race for 20 runs: every run is claimed exactly once, and the
/// owner recorded is the claimer. Then every lease expires and 8 new claimers race to take
/// the runs over: again each run gets exactly one new owner.
async fn exactly_one_owner(db: &TestDb) {
    let ids = seed_runs(db, 20).await;
    let pools = [db.store.clone(), db.open_another().await];
    let all: BTreeSet<RunId> = ids.iter().cloned().collect();

    let first = race(&pools, "a", 20).await;
    assert_eq!(first.keys().cloned().collect::<BTreeSet<_>>(), all);
    for (id, worker) in &first {
        let r = db.store.get_run(id).await.unwrap();
        assert_eq!(
            (r.state, r.owner.as_deref(), r.attempts),
            (RunState::Running, Some(worker.as_str()), 1)
        );
        let claims = db.store.transitions(id).await.unwrap();
        let starts: Vec<_> = claims
            .iter()
            .filter(|t| t.to == RunState::Starting)
            .collect();
        assert_eq!(starts.len(), 1, "{id} started more than once");
        assert_eq!(starts[0].worker.as_deref(), Some(worker.as_str()));
    }

    db.advance(TTL + Duration::from_secs(1));
    let second = race(&pools, "b", 20).await;
    assert_eq!(second.keys().cloned().collect::<BTreeSet<_>>(), all);
    for (id, worker) in &second {
        let r = db.store.get_run(id).await.unwrap();
        assert_eq!((r.owner.as_deref(), r.attempts), (Some(worker.as_str()), 2));
        let takeovers: Vec<_> = db
            .store
            .transitions(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.reason == "lease_expired")
            .collect();
        assert_eq!(takeovers.len(), 1, "{id} taken over more than once");
        assert_eq!(takeovers[0].worker.as_deref(), Some(worker.as_str()));
    }
    for worker in first.values() {
        assert!(db.store.renew_leases(worker, TTL).await.unwrap().is_empty());
    }
}

async fn transitions_legal_and_illegal(db: &TestDb) {
    let ids = seed_runs(db, 2).await;
    let s = &db.store;
    let id = &ids[0];
    s.claim_runs("w", 1, TTL).await.unwrap();
    use RunState::*;
    // Illegal per the lifecycle, whatever the row says.
    let err = s
        .transition(id, "w", Starting, Stopped, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: Starting,
                to: Stopped,
                ..
            }
        ),
        "{err}"
    );
    // Legal, but the row is not in `from`.
    let err = s
        .transition(id, "w", Running, Retrying, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateMismatch {
                expected: Running,
                ..
            }
        ),
        "{err}"
    );
    // Legal, but not the owner.
    let err = s
        .transition(id, "intruder", Starting, Running, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    // Unowned pending run: nobody may move it but a claim.
    let err = s
        .transition(&ids[1], "w", Pending, Starting, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseLost { owner: None, .. }),
        "{err}"
    );
    let err = s
        .transition(&RunId::parse("nope").unwrap(), "w", Starting, Running, "x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let r = s
        .transition(id, "w", Starting, Running, "source_opened")
        .await
        .unwrap();
    let started = r.started_at.expect("started_at set");
    db.advance(Duration::from_secs(1));
    let r = s
        .transition(
            id,
            "w",
            Running,
            Retrying,
            Reason::with_message("source_lost", "EOS from rtspsrc"),
        )
        .await
        .unwrap();
    let e = r.last_error.clone().unwrap();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("source_lost", "EOS from rtspsrc")
    );
    let r = s
        .transition(id, "w", Retrying, Running, "reconnected")
        .await
        .unwrap();
    assert_eq!(r.started_at, Some(started), "first start kept");
    // Watchdog restart counts an attempt and keeps ownership.
    let r = s
        .transition(id, "w", Running, Starting, "stalled")
        .await
        .unwrap();
    assert_eq!((r.attempts, r.owner.as_deref()), (2, Some("w")));
    let r = s
        .transition(id, "w", Starting, Running, "source_opened")
        .await
        .unwrap();
    let r = s
        .transition(
            &r.id,
            "w",
            Running,
            Failed,
            Reason::with_message("invalid_model", "bad output shape"),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.state, r.owner.as_deref(), r.lease_expires_at),
        (Failed, None, None)
    );
    assert!(r.ended_at.is_some());
    assert_eq!(r.last_error.unwrap().code, "invalid_model");
    // Terminal is final.
    let err = s
        .transition(id, "w", Failed, Starting, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }));

    let path: Vec<_> = s
        .transitions(id)
        .await
        .unwrap()
        .iter()
        .map(|t| (t.from, t.to, t.reason.clone()))
        .collect();
    assert_eq!(
        path,
        vec![
            (None, Pending, "created".into()),
            (Some(Pending), Starting, "claimed".into()),
            (Some(Starting), Running, "source_opened".into()),
            (Some(Running), Retrying, "source_lost".into()),
            (Some(Retrying), Running, "reconnected".into()),
            (Some(Running), Starting, "stalled".into()),
            (Some(Starting), Running, "source_opened".into()),
            (Some(Running), Failed, "invalid_model".into()),
        ]
    );
}

async fn workers_registry(db: &TestDb) {
    seed_runs(db, 3).await;
    let s = &db.store;
    let w = WorkerInfo {
        id: "w1".into(),
        host: "gpu-a".into(),
        capacity: 4,
    };
    s.heartbeat_worker(&w).await.unwrap();
    let first = s.list_workers().await.unwrap();
    assert_eq!(first.len(), 1);
    s.claim_runs("w1", 2, TTL).await.unwrap();
    db.advance(Duration::from_secs(5));
    s.heartbeat_worker(&WorkerInfo {
        capacity: 6,
        ..w.clone()
    })
    .await
    .unwrap();
    s.heartbeat_worker(&WorkerInfo {
        id: "w2".into(),
        host: "gpu-b".into(),
        capacity: 1,
    })
    .await
    .unwrap();
    let list = s.list_workers().await.unwrap();
    let w1 = list.iter().find(|x| x.id == "w1").unwrap();
    assert_eq!(
        (w1.capacity, w1.active_runs, w1.host.as_str()),
        (6, 2, "gpu-a")
    );
    assert_eq!(w1.started_at, first[0].started_at);
    assert!(w1.heartbeat_at > first[0].heartbeat_at);
    let cutoff = w1.heartbeat_at - chrono::Duration::milliseconds(1);
    db.advance(Duration::from_secs(60));
    s.heartbeat_worker(&WorkerInfo {
        id: "w2".into(),
        host: "gpu-b".into(),
        capacity: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        s.remove_stale_workers(cutoff + chrono::Duration::seconds(2))
            .await
            .unwrap(),
        1
    );
    assert!(s.remove_worker("w2").await.unwrap());
    assert!(s.list_workers().await.unwrap().is_empty());
}

both_backends!(
    claim_renew_release,
    lease_expiry_takeover,
    short_ttl_real_clock,
    exactly_one_owner,
    transitions_legal_and_illegal,
    workers_registry,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifies_listeners() {
    let sqlite = crate::common::sqlite().await;
    assert!(sqlite.store.listen_runs().await.unwrap().is_none());
    assert!(sqlite.store.listen_events().await.unwrap().is_none());

    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let mut l = db
        .store
        .listen_runs()
        .await
        .unwrap()
        .expect("listener on postgres");
    let ids = seed_runs(&db, 1).await;
    let n = tokio::time::timeout(Duration::from_secs(5), l.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(n, sightline_store::RunNotice::Pending(ids[0].clone()));
    db.store.claim_runs("w", 1, TTL).await.unwrap();
    db.store.request_stop(&ids[0]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), l.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(n, sightline_store::RunNotice::StopRequested(ids[0].clone()));
    // A new run, then the same run released by its owner: both make it claimable.
    let x = crate::common::seed_runs_with_prefix(&db, "x", 1).await;
    let n = tokio::time::timeout(Duration::from_secs(5), l.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(n, sightline_store::RunNotice::Pending(x[0].clone()));
    assert_eq!(db.store.claim_runs("w2", 1, TTL).await.unwrap().len(), 1);
    assert_eq!(db.store.release_runs("w2").await.unwrap(), x);
    let n = tokio::time::timeout(Duration::from_secs(5), l.recv())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(n, sightline_store::RunNotice::Pending(x[0].clone()));
}
