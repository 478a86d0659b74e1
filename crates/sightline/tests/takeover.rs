//! Two `sightline worker` processes on one PostgreSQL (a fresh database per test), six looped
//! runs of `samples/vtest.avi`:
//!
//! - every run is owned by exactly one worker at every moment: sampled owners, and the
//!   persisted transitions, where the acting worker only ever changes at a claim;
//! - SIGKILL one worker: its runs are `running` on the other within lease TTL + one poll
//!   interval (plus start-up slack), reported as the takeover time;
//! - SIGTERM the survivor: it exits within the shutdown bound and its runs go back to
//!   `pending` with no owner, ready for the next worker.
//!
//! The workers are the real binary (`CARGO_BIN_EXE_sightline`) and are driven with the real
//! CLI (`configs put`, `runs add`, `runs list`).

#![allow(clippy::print_stderr)]

mod common;

use common::repo;
use serde_json::Value;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEASE_TTL_S: u64 = 4;
const POLL_MS: u64 = 500;

fn admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn fresh_db() -> (String, String) {
    let admin = admin_url();
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test starts it)");
    let name = format!(
        "sightline_takeover_{}_{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() % 1_000_000
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    let base = &admin[..admin.rfind('/').unwrap()];
    (format!("{base}/{name}"), name)
}

async fn drop_db(name: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url()).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
    }
}

struct Env {
    db: String,
    data: tempfile::TempDir,
}

impl Env {
    fn cmd(&self, worker: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
        c.current_dir(repo())
            .env("SIGHTLINE_DATABASE_URL", &self.db)
            .env("SIGHTLINE_DATA_DIR", self.data.path())
            .env("SIGHTLINE_WORKER_ID", worker)
            .env("SIGHTLINE_ENGINE__LEASE_TTL_S", LEASE_TTL_S.to_string())
            .env("SIGHTLINE_ENGINE__HEARTBEAT_S", "1")
            .env("SIGHTLINE_ENGINE__POLL_INTERVAL_MS", POLL_MS.to_string())
            .env("SIGHTLINE_ENGINE__SHUTDOWN_TIMEOUT_S", "10")
            .env("SIGHTLINE_LOG__FORMAT", "text")
            .env_remove("RUST_LOG");
        c
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self.cmd("cli").args(args).output().expect("run sightline");
        assert!(
            out.status.success(),
            "sightline {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn runs(&self) -> Vec<Value> {
        self.cli(&["runs", "list"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn worker(&self, id: &str, max_runs: u32) -> Child {
        let log = std::fs::File::create(self.data.path().join(format!("{id}.log"))).unwrap();
        self.cmd(id)
            .args([
                "worker",
                "--rtsp-port",
                "0",
                "--max-runs",
                &max_runs.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start worker")
    }

    fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{id}.log"))).unwrap_or_default()
    }
}

/// Owner of every running run; fails if a run is active without exactly one owner.
fn owners(runs: &[Value]) -> BTreeMap<String, (String, Option<String>)> {
    runs.iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                (
                    r["state"].as_str().unwrap().to_owned(),
                    r["owner"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

fn wait_until(
    env: &Env,
    what: &str,
    within: Duration,
    mut ok: impl FnMut(&BTreeMap<String, (String, Option<String>)>) -> bool,
) -> BTreeMap<String, (String, Option<String>)> {
    let deadline = Instant::now() + within;
    loop {
        let o = owners(&env.runs());
        for (id, (state, owner)) in &o {
            let active = matches!(
                state.as_str(),
                "starting" | "running" | "retrying" | "stopping"
            );
            assert_eq!(
                active,
                owner.is_some(),
                "run {id} is {state} with owner {owner:?}"
            );
        }
        if ok(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_owner_each_takeover_after_sigkill_release_on_sigterm() {
    let (db, name) = fresh_db().await;
    let env = Env {
        db,
        data: tempfile::tempdir().unwrap(),
    };
    let cfg = env.data.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[model]\nname = \"nanodet-m-416\"\ninterval = 10\n[output]\nrtsp = false\n",
    )
    .unwrap();
    env.cli(&["migrate"]);
    env.cli(&["configs", "put", "t", cfg.to_str().unwrap()]);
    for i in 0..6 {
        env.cli(&[
            "runs",
            "add",
            "samples/vtest.avi",
            "-c",
            "t",
            "--loop",
            "--id",
            &format!("cam-{i}"),
        ]);
    }

    let mut a = env.worker("wa", 3);
    wait_until(&env, "wa to claim 3 runs", Duration::from_secs(60), |o| {
        o.values()
            .filter(|(s, w)| s == "running" && w.as_deref() == Some("wa"))
            .count()
            == 3
    });
    let mut b = env.worker("wb", 6);
    let o = wait_until(&env, "all 6 running", Duration::from_secs(60), |o| {
        o.values().all(|(s, _)| s == "running")
    });
    let on_a: Vec<String> = o
        .iter()
        .filter(|(_, (_, w))| w.as_deref() == Some("wa"))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(on_a.len(), 3, "{o:?}");

    // Crash: no release, leases must expire.
    a.kill().unwrap();
    a.wait().unwrap();
    let t0 = Instant::now();
    wait_until(
        &env,
        "takeover by wb",
        Duration::from_secs(LEASE_TTL_S + 30),
        |o| {
            o.values()
                .all(|(s, w)| s == "running" && w.as_deref() == Some("wb"))
        },
    );
    let takeover = t0.elapsed();
    eprintln!(
        "takeover after SIGKILL: {:.2} s (lease TTL {LEASE_TTL_S} s, poll {POLL_MS} ms)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover
            < Duration::from_secs(LEASE_TTL_S)
                + Duration::from_millis(POLL_MS)
                + Duration::from_secs(8),
        "takeover took {takeover:?}"
    );

    // Graceful stop: leases released, runs pending, exit within the bound.
    let t1 = Instant::now();
    common::sigterm(&b);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = b.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = b.kill();
            panic!(
                "worker did not exit within 20 s of SIGTERM:\n{}",
                env.log("wb")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("SIGTERM → exit: {:.2} s", t1.elapsed().as_secs_f64());
    assert!(status.success(), "{}", env.log("wb"));
    let o = owners(&env.runs());
    assert!(
        o.values().all(|(s, w)| s == "pending" && w.is_none()),
        "after SIGTERM: {o:?}"
    );

    // The persisted history: the acting worker only changes at a claim (→ starting), and
    // the taken-over runs were claimed by wb after wa.
    for id in o.keys() {
        let show: Value = serde_json::from_str(&env.cli(&["runs", "show", id])).unwrap();
        let tr = show["transitions"].as_array().unwrap();
        let mut last: Option<String> = None;
        let mut workers = Vec::new();
        for t in tr {
            let w = t["worker"].as_str().map(str::to_owned);
            if let Some(w) = &w {
                if last.as_ref() != Some(w) {
                    assert_eq!(
                        t["to"], "starting",
                        "run {id}: {w} acted without claiming: {tr:#?}"
                    );
                    workers.push(w.clone());
                }
                last = Some(w.clone());
            }
        }
        if on_a.contains(id) {
            assert_eq!(workers, ["wa", "wb"], "run {id}: {tr:#?}");
        } else {
            assert_eq!(workers, ["wb"], "run {id}: {tr:#?}");
        }
    }
    drop_db(&name).await;
}
