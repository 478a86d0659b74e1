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
    // An orchestrator's secret (`--secret-env`): too short refused, then stored once, the
    // second time kept (idempotent, as an init container reruns), never printed.
    let from_env = |secret: &str| {
        output(
            cmd(data, "127.0.0.1:0")
                .env("SL_TEST_ADMIN_TOKEN", secret)
                .args(["token", "create", "--role", "admin", "--name", "bootstrap"])
                .args(["--secret-env", "SL_TEST_ADMIN_TOKEN"]),
        )
    };
    assert!(!from_env("short").status.success());
    let admin = "k8s-secret-0123456789abcdef0123456789abcdef";
    for _ in 0..2 {
        let out = from_env(admin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    let list = output(cmd(data, "127.0.0.1:0").args(["token", "list"]));
    let listed = String::from_utf8(list.stdout).unwrap();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(!listed.contains(&viewer) && !listed.contains(&operator));

    let port = free_port();
    let _s = serve(data, &format!("127.0.0.1:{port}"), port, &[]);
    assert_eq!(http(port, "GET", "/v1/runs", None).unwrap().0, 401);
    assert_eq!(
        http(port, "GET", "/v1/runs", Some("slt_nope")).unwrap().0,
        401
    );
    assert_eq!(http(port, "GET", "/v1/runs", Some(&viewer)).unwrap().0, 200);
    // The environment's secret is an admin token: an admin-only route gets past auth.
    let s = http(port, "DELETE", "/v1/models/no-such-model", Some(admin))
        .unwrap()
        .0;
    assert!(s != 401 && s != 403, "admin from --secret-env: {s}");
    assert_eq!(
        http(port, "DELETE", "/v1/models/no-such-model", Some(&viewer))
            .unwrap()
            .0,
        403
    );
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

/// `POST /v1/runs` with a JSON body; `(status, body)`.
fn post_run(port: u16, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let b = body.to_string();
    write!(
        s,
        "POST /v1/runs HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, body)
}

/// Issue 19: sources given through the API stay inside the file roots and away from the
/// server's own and internal addresses; the CLI is not restricted.
#[test]
fn api_sources_are_confined() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("uploads")).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.avi"), b"not yours").unwrap();
    // An uploaded clip, and a symlink inside the uploads root pointing outside it.
    std::fs::copy(
        repo().join("samples/vtest.avi"),
        data.join("uploads/clip.avi"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.join("secret.avi"), data.join("uploads/link.avi")).unwrap();
    let ok =
        output(cmd(&data, "127.0.0.1:0").args(["configs", "put", "demo", "configs/demo.toml"]));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let op = {
        let out = output(cmd(&data, "127.0.0.1:0").args(["token", "create", "--role", "operator"]));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let port = free_port();
    let s = serve(&data, &format!("127.0.0.1:{port}"), port, &[]);

    let uploads = data.join("uploads").canonicalize().unwrap();
    let probes = [
        "file:///etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        "file:///root/.bash_history".to_owned(),
        "/nonexistent/clip.avi".to_owned(),
        format!("{}/../../outside/secret.avi", uploads.display()),
        format!(
            "file://{}/%2e%2e/%2E%2E/outside/secret.avi",
            uploads.display()
        ),
        format!("{}/link.avi", uploads.display()),
        "../outside/secret.avi".to_owned(),
        format!("{}/clip.avi\u{0}.txt", uploads.display()),
    ];
    let mut file_answers = std::collections::BTreeSet::new();
    for (i, p) in probes.iter().enumerate() {
        let (status, body) = post_run(
            port,
            &op,
            &serde_json::json!({"id": format!("probe{i}"), "source": p, "config": "demo"}),
        );
        assert_eq!(status, 422, "{p:?}: {body}");
        assert_eq!(body["error"]["code"], "source_not_allowed", "{p:?}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("passwd") && !text.contains("secret") && !text.contains("No such"),
            "{p:?}: the answer names nothing on the server: {text}"
        );
        file_answers.insert(text);
    }
    assert_eq!(
        file_answers.len(),
        1,
        "one answer for every file probe: {file_answers:?}"
    );
    let mut net_answers = std::collections::BTreeSet::new();
    for (i, p) in [
        "http://169.254.169.254/latest/meta-data/",
        "rtsp://127.0.0.1:5432/",
        &format!("http://127.0.0.1:{port}/v1/runs"),
        "rtsp://[::ffff:169.254.169.254]/x",
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = post_run(
            port,
            &op,
            &serde_json::json!({"id": format!("net{i}"), "source": p, "config": "demo"}),
        );
        assert_eq!(status, 422, "{p}: {body}");
        assert_eq!(body["error"]["code"], "source_not_allowed", "{p}: {body}");
        assert_eq!(body["error"]["details"][0]["path"], "source");
        net_answers.insert(body.to_string());
    }
    assert_eq!(net_answers.len(), 1, "{net_answers:?}");
    // Nothing was created.
    let (_, list) = http(port, "GET", "/v1/runs", Some(&op)).unwrap();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // What is allowed still works: the shipped sample (by its path or relative to the
    // roots), an uploaded file, a camera on a LAN address.
    for (id, src) in [
        (
            "sample",
            repo().join("samples/vtest.avi").display().to_string(),
        ),
        ("relative", "vtest.avi".to_owned()),
        (
            "upload",
            format!("file://{}", uploads.join("clip.avi").display()),
        ),
        (
            "camera",
            "rtsp://user:pw@192.168.1.20:554/stream".to_owned(),
        ),
    ] {
        let (status, body) = post_run(
            port,
            &op,
            &serde_json::json!({"id": id, "source": src, "config": "demo", "output": {"confined": false}}),
        );
        assert_eq!(status, 201, "{src}: {body}");
    }
    drop(s);
    // The client cannot lift the confinement: the stored run says so.
    let out = output(cmd(&data, "127.0.0.1:0").args(["runs", "show", "upload"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"confined\": true") || text.contains("\"confined\":true"),
        "{text}"
    );

    // The CLI is not confined: a file outside every root plays (the clip's first 4 s).
    let cut = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(repo().join("samples/vtest.avi"))
        .args(["-frames:v", "40", "-c", "copy"])
        .arg(outside.join("mine.avi"))
        .status()
        .unwrap();
    assert!(cut.success());
    let run = output(
        cmd(&data, "127.0.0.1:0")
            .args(["run"])
            .arg(outside.join("mine.avi"))
            .args(["-c", "configs/demo.toml", "-o", "none", "--fast"]),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("line_cross"),
        "events printed: {}",
        String::from_utf8_lossy(&run.stdout)
    );
}
