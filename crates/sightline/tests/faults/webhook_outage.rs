//! A webhook receiver that answers 500 for 30 s, then 200: a plain HTTP/1.1 receiver in the
//! test (std TcpListener, keep-alive, one thread per connection) recording every request,
//! and one worker with two signed webhook sinks on it, during a fast-paced run of the sample
//! clip:
//!
//! - `single` (`batch = 1`, `max_concurrency = 1`): one event per request;
//! - `batched` (`batch = 10`, `max_concurrency = 4`): JSON arrays, concurrent requests.
//!
//! The outage starts with the first request and lasts 30 s. Then every stored event must
//! have been accepted (a 200) by each sink at least once, every request must carry a valid
//! `X-Sightline-Signature` (HMAC-SHA256 of the raw body under the sink's secret, checked
//! here with `hmac`/`sha2`, not with the engine's own code), and the order the notifier
//! promises must hold (crates/notify/README.md, "Ordering"): each sink claims its due rows
//! in insertion (stream) order and, after a failure, claims nothing newer before the failed
//! rows are due again, so a sink with one request in flight delivers in order through the
//! outage; concurrent requests may still reorder. So the test asserts, in stream time
//! (`pts_ns`): `single`'s first attempts and its first acceptances are in order, and every
//! `batched` array is in order; for `batched` the number of events accepted after a later
//! one is printed, not asserted.

use crate::harness::{self, Env, GOLDEN_EVENTS};
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OUTAGE: Duration = Duration::from_secs(30);
const SINKS: [(&str, &str); 2] = [("single", "k3y-single"), ("batched", "k3y-batched")];

/// One request as the receiver saw it.
struct Req {
    at: Instant,
    /// The sink, from the path (`/single`, `/batched`).
    sink: String,
    attempt: u32,
    signature: String,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    failing: Arc<AtomicBool>,
    reqs: Arc<Mutex<Vec<Req>>>,
}

impl Receiver {
    /// Listens on a free port (answering 500 while `failing`); the port.
    fn start(&self) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = self.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || me.serve(s));
            }
        });
        port
    }

    /// HTTP/1.1 keep-alive: requests with a Content-Length body until the client closes.
    fn serve(&self, s: TcpStream) {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let status = if self.failing.load(Ordering::SeqCst) {
                500
            } else {
                200
            };
            self.reqs.lock().unwrap().push(Req {
                at: Instant::now(),
                sink: path.trim_start_matches('/').to_owned(),
                attempt: headers
                    .get("x-sightline-attempt")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                signature: headers
                    .get("x-sightline-signature")
                    .cloned()
                    .unwrap_or_default(),
                body,
                status,
            });
            let reason = if status == 200 {
                "OK"
            } else {
                "Internal Server Error"
            };
            if write!(w, "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n").is_err() {
                return;
            }
        }
    }
}

/// HMAC-SHA256 of `body` under `secret` against a `sha256=<hex>` header, in constant time.
fn signed(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(sig) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The notifications in a request body: one object, or an array of them.
fn notifications(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body).expect("a JSON body") {
        Value::Array(a) => a,
        one => vec![one],
    }
}

fn pts(n: &Value) -> i64 {
    n["pts_ns"].as_i64().expect("pts_ns")
}

/// Events accepted after an event later in stream time had been accepted.
fn late(first_accepted: &[i64]) -> usize {
    let mut max = i64::MIN;
    let mut n = 0;
    for &p in first_accepted {
        if p < max {
            n += 1;
        }
        max = max.max(p);
    }
    n
}

