//! Delivery figures: throughput from a backlog to MQTT QoS 1 (the local Mosquitto on
//! 127.0.0.1:1883) and to a local webhook (per-event and batched), and the end-to-end delay
//! from event insert to subscriber receipt (p50/p95) while events trickle in as a pipeline
//! produces them.
//!
//! `cargo run --release -p sightline-notify --example notify_bench [-- --pg]`
//! (`--pg` uses a fresh PostgreSQL database on 127.0.0.1:5432 instead of a SQLite file).
#![allow(clippy::print_stdout)]

use axum::body::Bytes;
use rumqttc::{AsyncClient, Event as MqEvent, MqttOptions, Packet, QoS};
use sightline_core::{Event, EventId, EventKind, Pts, RuleEvent, RunId, SystemClock, TrackId};
use sightline_notify::{
    MqttSinkConfig, Notification, Notifier, NotifySection, SinkConfig, WebhookSinkConfig,
};
use sightline_store::{NewRun, SourceUri, Store, StoreOptions};
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Arrivals = Arc<Mutex<HashMap<EventId, Instant>>>;

fn make_events(run: &RunId, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut b = RuleEvent::new(EventKind::ZoneEnter, "r", Pts::from_millis(i as i64));
            b.class = Some("person".into());
            b.track_id = Some(TrackId(i as u64));
            b.zone = Some("dock".into());
            b.confidence = Some(0.8);
            b.bbox = Some(sightline_core::BBox::new(1.0, 2.0, 3.0, 4.0));
            Event {
                id: EventId::generate(),
                run_id: run.clone(),
                wall_ms: chrono::Utc::now().timestamp_millis(),
                body: b,
                media: None,
            }
        })
        .collect()
}

async fn open_store(pg: bool, dir: &std::path::Path) -> (Store, Option<String>) {
    let mut created = None;
    let url = if pg {
        let admin = "postgres://postgres@127.0.0.1:5432/postgres";
        let mut c = sqlx::PgConnection::connect(admin).await.expect("postgres");
        let name = format!("sightline_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut c)
            .await
            .expect("create db");
        created = Some(name.clone());
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    } else {
        format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display())
    };
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
        .put_config_version("cfg", &serde_json::json!({}))
        .await
        .expect("config");
    (store, created)
}

async fn new_run(store: &Store, id: &str) -> RunId {
    let mut r = NewRun::new(SourceUri::new("test://x").expect("uri"), "cfg");
    r.id = Some(RunId::parse(id).expect("id"));
    store.create_run(r).await.expect("run").id
}

async fn subscriber(filter: String, arrivals: Arrivals) -> tokio::task::JoinHandle<()> {
    let mut o = MqttOptions::new(
        format!("bench-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        1883,
    );
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(1000);
    let (client, mut el) = AsyncClient::new(o, 10_000);
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _c = client;
        let mut tx = Some(tx);
        while let Ok(ev) = el.poll().await {
            match ev {
                MqEvent::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                MqEvent::Incoming(Packet::Publish(p)) => {
                    if let Ok(n) = serde_json::from_slice::<Notification>(&p.payload) {
                        arrivals
                            .lock()
                            .expect("lock")
                            .entry(n.id)
                            .or_insert_with(Instant::now);
                    }
                }
                _ => {}
            }
        }
    });
    rx.await.expect("suback");
    task
}

