//! How `sightline serve` decides on API authentication, with the real binary:
//! - a non-loopback bind without any token is refused at start-up with a clear message;
//! - `sightline token create` prints a secret once; with a token stored, even a loopback API
//!   requires it (401 without, 403 for a role too low, 200 with it);
//! - `--insecure` serves a non-loopback bind open, and says so.

mod common;

use common::{free_port, http, repo};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cmd(data: &Path, bind: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
    c.current_dir(repo())
        .env("SIGHTLINE_DATA_DIR", data)
        .env("SIGHTLINE_API__BIND", bind)
        .env("SIGHTLINE_LOG__FORMAT", "text")
        .env_remove("RUST_LOG");
    c
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path, bind: &str, port: u16, extra: &[&str]) -> Server {
    let log = std::fs::File::create(data.join(format!("serve-{port}.log"))).unwrap();
    let child = cmd(data, bind)
        .args(["serve", "--rtsp-port", "0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while http(port, "GET", "/health", None).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "API did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    Server(child)
}

fn output(c: &mut Command) -> Output {
    c.output().unwrap()
}

#[test]
fn tokens_decide_how_the_api_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    // Non-loopback, no token: refused, with the way out named.
    let out = output(cmd(data, "0.0.0.0:0").args(["serve", "--rtsp-port", "0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the HTTP API") && err.contains("sightline token create"),
        "{err}"
    );

    // --insecure: served open, loudly.
    let port = free_port();
    {
        let s = serve(data, &format!("0.0.0.0:{port}"), port, &["--insecure"]);
        assert_eq!(http(port, "GET", "/v1/runs", None).unwrap().0, 200);
        drop(s);
        let log = std::fs::read_to_string(data.join(format!("serve-{port}.log"))).unwrap();
        assert!(log.contains("INSECURE"), "{log}");
    }

    // Tokens: printed once, stored as hashes, then required even on loopback.
    let bad = output(cmd(data, "127.0.0.1:0").args(["token", "create", "--role", "root"]));
    assert!(!bad.status.success());
    let create = |role: &str| {
        let out = output(cmd(data, "127.0.0.1:0").args(["token", "create", "--role", role]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(secret.starts_with("slt_") && secret.len() == 68, "{secret}");
        secret
    };
    let viewer = create("viewer");
    let operator = create("operator");
    let list = output(cmd(data, "127.0.0.1:0").args(["token", "list"]));
    let listed = String::from_utf8(list.stdout).unwrap();
    assert_eq!(listed.lines().count(), 2);
    assert!(!listed.contains(&viewer) && !listed.contains(&operator));

    let port = free_port();
    let _s = serve(data, &format!("127.0.0.1:{port}"), port, &[]);
    assert_eq!(http(port, "GET", "/v1/runs", None).unwrap().0, 401);
    assert_eq!(
        http(port, "GET", "/v1/runs", Some("slt_nope")).unwrap().0,
        401
    );
    assert_eq!(http(port, "GET", "/v1/runs", Some(&viewer)).unwrap().0, 200);
    assert_eq!(
        http(port, "POST", "/v1/runs", Some(&viewer)).unwrap().0,
        403
    );
    // The operator may create runs: the empty body is then a validation error, not 401/403.
    assert_eq!(
        http(port, "POST", "/v1/runs", Some(&operator)).unwrap().0,
        422
    );
    // Probes stay open.
    assert_eq!(http(port, "GET", "/health", None).unwrap().0, 200);
    assert_eq!(http(port, "GET", "/metrics", None).unwrap().0, 200);
}
