//! Jobs: a run and its job row created together, read, listed by job state, counted,
//! claimed like runs, and deleted with their events.

use crate::common::{TestDb, both_backends, seed_config};
use crate::events::make_events;
use serde_json::json;
use sightline_core::error::Classify;
use sightline_core::{ErrorKind, JobState, RunState};
use sightline_store::{JobFilter, NewJob, NewRun, SourceUri};
use std::time::Duration;

fn new_job(name: &str) -> (NewRun, NewJob) {
    let mut run = NewRun::new(SourceUri::new(format!("file:///up/{name}")).unwrap(), "cfg");
    run.output = json!({"job": true, "pacing": "fast", "rtsp": false});
    (
        run,
        NewJob {
            file_name: name.into(),
            upload_path: Some(format!("/up/{name}")),
            size_bytes: 8_131_690,
        },
    )
}

async fn jobs_are_runs(db: &TestDb) {
    let s = &db.store;
    seed_config(s).await;
    // A plain run is not a job.
    let plain = s
        .create_run(NewRun::new(SourceUri::new("test://bars").unwrap(), "cfg"))
        .await
        .unwrap();
    assert!(!s.is_job(&plain.id).await.unwrap());
    assert_eq!(
        s.get_job(&plain.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let mut ids = Vec::new();
    for i in 0..5 {
        let (run, job) = new_job(&format!("clip{i}.mp4"));
        let j = s.create_job(run, job).await.unwrap();
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.run.state, RunState::Pending);
        assert_eq!(j.size_bytes, 8_131_690);
        assert!(s.is_job(&j.run.id).await.unwrap());
        ids.push(j.run.id);
    }
    let got = s.get_job(&ids[2]).await.unwrap();
    assert_eq!(got.file_name, "clip2.mp4");
    assert_eq!(got.upload_path.as_deref(), Some("/up/clip2.mp4"));
    // A bad name is refused and leaves no run behind.
    let (run, mut job) = new_job("x");
    job.file_name = String::new();
    assert_eq!(
        s.create_job(run, job).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // Workers claim jobs like runs.
    let claimed = s
        .claim_runs("w1", 3, Duration::from_secs(30))
        .await
        .unwrap();
    let claimed_jobs = claimed.iter().filter(|r| ids.contains(&r.id)).count();
    assert!(claimed_jobs >= 2, "{claimed:?}");
    let counts = s.job_counts().await.unwrap();
    let count = |st: JobState| counts.iter().find(|(s, _)| *s == st).unwrap().1;
    assert_eq!(count(JobState::Running), claimed_jobs as u64);
    assert_eq!(count(JobState::Queued), 5 - claimed_jobs as u64);
    assert_eq!(count(JobState::Completed), 0);

    // Listing by job state, with a cursor.
    let queued = s
        .list_jobs(&JobFilter {
            state: Some(JobState::Queued),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.items.len(), 5 - claimed_jobs);
    assert!(queued.items.iter().all(|j| j.state == JobState::Queued));
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_jobs(&JobFilter {
                state: None,
                limit: 2,
                cursor: cursor.take(),
            })
            .await
            .unwrap();
        all.extend(page.items.into_iter().map(|j| j.run.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        all, ids,
        "every job once, in creation order, and no plain run"
    );

    // A queued job cancelled at once shows as cancelled.
    let last = ids.last().unwrap().clone();
    if s.get_job(&last).await.unwrap().state == JobState::Queued {
        s.request_stop(&last).await.unwrap();
        assert_eq!(s.get_job(&last).await.unwrap().state, JobState::Cancelled);
    }

    // Event counts by type, rule and class; deleting the job deletes them.
    let events = make_events(std::slice::from_ref(&ids[4]), 12);
    s.insert_events(&events).await.unwrap();
    let counts = s.event_counts(&ids[4]).await.unwrap();
    assert_eq!(counts.iter().map(|c| c.count).sum::<u64>(), 12);
    if s.get_job(&ids[4]).await.unwrap().state.is_terminal() {
        let gone = s.delete_job(&ids[4]).await.unwrap();
        assert_eq!(gone.upload_path.as_deref(), Some("/up/clip4.mp4"));
        assert_eq!(
            s.get_job(&ids[4]).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(s.event_counts(&ids[4]).await.unwrap().is_empty());
    }
    // An active job cannot be deleted.
    let active = s.get_job(&ids[0]).await.unwrap();
    assert_eq!(active.state, JobState::Running);
    assert_eq!(
        s.delete_job(&ids[0]).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

both_backends!(jobs_are_runs);

/// The engine's upload sweep sees the uploads the server owns of jobs that ended, and stops
/// seeing one once it is forgotten; kept uploads and active jobs are left alone.
async fn ended_job_uploads_are_what_the_sweep_deletes(db: &TestDb) {
    let s = &db.store;
    seed_config(s).await;
    let make = |name: &str, delete: bool| {
        let (mut run, job) = new_job(name);
        run.output["delete_source"] = json!(delete);
        (run, job)
    };
    let (r, j) = make("owned.mp4", true);
    let owned = s.create_job(r, j).await.unwrap().run.id;
    let (r, j) = make("kept.mp4", false);
    let kept = s.create_job(r, j).await.unwrap().run.id;
    let (r, j) = make("queued.mp4", true);
    let queued = s.create_job(r, j).await.unwrap().run.id;
    assert!(s.ended_job_uploads(10).await.unwrap().is_empty());
    // Cancelled while queued: ended, the upload still recorded.
    s.request_stop(&owned).await.unwrap();
    s.request_stop(&kept).await.unwrap();
    assert_eq!(s.get_job(&owned).await.unwrap().state, JobState::Cancelled);
    let found = s.ended_job_uploads(10).await.unwrap();
    assert_eq!(found, vec![(owned.clone(), "/up/owned.mp4".to_owned())]);
    s.forget_job_upload(&owned).await.unwrap();
    assert!(s.ended_job_uploads(10).await.unwrap().is_empty());
    assert_eq!(s.get_job(&owned).await.unwrap().upload_path, None);
    assert_eq!(
        s.get_job(&kept).await.unwrap().upload_path.as_deref(),
        Some("/up/kept.mp4")
    );
    assert_eq!(s.get_job(&queued).await.unwrap().state, JobState::Queued);
}

both_backends!(ended_job_uploads_are_what_the_sweep_deletes);

/// A worker with one free slot takes the plain (live) run created after two queued jobs; a
/// worker holds at most its `max_jobs` jobs.
async fn runs_are_claimed_before_jobs(db: &TestDb) {
    let s = &db.store;
    seed_config(s).await;
    for name in ["a.mp4", "b.mp4"] {
        let (run, job) = new_job(name);
        s.create_job(run, job).await.unwrap();
    }
    let live = s
        .create_run(NewRun::new(SourceUri::new("test://bars").unwrap(), "cfg"))
        .await
        .unwrap();
    let first = s
        .claim_runs("w1", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, live.id, "the run goes first");
    // Four free slots, one of them for jobs: one of the two queued jobs.
    let next = s
        .claim_work("w2", 4, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(s.is_job(&next[0].id).await.unwrap());
    let again = s
        .claim_work("w2", 4, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty(), "its job slot is taken: {again:?}");
    let other = s
        .claim_work("w3", 4, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(other.len(), 1, "another worker takes the other job");
}

both_backends!(runs_are_claimed_before_jobs);
