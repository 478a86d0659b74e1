//! SIGKILL of a worker while a batch job's events are being written, then takeover by another
//! worker on the same PostgreSQL: no stored event lost or duplicated, and no event queued
//! twice for notification.
//!
//! The job is the sample clip played once at full speed (a job is a file run, ADR 0012), so
//! the worker that takes it over replays the file from its start: the events it re-emits carry the ids they had
//! (derived from the run and the rule decision) and the store keeps each once.

use crate::harness::{self, Env, GOLDEN_EVENTS, Guard};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const LEASE_TTL_S: u64 = 3;

async fn outbox_rows(db: &str) -> (i64, i64) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.unwrap();
    sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM outbox")
        .fetch_one(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_events_are_written_loses_and_duplicates_nothing() {
    let admin = harness::pg_admin_url();
    let (db, name) = harness::pg_fresh_db(&admin, "sigkill").await;
    let mut env = Env::postgres(&db);
    env.var("SIGHTLINE_ENGINE__LEASE_TTL_S", LEASE_TTL_S.to_string());
    // A webhook sink nobody answers: every stored event gets an outbox row, which stays
    // pending, so a second row for a replayed event would show.
    let server_toml = env.path("server.toml");
    std::fs::write(
        &server_toml,
        "[[notify.sinks]]\nkind = \"webhook\"\nname = \"hook\"\nurl = \"http://127.0.0.1:9/never\"\n",
    )
    .unwrap();
    env.var("SIGHTLINE_CONFIG", server_toml.to_str().unwrap());
    env.cli(&["migrate"]);
    env.config("demo", &harness::demo_toml_lean());
    // A batch job: the sample clip played once at full speed (a job is a run, ADR 0012).
    env.cli(&[
        "jobs",
        "add",
        "samples/vtest.avi",
        "-c",
        "demo",
        "--id",
        "clip",
    ]);

    let mut a = Guard(Some(env.worker("wa", &[])));
    // Kill in the middle of the stream, while event batches are being written.
    let t0 = Instant::now();
    let before = loop {
        let n = env.events("clip").len();
        if n >= 15 {
            break n;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no events from wa after 120 s ({n}):\n{}",
            env.log("wa")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let child = a.0.as_mut().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = env.events("clip").len();
    assert_ne!(
        env.state("clip"),
        "completed",
        "the run ended before the kill"
    );

    let _b = Guard(Some(env.worker("wb", &[])));
    let t_kill = Instant::now();
    // The dead worker's lease still says `running`: wait for wb to own the run.
    let takeover = loop {
        let r = env.run("clip");
        let owner = r["owner"].as_str().or_else(|| r["run"]["owner"].as_str());
        let state = env.state("clip");
        if owner == Some("wb") && (state == "running" || state == "completed") {
            break t_kill.elapsed();
        }
        assert!(
            t_kill.elapsed() < Duration::from_secs(LEASE_TTL_S + 20),
            "wb did not take the run over: {r}\n{}",
            env.log("wb")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    env.wait_state("clip", &["completed"], Duration::from_secs(180), &["wb"]);

    let events = env.events("clip");
    let keys: HashSet<String> = events.iter().map(harness::event_key).collect();
    let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let (outbox, outbox_events) = outbox_rows(&db).await;
    eprintln!(
        "FIGURE: worker SIGKILL mid-run: {at_kill} events stored at the kill (seen {before}), \
         taken over in {:.1} s, {} stored after completion ({} distinct decisions, golden \
         {GOLDEN_EVENTS}), {} duplicates, {outbox} outbox rows for {outbox_events} events",
        takeover.as_secs_f64(),
        events.len(),
        keys.len(),
        events.len() - keys.len(),
    );
    assert_eq!(ids.len(), events.len(), "event ids are unique");
    assert_eq!(keys.len(), events.len(), "an event was stored twice");
    assert_eq!(events.len(), GOLDEN_EVENTS, "events lost or added");
    assert_eq!(
        outbox, outbox_events,
        "an event was queued twice for the sink"
    );
    assert_eq!(outbox as usize, GOLDEN_EVENTS);
    let run = env.run("clip");
    let workers: Vec<&str> = run["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "starting")
        .filter_map(|t| t["worker"].as_str())
        .collect();
    assert_eq!(
        workers,
        ["wa", "wb"],
        "claimed by wa, then taken over by wb"
    );
    let job: serde_json::Value = serde_json::from_str(&env.cli(&["jobs", "show", "clip"])).unwrap();
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["progress"]["fraction"].as_f64(), Some(1.0), "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(
        std::path::Path::new(&harness::sample_clip()).exists(),
        "a job added from the CLI never deletes its file"
    );
    harness::pg_drop_db(&admin, &name).await;
}
