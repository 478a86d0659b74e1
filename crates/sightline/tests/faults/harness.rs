//! Drives the real binary for the fault tests: a data directory, an optional PostgreSQL
//! database of its own, CLI calls, long-running `worker`/`serve` processes with their logs,
//! and waits on a run's state and stored events.

#![allow(dead_code)] // each fault uses a different subset

use crate::common::repo;
use serde_json::Value;
use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The golden replay of `samples/vtest.avi` through `configs/demo.toml` stores this many
/// events (crates/engine/tests/it/replay.rs).
pub const GOLDEN_EVENTS: usize = 58;

/// The PostgreSQL server the tests use (`scripts/test` starts it).
pub fn pg_admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database on `admin` (a `postgres://…/db` URL): `(url, name)`.
pub async fn pg_fresh_db(admin: &str, tag: &str) -> (String, String) {
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
    let name = format!(
        "sightline_fault_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 1_000_000
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut c)
        .await
        .unwrap();
    let base = &admin[..admin.rfind('/').unwrap()];
    (format!("{base}/{name}"), name)
}

pub async fn pg_drop_db(admin: &str, name: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut c)
        .await;
    }
}

/// One test's world: a data directory (SQLite database, media, logs) or a PostgreSQL URL,
/// and environment overrides given to every process it starts.
pub struct Env {
    pub db: Option<String>,
    pub data: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// SQLite in the data directory.
    pub fn sqlite() -> Env {
        Env {
            db: None,
            data: tempfile::tempdir().unwrap(),
            vars: Vec::new(),
        }
    }

    /// The given PostgreSQL database.
    pub fn postgres(url: &str) -> Env {
        Env {
            db: Some(url.to_owned()),
            ..Env::sqlite()
        }
    }

    /// Adds an environment override (`SIGHTLINE_…`) for every later process.
    pub fn var(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.vars.push((k.to_owned(), v.into()));
        self
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.data.path().join(name)
    }

    pub fn cmd(&self, worker: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
        c.current_dir(repo())
            .env("SIGHTLINE_DATA_DIR", self.data.path())
            .env("SIGHTLINE_WORKER_ID", worker)
            .env("SIGHTLINE_ENGINE__HEARTBEAT_S", "1")
            .env("SIGHTLINE_ENGINE__POLL_INTERVAL_MS", "300")
            .env("SIGHTLINE_ENGINE__SHUTDOWN_TIMEOUT_S", "10")
            .env("SIGHTLINE_LOG__FORMAT", "text")
            .env_remove("RUST_LOG")
            .env_remove("SIGHTLINE_DATABASE_URL");
        if let Some(db) = &self.db {
            c.env("SIGHTLINE_DATABASE_URL", db);
        }
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// A CLI call that must succeed; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cmd("cli").args(args).output().expect("run sightline");
        assert!(
            out.status.success(),
            "sightline {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a pipeline config file and stores it as `name`.
    pub fn config(&self, name: &str, toml: &str) {
        let f = self.path(&format!("{name}.toml"));
        std::fs::write(&f, toml).unwrap();
        self.cli(&["configs", "put", name, f.to_str().unwrap()]);
    }

    /// A long-running process (`worker …`, `serve …`), stderr into `<id>.log`.
    pub fn spawn(&self, id: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.path(&format!("{id}.log"))).unwrap();
        self.cmd(id)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sightline")
    }

    /// `sightline worker` with its own RTSP port (0: none bound) and metrics listener.
    pub fn worker(&self, id: &str, extra: &[&str]) -> Child {
        let mut args = vec!["worker", "--rtsp-port", "0"];
        args.extend_from_slice(extra);
        self.spawn(id, &args)
    }

    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{id}.log"))).unwrap_or_default()
    }

    /// `runs add SOURCE -c CONFIG --id ID [extra]`.
    pub fn add_run(&self, id: &str, source: &str, config: &str, extra: &[&str]) {
        let mut args = vec!["runs", "add", source, "-c", config, "--id", id];
        args.extend_from_slice(extra);
        self.cli(&args);
    }

    /// `runs show ID` as JSON (`state`, `owner`, `attempts`, `last_error`, `transitions`…).
    pub fn run(&self, id: &str) -> Value {
        serde_json::from_str(&self.cli(&["runs", "show", id])).unwrap()
    }