#[test]
fn webhook_outage_delivers_every_event_signed() {
    let t_test = Instant::now();
    let rx = Receiver::default();
    rx.failing.store(true, Ordering::SeqCst);
    let port = rx.start();

    let mut env = Env::sqlite();
    let mut server = String::from("[notify]\npoll_interval_ms = 100\n");
    for (name, secret) in SINKS {
        let (batch, conc) = if name == "single" { (1, 1) } else { (10, 4) };
        server.push_str(&format!(
            "\n[[notify.sinks]]\nname = \"{name}\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/{name}\"\nsecret = \"{secret}\"\nbatch = {batch}\n\
             max_concurrency = {conc}\ntimeout_ms = 2000\nmax_attempts = 1000\n\
             backoff_base_ms = 250\nbackoff_max_ms = 2000\njitter = 0.2\n"
        ));
    }
    let server_file = env.path("server.toml");
    std::fs::write(&server_file, server).unwrap();
    env.var("SIGHTLINE_CONFIG", server_file.to_str().unwrap());
    let mut worker = harness::start_fast_clip_run(&env, "hook-outage");

    // The outage: from the first request, 30 s of 500s.
    let t_down = harness::wait_for(Duration::from_secs(120), "first webhook request", || {
        rx.reqs.lock().unwrap().first().map(|r| r.at)
    });
    std::thread::sleep(OUTAGE.saturating_sub(t_down.elapsed()));
    rx.failing.store(false, Ordering::SeqCst);
    let t_up = Instant::now();
    let outage = t_up - t_down;

    env.wait_state(
        "hook-outage",
        &["completed", "failed", "stopped"],
        Duration::from_secs(120),
        &["w1"],
    );
    let state = env.state("hook-outage");
    let events = env.events("hook-outage");
    let stored: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let accepted = |sink: &str| -> HashSet<String> {
        rx.reqs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.sink == sink && r.status == 200)
            .flat_map(|r| notifications(&r.body))
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    harness::wait_for(
        Duration::from_secs(60),
        "every stored event accepted",
        || {
            SINKS
                .iter()
                .all(|(s, _)| stored.is_subset(&accepted(s)))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1)); // late retries, if any, are counted too

    let reqs = rx.reqs.lock().unwrap();
    let mut figures = Vec::new();
    let mut failures = Vec::new();
    for (sink, secret) in SINKS {
        let mine: Vec<&Req> = reqs.iter().filter(|r| r.sink == sink).collect();
        let bad_sig = mine
            .iter()
            .filter(|r| !signed(secret, &r.body, &r.signature))
            .count();
        let refused = mine.iter().filter(|r| r.status == 500).count();
        let retries = mine.iter().filter(|r| r.attempt > 1).count();
        // First acceptance of each event, in arrival order.
        let mut seen = HashSet::new();
        let mut first_accepted = Vec::new();
        let mut accepted_total = 0;
        let mut last_first = t_up;
        for r in mine.iter().filter(|r| r.status == 200) {
            for n in notifications(&r.body) {
                accepted_total += 1;
                if seen.insert(n["id"].as_str().unwrap().to_owned()) {
                    first_accepted.push(pts(&n));
                    last_first = last_first.max(r.at);
                }
            }
        }
        let dups = accepted_total - seen.len();
        let missing = stored.iter().filter(|id| !seen.contains(*id)).count();
        let foreign = seen.iter().filter(|id| !stored.contains(*id)).count();
        // What the notifier promises: rows claimed in stream order.
        let first_attempts: Vec<i64> = mine
            .iter()
            .filter(|r| r.attempt == 1)
            .flat_map(|r| notifications(&r.body))
            .map(|n| pts(&n))
            .collect();
        let unordered_arrays = mine
            .iter()
            .filter(|r| {
                notifications(&r.body)
                    .windows(2)
                    .any(|w| pts(&w[0]) > pts(&w[1]))
            })
            .count();
        figures.push(format!(
            "{sink}: {}/{} accepted, {dups} duplicates, {} requests ({refused} answered 500, \
             {retries} retries), {bad_sig} bad signatures, {} of {} accepted after a later \
             event, drained {:.1} s after the 200s resumed",
            stored.len() - missing,
            stored.len(),
            mine.len(),
            late(&first_accepted),
            first_accepted.len(),
            last_first.duration_since(t_up).as_secs_f64()
        ));
        if missing > 0 || foreign > 0 {
            failures.push(format!(
                "{sink}: {missing} events missing, {foreign} unknown"
            ));
        }
        if bad_sig > 0 {
            failures.push(format!("{sink}: {bad_sig} requests badly signed"));
        }
        if refused == 0 {
            failures.push(format!("{sink}: no request met the outage"));
        }
        if sink == "single" && late(&first_accepted) > 0 {
            failures.push(format!(
                "single: {} events accepted after a later one: {first_accepted:?}",
                late(&first_accepted)
            ));
        }
        if sink == "single" && late(&first_attempts) > 0 {
            failures.push(format!(
                "single: first attempts out of stream order: {first_attempts:?}"
            ));
        }
        if unordered_arrays > 0 {
            failures.push(format!(
                "{sink}: {unordered_arrays} request bodies out of stream order"
            ));
        }
    }
    drop(reqs);
    eprintln!(
        "FIGURE: webhook outage: receiver answered 500 for {:.1} s; {}; test {:.0} s",
        outage.as_secs_f64(),
        figures.join("; "),
        t_test.elapsed().as_secs_f64()
    );
    assert_eq!(state, "completed", "{}", env.log("w1"));
    assert_eq!(events.len(), GOLDEN_EVENTS, "stored events");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        worker.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the worker died\n{}",
        env.log("w1")
    );
    harness::stop_worker(&env, &mut worker, "w1");
}
