//! PostgreSQL restarted under a running pipeline: a private PostgreSQL 15 cluster (never the
//! shared server other tests use), one worker on it, a fast-paced run of the sample clip;
//! once events are flowing the server is stopped (`-m fast`: every connection dropped), kept
//! down 3 s and started again. The run must complete with exactly the golden events, none
//! lost and none twice, and the worker must stay alive and still claim a new run.

use crate::common::free_port;
use crate::harness::{self, Env, GOLDEN_EVENTS};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const DOWN: Duration = Duration::from_secs(3);

/// A throwaway PostgreSQL cluster in a temporary directory, run as the `postgres` user
/// (the server refuses root), trust auth on 127.0.0.1, fsync off; stopped on drop.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let dir = tempfile::Builder::new()
            .prefix("sightline-fault-pg-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "chown the cluster directory to postgres");
        let pg = PrivatePg {
            dir,
            port: free_port(),
        };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.server_start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs a PostgreSQL tool as `postgres`; panics with its output when it fails.
    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join(tool))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}\n--- server log\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn server_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off",
            self.port,
            self.dir.path().join("sock").display()
        );
        let log = self.dir.path().join("server.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    fn server_stop(&self, mode: &str) {
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .args(["-D", self.data().to_str().unwrap_or_default()])
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

#[test]
fn postgres_restart_mid_run_loses_no_event() {
    let t_test = Instant::now();
    let pg = PrivatePg::start();
    let env = Env::postgres(&pg.url());
    let mut worker = harness::start_fast_clip_run(&env, "pg-restart");
    let clip = harness::sample_clip();

    // Events are flowing: a few are stored and the run is still going.
    let before = harness::wait_for(Duration::from_secs(120), "first stored events", || {
        let n = env.events("pg-restart").len();
        (n >= 3).then_some(n)
    });
    assert_eq!(
        env.state("pg-restart"),
        "running",
        "the run must still be running when the server goes down\n{}",
        env.log("w1")
    );
    assert!(before < GOLDEN_EVENTS, "{before} events already stored");

    let t_down = Instant::now();
    pg.server_stop("fast");
    std::thread::sleep(DOWN);
    pg.server_start();
    let downtime = t_down.elapsed();

    let took = env.wait_state(
        "pg-restart",
        &["completed", "failed", "stopped"],
        Duration::from_secs(150),
        &["w1"],
    );
    let run = env.run("pg-restart");
    assert_eq!(
        env.state("pg-restart"),
        "completed",
        "the run must complete despite the restart: {run}\n--- w1.log\n{}",
        env.log("w1")
    );
    // The pipeline went through the restart: never failed, retried or started again.
    let path: Vec<&str> = run["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    let path = path.join("→");
    let events = env.events("pg-restart");
    let dups = harness::duplicates(&events);
    assert!(
        worker.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the worker died across the restart\n{}",
        env.log("w1")
    );

    // The worker still claims new work after the restart: a second run starts on it.
    env.add_run("pg-after", &clip, "demo", &["--pacing", "fast"]);
    env.wait_state("pg-after", &["running"], Duration::from_secs(60), &["w1"]);
    let owner = env.run("pg-after")["owner"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    env.cli(&["runs", "stop", "pg-after"]);
    env.wait_state("pg-after", &["stopped"], Duration::from_secs(60), &["w1"]);

    eprintln!(
        "FIGURE: postgres restart: {}/{GOLDEN_EVENTS} events stored ({before} before the \
         restart), {dups} duplicates, server down {:.1} s, run completed {:.1} s after the \
         restart (states {path}), worker alive and claimed a new run (owner {owner}); test \
         {:.0} s",
        events.len(),
        downtime.as_secs_f64(),
        took.as_secs_f64(),
        t_test.elapsed().as_secs_f64()
    );
    assert_eq!(
        events.len(),
        GOLDEN_EVENTS,
        "stored events after the restart\n--- w1.log\n{}",
        env.log("w1")
    );
    assert_eq!(dups, 0, "duplicate events stored");
    assert_eq!(
        path, "pending→starting→running→completed",
        "the run was interrupted by the restart: {run}"
    );
    assert_eq!(owner, "w1", "the second run's owner");

    harness::stop_worker(&env, &mut worker, "w1");
}