    pub fn state(&self, id: &str) -> String {
        let v = self.run(id);
        v["state"]
            .as_str()
            .or_else(|| v["run"]["state"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the run is in one of `states`; the time it took. Panics with the process
    /// logs `logs` after `within`.
    pub fn wait_state(
        &self,
        id: &str,
        states: &[&str],
        within: Duration,
        logs: &[&str],
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            let s = self.state(id);
            if states.contains(&s.as_str()) {
                return t0.elapsed();
            }
            if t0.elapsed() > within {
                let logs: String = logs
                    .iter()
                    .map(|l| format!("--- {l}.log\n{}", self.log(l)))
                    .collect();
                panic!(
                    "run {id} is {s}, not {states:?}, after {within:?}: {}\n{logs}",
                    self.run(id)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The run's stored events (`sightline events --run ID`), oldest first.
    pub fn events(&self, run: &str) -> Vec<Value> {
        self.cli(&["events", "--run", run, "--limit", "100000"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The identity of an event for loss/duplicate counting: what the rules decided, not the
/// stamp it got (id, wall time).
pub fn event_key(e: &Value) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        e["pts"], e["type"], e["rule"], e["track_id"], e["zone"], e["line"]
    )
}

/// Waits for a child to exit within `within` (kills it and panics otherwise).
pub fn wait_exit(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills a child on drop (a failing test leaves no process behind).
pub struct Guard(pub Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A file of the repository, absolute.
pub fn repo_path(rel: &str) -> String {
    repo().join(rel).display().to_string()
}

/// `samples/vtest.avi`, absolute.
pub fn sample_clip() -> String {
    repo().join("samples/vtest.avi").display().to_string()
}

/// `configs/demo.toml` with the same model, zones and rules (so the sample clip still stores
/// the [`GOLDEN_EVENTS`]) but no event pictures and no RTSP output: less work per event,
/// nothing written besides the events.
pub fn demo_toml_lean() -> String {
    let demo = std::fs::read_to_string(repo().join("configs/demo.toml")).unwrap();
    let mut out = demo.clone();
    for (from, to) in [
        ("crops = true", "crops = false"),
        ("snapshots = true", "snapshots = false"),
        ("rtsp = true", "rtsp = false"),
    ] {
        assert!(
            out.contains(from),
            "configs/demo.toml no longer has {from:?}"
        );
        out = out.replacen(from, to, 1);
    }
    out
}

/// Polls `f` every 100 ms until it gives a value; panics with `what` after `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stored events that repeat an earlier one's [`event_key`].
pub fn duplicates(events: &[Value]) -> usize {
    let keys: std::collections::HashSet<String> = events.iter().map(event_key).collect();
    events.len() - keys.len()
}

/// Stores [`demo_toml_lean`] as `demo`, starts worker `w1` and adds the sample clip, played
/// once as fast as possible, as run `id`: the golden replay under a fault.
pub fn start_fast_clip_run(env: &Env, id: &str) -> Guard {
    env.config("demo", &demo_toml_lean());
    let worker = Guard(Some(env.worker("w1", &[])));
    env.add_run(id, &sample_clip(), "demo", &["--pacing", "fast"]);
    worker
}

/// SIGTERM to the worker `id`: it must exit cleanly within 30 s.
pub fn stop_worker(env: &Env, worker: &mut Guard, id: &str) {
    let child = worker.0.as_mut().expect("a running worker");
    crate::common::sigterm(child);
    let st = wait_exit(child, Duration::from_secs(30), "worker");
    worker.0 = None;
    assert!(st.success(), "worker exit: {st}\n{}", env.log(id));
}

/// A tmpfs of `bytes` mounted on `dir` (created) for a full-disk test; unmounted when the
/// guard drops. `None` when not root (mounting needs it; CI runs as root): the caller skips.
pub fn mount_tmpfs(dir: &std::path::Path, bytes: u64) -> Option<Unmount> {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !is_root {
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(mounted, "mount a {bytes}-byte tmpfs on {}", dir.display());
    Some(Unmount(dir.to_path_buf()))
}

/// Unmounts its folder when dropped (see [`mount_tmpfs`]).
pub struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
