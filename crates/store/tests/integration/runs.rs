//! Run records: create, read, list with cursors, stop, delete, corrupt rows.

use crate::common::{TestDb, both_backends, seed_config, seed_runs};
use serde_json::json;
use sightline_core::error::Classify;
use sightline_core::{ErrorKind, RunId, RunState};
use sightline_store::{DesiredState, NewRun, RunFilter, SourceUri, StoreError};
use std::collections::HashSet;
use std::time::Duration;

async fn create_get_list(db: &TestDb) {
    let s = &db.store;
    // No config yet: a run cannot pin "latest".
    let new = NewRun::new(SourceUri::new("file:///v.avi").unwrap(), "cfg");
    let err = s.create_run(new.clone()).await.expect_err("no config");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    seed_config(s).await;
    s.put_config_version("cfg", &json!({"v": 2})).await.unwrap();
    let mut new = NewRun::new(SourceUri::new("rtsp://admin:hunter2@cam/1").unwrap(), "cfg");
    new.models = vec!["yolo".into(), "face".into()];
    new.output = json!({"rtsp": true});
    let rec = s.create_run(new).await.expect("create");
    assert_eq!(rec.state, RunState::Pending);
    assert_eq!(rec.desired_state, DesiredState::Run);
    assert_eq!(rec.config_version, 2, "pins the latest version");
    assert_eq!(rec.attempts, 0);
    assert_eq!(rec.owner, None);
    assert_eq!(rec.models, vec!["yolo".to_owned(), "face".to_owned()]);
    assert_eq!(rec.output, json!({"rtsp": true}));
    assert_eq!(rec.source.expose(), "rtsp://admin:hunter2@cam/1");
    let shown = serde_json::to_string(&rec).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!format!("{rec:?}").contains("hunter2"));

    let got = s.get_run(&rec.id).await.expect("get");
    assert_eq!(got, rec);
    let tr = s.transitions(&rec.id).await.unwrap();
    assert_eq!(tr.len(), 1);
    assert_eq!(
        (tr[0].from, tr[0].to, tr[0].reason.as_str()),
        (None, RunState::Pending, "created")
    );

    // Explicit id and version; duplicates conflict.
    let mut new = NewRun::new(SourceUri::new("test://bars").unwrap(), "cfg");
    new.id = Some(RunId::parse("fixed").unwrap());
    new.config_version = Some(1);
    assert_eq!(s.create_run(new.clone()).await.unwrap().config_version, 1);
    let err = s.create_run(new).await.expect_err("duplicate id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    let missing = RunId::parse("nope").unwrap();
    assert_eq!(
        s.get_run(&missing).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.transitions(&missing).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

async fn list_paginates_by_cursor(db: &TestDb) {
    let ids = seed_runs(db, 7).await;
    let s = &db.store;
    // Move two runs out of pending.
    let claimed = s.claim_runs("w", 2, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 2);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_runs(&RunFilter {
                state: None,
                limit: 3,
                cursor: cursor.clone(),
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every run once, in id order");

    let pending = s
        .list_runs(&RunFilter {
            state: Some(RunState::Pending),
            limit: 0,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 5);
    assert!(pending.items.iter().all(|r| r.state == RunState::Pending));
    assert!(pending.next_cursor.is_none());
    let starting = s
        .list_runs(&RunFilter {
            state: Some(RunState::Starting),
            limit: 0,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(starting.items.len(), 2);
}

async fn stop_and_delete(db: &TestDb) {
    let ids = seed_runs(db, 3).await;
    let s = &db.store;
    // Pending: stopped at once.
    let r = s.request_stop(&ids[0]).await.unwrap();
    assert_eq!(
        (r.state, r.desired_state),
        (RunState::Stopped, DesiredState::Stop)
    );
    assert!(r.ended_at.is_some());
    let tr = s.transitions(&ids[0]).await.unwrap();
    assert_eq!(tr.last().unwrap().reason, "stop_requested");
    // Idempotent on a finished run.
    assert_eq!(
        s.request_stop(&ids[0]).await.unwrap().state,
        RunState::Stopped
    );

    // Active: only the desire changes; the owner drives it.
    let claimed = s
        .claim_runs("w1", 5, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let r = s.request_stop(&ids[1]).await.unwrap();
    assert_eq!(
        (r.state, r.desired_state),
        (RunState::Starting, DesiredState::Stop)
    );
    let owned = s.owned_runs("w1").await.unwrap();
    assert_eq!(
        owned.iter().find(|o| o.id == ids[1]).unwrap().desired_state,
        DesiredState::Stop
    );

    // Deleting an active run is refused; a stopped one goes.
    let err = s.delete_run(&ids[1]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(matches!(err, StoreError::Conflict { .. }));
    s.transition(
        &ids[1],
        "w1",
        RunState::Starting,
        RunState::Stopping,
        "stop_requested",
    )
    .await
    .unwrap();
    s.transition(
        &ids[1],
        "w1",
        RunState::Stopping,
        RunState::Stopped,
        "stop_requested",
    )
    .await
    .unwrap();
    s.delete_run(&ids[1]).await.unwrap();
    assert_eq!(
        s.get_run(&ids[1]).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.delete_run(&ids[1]).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Releasing a run whose stop was requested finishes it instead of requeueing it.
    s.request_stop(&ids[2]).await.unwrap();
    let released = s.release_runs("w1").await.unwrap();
    assert!(released.is_empty());
    let r = s.get_run(&ids[2]).await.unwrap();
    assert_eq!((r.state, r.owner), (RunState::Stopped, None));
    let path: Vec<_> = s
        .transitions(&ids[2])
        .await
        .unwrap()
        .iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(
        path,
        [
            RunState::Pending,
            RunState::Starting,
            RunState::Stopping,
            RunState::Stopped
        ]
    );
}

async fn stats_and_config_version(db: &TestDb) {
    let ids = seed_runs(db, 1).await;
    let s = &db.store;
    s.update_run_stats(&ids[0], &json!({"fps": 24.5, "drops": 3}))
        .await
        .unwrap();
    assert_eq!(
        s.get_run(&ids[0]).await.unwrap().stats,
        json!({"fps": 24.5, "drops": 3})
    );
    let missing = RunId::parse("nope").unwrap();
    assert_eq!(
        s.update_run_stats(&missing, &json!({}))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    let err = s.set_run_config_version(&ids[0], 9).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    s.put_config_version("cfg", &json!({"v": 2})).await.unwrap();
    assert_eq!(
        s.set_run_config_version(&ids[0], 2)
            .await
            .unwrap()
            .config_version,
        2
    );
    s.request_stop(&ids[0]).await.unwrap();
    let err = s.set_run_config_version(&ids[0], 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

async fn corrupt_rows_are_reported_not_fatal(db: &TestDb) {
    let ids = seed_runs(db, 2).await;
    let s = &db.store;
    // A state this binary does not know (written by a newer version, or by hand), and a
    // claimable run whose model list is not a list.
    db.exec(
        "INSERT INTO runs (id, source_uri, config_name, config_version, state, created_at, updated_at) \
         VALUES ('zz-weird', 'file:///x', 'cfg', 1, 'paused', 1, 1)",
    )
    .await;
    db.exec("UPDATE runs SET models = '{}' WHERE id = 'r01'")
        .await;

    let page = s
        .list_runs(&RunFilter::default())
        .await
        .expect("listing survives");
    let listed: HashSet<_> = page
        .items
        .iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    assert_eq!(listed, HashSet::from(["r00".to_owned()]));
    let bad: HashSet<_> = page.corrupt.iter().map(|c| c.key.clone()).collect();
    assert_eq!(
        bad,
        HashSet::from(["zz-weird".to_owned(), "r01".to_owned()])
    );
    assert!(page.corrupt.iter().any(|c| c.detail.contains("paused")));

    let err = s
        .get_run(&RunId::parse("zz-weird").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);

    // Claiming hands out the good run, fails the corrupt one, and ignores the unknown state.
    let claimed = s
        .claim_runs("w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    let again = s
        .claim_runs("w2", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty(), "the corrupt run is not handed out again");
    db.exec("UPDATE runs SET models = '[]' WHERE id = 'r01'")
        .await;
    let r01 = s.get_run(&ids[1]).await.unwrap();
    assert_eq!(r01.state, RunState::Failed);
    assert_eq!(r01.last_error.unwrap().code, "corrupt_row");
    // A corrupt run can still be deleted.
    s.delete_run(&RunId::parse("zz-weird").unwrap())
        .await
        .unwrap();
}

both_backends!(
    create_get_list,
    list_paginates_by_cursor,
    stop_and_delete,
    stats_and_config_version,
    corrupt_rows_are_reported_not_fatal,
);