async fn receiver(arrivals: Arrivals) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let arrivals = arrivals.clone();
            async move {
                let now = Instant::now();
                let ids: Vec<EventId> = match serde_json::from_slice::<Vec<Notification>>(&body) {
                    Ok(v) => v.into_iter().map(|n| n.id).collect(),
                    Err(_) => serde_json::from_slice::<Notification>(&body)
                        .map(|n| vec![n.id])
                        .unwrap_or_default(),
                };
                let mut a = arrivals.lock().expect("lock");
                for id in ids {
                    a.entry(id).or_insert(now);
                }
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

async fn wait_for(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Delivery throughput from a backlog of `n` rows already in the outbox.
async fn throughput(
    store: &Store,
    sink: SinkConfig,
    arrivals: Arrivals,
    run: &RunId,
    n: usize,
) -> f64 {
    let cfg = NotifySection {
        sinks: vec![sink],
        poll_interval_ms: 10,
        ..NotifySection::default()
    };
    for chunk in make_events(run, n).chunks(500) {
        store
            .insert_events_routed(chunk, |e| cfg.route(e))
            .await
            .expect("insert");
    }
    let t = Instant::now();
    let notifier = Notifier::start(
        store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .expect("start");
    wait_for(&arrivals, n).await;
    let secs = t.elapsed().as_secs_f64();
    notifier.shutdown().await;
    n as f64 / secs
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let pg = std::env::args().any(|a| a == "--pg");
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, created) = open_store(pg, dir.path()).await;
    println!("backend: {}", store.backend().as_str());
    let tag = uuid::Uuid::new_v4().simple().to_string();

    // MQTT QoS 1 throughput.
    let run = new_run(&store, "bench-mqtt").await;
    let arrivals: Arrivals = Arc::default();
    let sub = subscriber(format!("bench/{tag}/#"), arrivals.clone()).await;
    let mut m = MqttSinkConfig::new("mqtt", "127.0.0.1", 1883);
    m.topic = format!("bench/{tag}/{{run_id}}/{{type}}");
    m.batch = 500;
    let n = 10_000;
    let eps = throughput(
        &store,
        SinkConfig::Mqtt(m.clone()),
        arrivals.clone(),
        &run,
        n,
    )
    .await;
    println!(
        "mqtt qos1 throughput: {eps:.0} events/s ({n} events, rounds of {})",
        m.batch
    );

    // End-to-end delay: a pipeline writing 10 events every 20 ms (500 events/s), waking the
    // notifier after each write as the engine's writer does.
    let run = new_run(&store, "bench-e2e").await;
    arrivals.lock().expect("lock").clear();
    let m2 = MqttSinkConfig {
        name: "mqtt-e2e".into(),
        batch: 100,
        ..m.clone()
    };
    let cfg = NotifySection {
        sinks: vec![SinkConfig::Mqtt(m2)],
        poll_interval_ms: 200,
        ..NotifySection::default()
    };
    let notifier = Notifier::start(
        store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .expect("start");
    let waker = notifier.waker();
    let mut produced: HashMap<EventId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..100 {
        tick.tick().await;
        let evs = make_events(&run, 10);
        let now = Instant::now();
        store
            .insert_events_routed(&evs, |e| cfg.route(e))
            .await
            .expect("insert");
        waker.wake();
        produced.extend(evs.iter().map(|e| (e.id, now)));
    }
    wait_for(&arrivals, produced.len()).await;
    notifier.shutdown().await;
    sub.abort();
    let got = arrivals.lock().expect("lock").clone();
    let mut delays: Vec<Duration> = produced
        .iter()
        .filter_map(|(id, t)| got.get(id).map(|a| a.saturating_duration_since(*t)))
        .collect();
    delays.sort();
    println!(
        "mqtt qos1 end-to-end (insert -> subscriber), {} events at 500/s: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        delays.len(),
        pct(&delays, 0.5).as_secs_f64() * 1e3,
        pct(&delays, 0.95).as_secs_f64() * 1e3,
        delays.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Webhook throughput, per event and batched.
    for (batch, conc) in [(1u32, 4u32), (1, 16), (50, 4)] {
        let run = new_run(&store, &format!("bench-hook-{batch}-{conc}")).await;
        let arrivals: Arrivals = Arc::default();
        let url = receiver(arrivals.clone()).await;
        let mut w = WebhookSinkConfig::new(format!("hook-{batch}-{conc}"), url);
        w.batch = batch;
        w.max_concurrency = conc;
        w.secret = Some(sightline_notify::Secret::new("k"));
        let n = if batch == 1 { 3000 } else { 10_000 };
        let eps = throughput(&store, SinkConfig::Webhook(w), arrivals, &run, n).await;
        println!(
            "webhook throughput (batch {batch}, concurrency {conc}): {eps:.0} events/s ({n} events)"
        );
    }
    store.close().await;
    if let Some(name) = created {
        let admin = "postgres://postgres@127.0.0.1:5432/postgres";
        if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await;
        }
    }
}
