//! The dashboard in a real browser: Debian's Chromium, headless, driven through WebDriver
//! (`chromedriver`, the `fantoccini` client) against the real `sightline serve` running the
//! sample clip with the demo config, API tokens on.
//!
//! - login with an admin token sets the session; the runs grid shows the run;
//! - the live view plays: `video.currentTime` and the decoded frame count increase over 3 s,
//!   and plays again by itself after the run was stopped and started;
//! - an event shows up in the events list with its thumbnail;
//! - a zone drawn with mouse clicks on the snapshot and saved creates config version N+1,
//!   and the run's snapshot shows the zone drawn (time from Save to the zone on screen is
//!   printed);
//! - a viewer sees no Save button, and a forced change gets 403;
//! - a screenshot of every page goes to `target/dashboard-screenshots/` (or to
//!   `$SIGHTLINE_SCREENSHOTS`, e.g. `docs/dashboard`).

#![allow(clippy::print_stderr)] // figures for the issue notes

mod common;

use common::{free_port, http, repo, sigterm};
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cmd(data: &Path, api: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
    c.current_dir(repo())
        .env("SIGHTLINE_DATA_DIR", data)
        .env("SIGHTLINE_API__BIND", format!("127.0.0.1:{api}"))
        .env("SIGHTLINE_LOG__FORMAT", "text")
        .env("SIGHTLINE_ENGINE__HEARTBEAT_S", "1")
        .env("SIGHTLINE_ENGINE__LEASE_TTL_S", "5")
        .env_remove("RUST_LOG");
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn token(data: &Path, api: u16, role: &str) -> String {
    run_ok(cmd(data, api).args(["token", "create", "--role", role]))
        .trim()
        .to_owned()
}

fn api_json(port: u16, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let b = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

/// `GET path` as raw bytes (a JPEG snapshot).
fn get_bytes(port: u16, path: &str, token: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    buf[at..].to_vec()
}

fn screenshot_dir() -> PathBuf {
    let d = std::env::var_os("SIGHTLINE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/dashboard-screenshots"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn wait_js(c: &Client, script: &str, what: &str, within: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !(v.is_null() || v == Value::Bool(false)) {
            return v;
        }
        if t0.elapsed() >= within {
            let page = c
                .execute(
                    "return [location.hash, document.querySelector('main')?.innerText,                      document.getElementById('toast')?.innerText]",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!("timed out waiting for {what}; the page: {page}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn browser(driver: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let t0 = Instant::now();
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver}"))
            .await
        {
            Ok(c) => return c,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(30), "chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Mean absolute difference of two JPEGs' pixels inside `[x0, x1) × [y0, y1)` (fractions).
fn region_diff(a: &[u8], b: &[u8], r: [f64; 4]) -> f64 {
    let a = image::load_from_memory(a).unwrap().to_rgb8();
    let b = image::load_from_memory(b).unwrap().to_rgb8();
    let (w, h) = a.dimensions();
    let (x0, y0, x1, y1) = (
        (r[0] * w as f64) as u32,
        (r[1] * h as f64) as u32,
        (r[2] * w as f64) as u32,
        (r[3] * h as f64) as u32,
    );
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
            for c in 0..3 {
                sum += (p[c] as i32 - q[c] as i32).unsigned_abs() as u64;
                n += 1;
            }
        }
    }
    sum as f64 / n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "Chromium and chromedriver are missing: run scripts/setup"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let api = free_port();
    let admin = token(data, api, "admin");
    let viewer = token(data, api, "viewer");
    run_ok(cmd(data, api).args(["configs", "put", "demo", "configs/demo.toml"]));
    run_ok(cmd(data, api).args([
        "runs",
        "add",
        "samples/vtest.avi",
        "-c",
        "demo",
        "--loop",
        "--id",
        "demo",
    ]));
    let log = std::fs::File::create(data.join("serve.log")).unwrap();
    let server = Proc(
        cmd(data, api)
            .args(["serve", "--rtsp-port", "0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while http(api, "GET", "/health", None).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let driver_port = free_port();
    let _driver = Proc(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let c = browser(driver_port, profile.path()).await;
    let base = format!("http://127.0.0.1:{api}");

    // Login.
    let t_page = Instant::now();
    c.goto(&format!("{base}/")).await.unwrap();
    c.wait().for_element(Locator::Id("token")).await.unwrap();
    shot(&c, "login").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&admin)
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &c,
        "return document.querySelector('.tile[data-run=\"demo\"] .badge')?.textContent === 'running'",
        "the demo tile running",
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "runs page: login to the running tile in {:.2} s",
        t_page.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // let the thumbnail load
    shot(&c, "runs").await;

    // The live view plays.
    c.goto(&format!("{base}/#/runs/demo")).await.unwrap();
    wait_js(
        &c,
        "const v = document.getElementById('live-video'); return v && v.currentTime > 0",
        "the live video to start",
        Duration::from_secs(30),
    )
    .await;
    let probe = "const v = document.getElementById('live-video'); \
                 return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]";
    let a = c.execute(probe, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = c.execute(probe, vec![]).await.unwrap();
    let (t_a, t_b) = (a[0].as_f64().unwrap(), b[0].as_f64().unwrap());
    let (f_a, f_b) = (a[1].as_f64().unwrap(), b[1].as_f64().unwrap());
    eprintln!(
        "live view: currentTime {t_a:.2} → {t_b:.2} s, decoded frames {f_a} → {f_b} over 3 s"
    );
    assert!(t_b - t_a > 2.0, "currentTime advanced {:.2} s", t_b - t_a);
    assert!(
        f_b - f_a >= 15.0,
        "decoded {} frames in 3 s (10 fps clip)",
        f_b - f_a
    );
    shot(&c, "run").await;

    // A lost stream reconnects by itself: stopping the run closes the live socket; once the
    // run is started again the same page plays again.
    let (st, _) = api_json(api, "POST", "/v1/runs/demo/stop", &admin, &json!({}));
    assert_eq!(st, 202);
    wait_js(
        &c,
        "return document.querySelector('#live .tag')?.textContent === 'reconnecting…'",
        "the player to notice the stream ended",
        Duration::from_secs(30),
    )
    .await;
    let t0 = Instant::now();
    while !http(api, "GET", "/v1/runs/demo", Some(&admin))
        .is_some_and(|(_, b)| b.contains("\"stopped\""))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the run did not stop"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, _) = api_json(api, "POST", "/v1/runs/demo/start", &admin, &json!({}));
    assert_eq!(st, 202);
    let t_reconnect = Instant::now();
    wait_js(
        &c,
        "const v = document.getElementById('live-video'); \
         return document.querySelector('#live .tag')?.textContent.startsWith('live') && v.currentTime > 1",
        "the live video to play again after a restart",
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "live view: playing again {:.1} s after the run was started again",
        t_reconnect.elapsed().as_secs_f64()
    );

    // Events with thumbnails.
    c.goto(&format!("{base}/#/events")).await.unwrap();
    wait_js(
        &c,
        "const i = document.querySelector('#events tr.event img.thumb'); return i && i.complete && i.naturalWidth > 0",
        "an event with its thumbnail",
        Duration::from_secs(60),
    )
    .await;
    shot(&c, "events").await;
    c.find(Locator::Css("#events tr.event"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &c,
        "const i = document.getElementById('event-snapshot'); return i && i.complete && i.naturalWidth > 0",
        "the event's snapshot",
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "event").await;

    // Draw a zone over the sky (top left: buildings, nothing moves there) and save it.
    let before_version =
        api_json(api, "GET", "/v1/runs/demo", &admin, &Value::Null).1["config_version"]
            .as_i64()
            .unwrap();
    let before = get_bytes(api, "/v1/runs/demo/snapshot.jpg", &admin);
    c.goto(&format!("{base}/#/runs/demo/editor")).await.unwrap();
    wait_js(
        &c,
        "const i = document.getElementById('editor-image'); return i && i.complete && i.naturalWidth > 0",
        "the editor's snapshot",
        Duration::from_secs(20),
    )
    .await;
    c.find(Locator::Id("new-zone"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let canvas = c.find(Locator::Id("editor-canvas")).await.unwrap();
    let (_, _, cw, ch) = canvas.rectangle().await.unwrap();
    // Corners at 3 %..25 % of the width and 3 %..20 % of the height, as offsets from the
    // canvas centre (how WebDriver positions a pointer on an element).
    let pts = [(0.03, 0.03), (0.25, 0.03), (0.25, 0.20), (0.03, 0.20)];
    let mut mouse = MouseActions::new("mouse".into());
    for (fx, fy) in pts {
        mouse = mouse
            .then(PointerAction::MoveToElement {
                element: canvas.clone(),
                duration: None,
                x: ((fx - 0.5) * cw).round(),
                y: ((fy - 0.5) * ch).round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
    }
    c.perform_actions(mouse).await.unwrap();
    c.find(Locator::Id("finish"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let name = c.find(Locator::Id("shape-name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("sky\n").await.unwrap();
    c.execute(
        "document.getElementById('shape-name').dispatchEvent(new Event('change'))",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "editor").await;
    let saved_at = Instant::now();
    c.find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved = wait_js(
        &c,
        "return document.getElementById('saved')?.textContent",
        "Save to report the new version",
        Duration::from_secs(10),
    )
    .await;
    let (_, run) = api_json(api, "GET", "/v1/runs/demo", &admin, &Value::Null);
    let new_version = run["config_version"].as_i64().unwrap();
    assert_eq!(new_version, before_version + 1, "{saved}");
    let (_, cfg) = api_json(api, "GET", "/v1/configs/demo", &admin, &Value::Null);
    let sky = &cfg["body"]["zones"]["sky"]["points"];
    assert_eq!(sky.as_array().map(Vec::len), Some(4), "{cfg}");
    // The snapshot shows the zone: the sky region changes (the zone's fill), a control
    // region (the lawn, lower left) does not change as much.
    let zone = [0.06, 0.06, 0.22, 0.17];
    let control = [0.05, 0.75, 0.20, 0.95];
    let mut shown = None;
    while saved_at.elapsed() < Duration::from_secs(10) {
        let now = get_bytes(api, "/v1/runs/demo/snapshot.jpg", &admin);
        let (dz, dc) = (
            region_diff(&before, &now, zone),
            region_diff(&before, &now, control),
        );
        if dz > 8.0 && dz > 3.0 * dc {
            shown = Some((saved_at.elapsed(), dz, dc));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (after, dz, dc) = shown.expect("the new zone never appeared in the snapshot");
    eprintln!(
        "zone editor: Save → zone on the stream in {:.2} s (zone region Δ {dz:.1}, control Δ {dc:.1})",
        after.as_secs_f64()
    );
    assert!(after < Duration::from_secs(3), "applied in {after:?}");

    // A rule the config rejects: the error is shown next to the field it names, nothing is
    // stored; deleting the rule makes the config valid again.
    let rules_before = c
        .execute(
            "return document.querySelectorAll('#rules .rule').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    c.find(Locator::Id("add-rule"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let idx = rules_before; // the new rule's index
    let ty = c
        .find(Locator::Css(&format!("[data-path=\"rules[{idx}].type\"]")))
        .await
        .unwrap();
    ty.select_by_value("count").await.unwrap();
    let th = c
        .find(Locator::Css(&format!(
            "[data-path=\"rules[{idx}].threshold\"]"
        )))
        .await
        .unwrap();
    th.clear().await.unwrap();
    th.send_keys("0").await.unwrap();
    c.execute(
        &format!("document.querySelector('[data-path=\"rules[{idx}].threshold\"]').dispatchEvent(new Event('change'))"),
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let msg = wait_js(
        &c,
        &format!(
            "return document.querySelector('[data-error=\"rules[{idx}].threshold\"]')?.textContent"
        ),
        "the field error next to the threshold",
        Duration::from_secs(10),
    )
    .await;
    eprintln!("zone editor: invalid rule refused: rules[{idx}].threshold: {msg}");
    shot(&c, "editor-error").await;
    let (_, after_bad) = api_json(api, "GET", "/v1/configs/demo", &admin, &Value::Null);
    assert_eq!(
        after_bad["version"].as_i64(),
        Some(new_version),
        "a rejected config stores no version"
    );
    c.find(Locator::Css(&format!(
        "[data-rule=\"{idx}\"] button.danger"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();

    // Configs (diff of the two versions), models, system.
    c.goto(&format!("{base}/#/configs/demo")).await.unwrap();
    wait_js(
        &c,
        "return document.querySelector('#diff .add')",
        "the diff",
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "configs").await;
    c.goto(&format!("{base}/#/models")).await.unwrap();
    wait_js(
        &c,
        "return document.querySelector('#models tbody tr')",
        "models",
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "models").await;
    c.goto(&format!("{base}/#/system")).await.unwrap();
    wait_js(
        &c,
        "return document.querySelector('#workers tbody tr')",
        "workers",
        Duration::from_secs(10),
    )
    .await;
    shot(&c, "system").await;

    // A viewer: no edit controls, and the server refuses edits whatever the page sends.
    c.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("token")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&viewer)
        .await
        .unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &c,
        "return document.querySelector('.tile[data-run=\"demo\"]')",
        "runs as viewer",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        c.find(Locator::Css("#add-run")).await.is_err(),
        "no add form for a viewer"
    );
    assert!(
        c.find(Locator::Css("[data-action=stop]")).await.is_err(),
        "no stop button"
    );
    c.goto(&format!("{base}/#/runs/demo/editor")).await.unwrap();
    c.wait().for_element(Locator::Id("rules")).await.unwrap();
    assert!(
        c.find(Locator::Id("save")).await.is_err(),
        "a viewer has no Save button"
    );
    let status = c
        .execute_async(
            "const done = arguments[0]; \
             const csrf = document.cookie.split('; ').find(c => c.startsWith('sightline_csrf=')).split('=')[1]; \
             fetch('/v1/configs/demo', {method: 'PUT', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: '{}'}) \
               .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "a viewer's forced change");
    // A cookie-authenticated change without the CSRF token is refused too.
    let status = c
        .execute_async(
            "const done = arguments[0]; \
             fetch('/v1/runs/demo/stop', {method: 'POST'}).then(r => r.json().then(b => done([r.status, b.error.code])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!([403, "csrf"]));
    // A deleted run's page says so.
    c.goto(&format!("{base}/#/runs/ghost")).await.unwrap();
    c.wait().for_element(Locator::Id("run-gone")).await.unwrap();
    shot(&c, "run-deleted").await;
    c.close().await.unwrap();

    sigterm(&server.0);
    let t0 = Instant::now();
    let mut server = server;
    while server.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(40), "serve did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CPU seconds used so far by process `pid` (user + system).
fn cpu_of(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = text
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    get(11) + get(12)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}

/// Figures of the live view (a bench, `--ignored`): glass-to-glass latency read back from
/// the wall-clock code drawn into each frame (`draw.clock_code`) against the page's clock,
/// the server's CPU with 0, 1 and 5 viewers of one run, and the runs page's first paint.
///
/// `cargo test --release -p sightline --test dashboard -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it alone on a quiet machine"]
async fn live_view_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let api = free_port();
    let cfg = json!({
        "model": {"name": "nanodet-m-416", "classes": ["person"]},
        "draw": {"clock_code": true},
        "output": {"rtsp": true}
    });
    std::fs::write(data.join("clock.json"), cfg.to_string()).unwrap();
    run_ok(
        cmd(data, api)
            .args(["configs", "put", "clock"])
            .arg(data.join("clock.json")),
    );
    run_ok(cmd(data, api).args([
        "runs",
        "add",
        "samples/vtest.avi",
        "-c",
        "clock",
        "--loop",
        "--id",
        "cam",
    ]));
    let log = std::fs::File::create(data.join("serve.log")).unwrap();
    let server = Proc(
        cmd(data, api)
            .args(["serve", "--rtsp-port", "0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while http(api, "GET", "/v1/runs/cam", None).is_none_or(|(_, b)| !b.contains("\"running\"")) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "serve did not start the run"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{api}");

    // Server CPU with 0, 1 and 5 viewers (WebSocket clients reading the stream).
    let window = Duration::from_secs(20);
    let mut cpu = Vec::new();
    for viewers in [0usize, 1, 5] {
        let mut tasks = Vec::new();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..viewers {
            let url = format!("ws://127.0.0.1:{api}/v1/runs/cam/live");
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                use futures_util::StreamExt;
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                let mut bytes = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(Some(Ok(m))) => bytes += m.len(),
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
                bytes
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (c0, w0) = (cpu_of(pid), Instant::now());
        tokio::time::sleep(window).await;
        let pct = (cpu_of(pid) - c0) / w0.elapsed().as_secs_f64() * 100.0;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut received = 0;
        for t in tasks {
            received += t.await.unwrap();
        }
        eprintln!(
            "viewers {viewers}: server CPU {pct:.1} % over {} s ({:.1} MB sent to viewers)",
            window.as_secs(),
            received as f64 / 1e6
        );
        cpu.push(pct);
    }

    // Glass-to-glass latency in the browser.
    let driver_port = free_port();
    let _driver = Proc(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let c = browser(driver_port, profile.path()).await;
    let t_nav = Instant::now();
    c.goto(&format!("{base}/")).await.unwrap();
    wait_js(
        &c,
        "return document.querySelector('.tile[data-run=\"cam\"]')",
        "the run tile",
        Duration::from_secs(30),
    )
    .await;
    let tiles = t_nav.elapsed();
    let fcp = c
        .execute(
            "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint'); return p ? p.startTime : null",
            vec![],
        )
        .await
        .unwrap();
    eprintln!(
        "runs page: first contentful paint {fcp} ms, tiles shown {:.0} ms after navigation",
        tiles.as_secs_f64() * 1000.0
    );
    c.goto(&format!("{base}/#/runs/cam")).await.unwrap();
    wait_js(
        &c,
        "const v = document.getElementById('live-video'); return v && v.currentTime > 1",
        "the live video",
        Duration::from_secs(30),
    )
    .await;
    let samples = c
        .execute_async(
            r#"const done = arguments[0];
               const v = document.getElementById('live-video');
               const cv = document.createElement('canvas');
               const g = cv.getContext('2d', { willReadFrequently: true });
               const out = []; const t0 = performance.now(); let last = -1;
               const CELL = 8, BITS = 48;
               function tick() {
                 if (performance.now() - t0 > 15000) { done(out); return; }
                 const w = v.videoWidth, h = v.videoHeight;
                 if (w && h) {
                   cv.width = w; cv.height = h; g.drawImage(v, 0, 0, w, h);
                   const y = h - CELL * 2 + CELL / 2;
                   const px = g.getImageData(0, y, (BITS + 2) * CELL, 1).data;
                   const at = (c) => { const i = (c * CELL + CELL / 2) * 4; return (px[i] + px[i + 1] + px[i + 2]) / 3 > 127; };
                   if (at(0) && !at(BITS + 1)) {
                     let ms = 0; for (let b = 0; b < BITS; b++) ms = ms * 2 + (at(b + 1) ? 1 : 0);
                     if (ms !== last) { last = ms; out.push(Date.now() - ms); }
                   }
                 }
                 requestAnimationFrame(tick);
               }
               tick();"#,
            vec![],
        )
        .await
        .unwrap();
    let lat: Vec<f64> = samples
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .filter(|d| (0.0..10_000.0).contains(d))
        .collect();
    assert!(lat.len() > 50, "{} latency samples", lat.len());
    let (p50, p95, max) = percentiles(lat.clone());
    eprintln!(
        "glass-to-glass (drawn → shown in Chromium, {} frames): p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms",
        lat.len()
    );
    c.close().await.unwrap();
    eprintln!(
        "CPU 1 vs 5 viewers: {:.1} % vs {:.1} % (no viewer {:.1} %)",
        cpu[1], cpu[2], cpu[0]
    );
    drop(server);
}
