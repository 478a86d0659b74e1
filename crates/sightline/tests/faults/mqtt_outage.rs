//! MQTT broker down for 60 s while a run produces events: a private Mosquitto (persistent
//! sessions kept across its restart), a persistent QoS 1 subscriber (`mosquitto_sub -c`) on
//! `sightline/#`, one worker whose MQTT sink points at the broker. The broker is stopped as
//! soon as the first event reaches the subscriber, the fast-paced run goes on storing events
//! in the outbox, and 60 s later the broker comes back: every stored event must reach the
//! subscriber (by event id), duplicates counted, the drain time measured.

use crate::common::free_port;
use crate::harness::{self, Env, GOLDEN_EVENTS, Guard};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OUTAGE: Duration = Duration::from_secs(60);

/// A private Mosquitto on 127.0.0.1:`port`, persistence in its directory.
struct Broker {
    dir: PathBuf,
    child: Guard,
}

impl Broker {
    fn start(dir: &Path, port: u16, n: u32) -> Broker {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nuser root\n",
                dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("broker-{n}.log"))).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .arg("-v")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        let b = Broker {
            dir: dir.to_owned(),
            child: Guard(Some(child)),
        };
        harness::wait_for(Duration::from_secs(10), "mosquitto listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        b
    }

    /// SIGTERM (Mosquitto saves its sessions) and wait for the exit.
    fn stop(mut self) {
        let mut c = self.child.0.take().unwrap();
        crate::common::sigterm(&c);
        harness::wait_exit(&mut c, Duration::from_secs(10), "mosquitto");
        assert!(
            self.dir.join("mosquitto.db").exists(),
            "mosquitto saved no sessions"
        );
    }
}

/// Messages received by the subscriber so far: event ids in arrival order (non-event
/// payloads skipped).
fn received(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

fn subscriber(port: u16, out: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap();
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "-i", &format!("fault-sub-{}", std::process::id())])
        .args(["-q", "1", "-t", "sightline/#"])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (Debian package mosquitto-clients)")
}

#[test]
fn mqtt_broker_outage_delivers_every_stored_event() {
    let t_test = Instant::now();
    let mut env = Env::sqlite();
    let bdir = env.path("broker");
    std::fs::create_dir(&bdir).unwrap();
    let port = free_port();
    let broker = Broker::start(&bdir, port, 1);

    // The persistent subscriber: ready once a probe published after it started comes back.
    let got = env.path("received.jsonl");
    let mut sub = Guard(Some(subscriber(port, &got)));
    harness::wait_for(Duration::from_secs(10), "subscriber ready", || {
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-q", "1", "-t", "sightline/probe", "-m", r#"{"probe":1}"#])
            .output();
        std::thread::sleep(Duration::from_millis(200));
        std::fs::read_to_string(&got)
            .unwrap_or_default()
            .contains("probe")
            .then_some(())
    });

    let server = env.path("server.toml");
    std::fs::write(
        &server,
        format!(
            "[notify]\npoll_interval_ms = 100\n\n[[notify.sinks]]\nname = \"broker\"\n\
             kind = \"mqtt\"\nhost = \"127.0.0.1\"\nport = {port}\nqos = 1\nkeep_alive_s = 5\n\
             reconnect_min_ms = 100\nreconnect_max_ms = 500\nack_timeout_ms = 1000\n"
        ),
    )
    .unwrap();
    env.var("SIGHTLINE_CONFIG", server.to_str().unwrap());
    let mut worker = harness::start_fast_clip_run(&env, "mqtt-outage");

    // The first event reaches the subscriber: the broker goes down.
    harness::wait_for(Duration::from_secs(120), "first event delivered", || {
        (!received(&got).is_empty()).then_some(())
    });
    let t_down = Instant::now();
    broker.stop();
    let stored_at_down = env.events("mqtt-outage").len();
    assert_eq!(
        env.state("mqtt-outage"),
        "running",
        "the run must still produce events during the outage"
    );
    let delivered_before = received(&got).len();

    // The run goes on storing events while the broker is down.
    std::thread::sleep(OUTAGE.saturating_sub(t_down.elapsed()));
    let stored_in_outage = env.events("mqtt-outage").len() - stored_at_down;
    let broker = Broker::start(&bdir, port, 2);
    let outage = t_down.elapsed();
    let t_up = Instant::now();
    if sub.0.as_mut().unwrap().try_wait().unwrap().is_some() {
        // mosquitto_sub gave up: the same persistent session picks up what is queued.
        sub = Guard(Some(subscriber(port, &got)));
    }
    env.wait_state(
        "mqtt-outage",
        &["completed", "failed", "stopped"],
        Duration::from_secs(120),
        &["w1"],
    );

    let events = env.events("mqtt-outage");
    let stored: HashSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let drained = harness::wait_for(
        Duration::from_secs(60),
        "every stored event delivered",
        || {
            let ids: HashSet<String> = received(&got).into_iter().collect();
            stored.is_subset(&ids).then(|| t_up.elapsed())
        },
    );
    // Late redeliveries of the last round, if any, are counted too.
    std::thread::sleep(Duration::from_secs(1));
    let ids = received(&got);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    let dups: usize = per_id.values().map(|n| n - 1).sum();
    let foreign = per_id.keys().filter(|id| !stored.contains(**id)).count();
    let state = env.state("mqtt-outage");
    let alive = worker.0.as_mut().unwrap().try_wait().unwrap().is_none();
    eprintln!(
        "FIGURE: mqtt outage: {}/{} stored events delivered ({delivered_before} \
         delivered before the broker went down, {stored_in_outage} stored during the \
         outage), {dups} duplicates, broker down {:.1} s, backlog drained {:.1} s after it \
         came back; test {:.0} s",
        stored
            .iter()
            .filter(|id| per_id.contains_key(id.as_str()))
            .count(),
        stored.len(),
        outage.as_secs_f64(),
        drained.as_secs_f64(),
        t_test.elapsed().as_secs_f64()
    );
    assert_eq!(state, "completed", "{}", env.log("w1"));
    assert_eq!(events.len(), GOLDEN_EVENTS, "stored events");
    assert_eq!(harness::duplicates(&events), 0, "duplicate events stored");
    assert_eq!(foreign, 0, "delivered ids that were never stored");
    assert!(
        stored_in_outage > 0,
        "no event was stored while the broker was down"
    );
    assert!(alive, "the worker died\n{}", env.log("w1"));

    harness::stop_worker(&env, &mut worker, "w1");
    drop(sub);
    broker.stop();
}
