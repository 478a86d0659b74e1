//! MQTT delivery against real Mosquitto brokers: a private one (started, stopped and
//! restarted by the test) for the outage, and the system one on 127.0.0.1:1883 for QoS
//! levels and retained occupancy.

mod common;

use common::{Broker, Subscriber, events, seed_run, wait_until};
use sightline_core::{EventKind, SystemClock};
use sightline_notify::{MqttSinkConfig, Notification, Notifier, NotifySection, SinkConfig};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn section(sink: MqttSinkConfig) -> NotifySection {
    NotifySection {
        sinks: vec![SinkConfig::Mqtt(sink)],
        poll_interval_ms: 20,
        ..NotifySection::default()
    }
}

/// 500 events produced while the broker is down: the writer is never slowed (each batch is
/// stored in milliseconds while the sink is disconnected); once the broker is back a
/// subscriber receives every event at least once, and exactly 500 distinct ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn broker_outage_delays_but_loses_nothing() {
    let db = match common::postgres().await {
        Some(db) => db,
        None => common::sqlite().await,
    };
    let run = seed_run(&db.store, "cam-1").await;
    let mut broker = Broker::stopped();
    // A persistent subscriber session registered before the outage, as a real consumer
    // would have: messages published while it reconnects are queued for it.
    broker.start().await;
    let sub = Subscriber::start_with(broker.port, "sightline/#", Some("outage-sub")).await;
    broker.stop().await;

    let mut sink = MqttSinkConfig::new("broker", "127.0.0.1", broker.port);
    sink.reconnect_min_ms = 50;
    sink.reconnect_max_ms = 400;
    let mut cfg = section(sink);
    cfg.max_outbox_depth = 100;
    let notifier = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();

    let evs = events(&run, 500);
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    for batch in evs.chunks(25) {
        let t = Instant::now();
        db.store
            .insert_events_routed(batch, |e| cfg.route(e))
            .await
            .unwrap();
        notifier.wake();
        worst = worst.max(t.elapsed());
    }
    let insert_total = started.elapsed();
    eprintln!("500 events inserted during the outage in {insert_total:?} (worst batch {worst:?})");
    assert!(
        worst < Duration::from_millis(500),
        "a batch took {worst:?}: the writer waited on the sink"
    );
    assert_eq!(db.store.outbox_depth("broker").await.unwrap().pending, 500);
    wait_until(
        Duration::from_secs(3),
        "status to show the backlog",
        || async {
            let s = &notifier.status()[0];
            !s.connected && s.pending == 500 && s.over_cap && s.last_error.is_some()
        },
    )
    .await;

    broker.start().await;
    wait_until(
        Duration::from_secs(15),
        "all 500 at the subscriber",
        || async {
            let ids: HashSet<String> = sub
                .received()
                .iter()
                .filter_map(|r| serde_json::from_slice::<Notification>(&r.payload).ok())
                .map(|n| n.id.to_string())
                .collect();
            ids.len() == 500
        },
    )
    .await;
    let got = sub.received();
    let ids: HashSet<String> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Notification>(&r.payload)
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    let want: HashSet<String> = evs.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, want, "exactly the 500 events after dedupe by id");
    assert!(got.len() >= 500);
    assert!(got.iter().all(|r| r.topic.starts_with("sightline/cam-1/")));
    wait_until(Duration::from_secs(5), "outbox drained", || async {
        db.store.outbox_depth("broker").await.unwrap().pending == 0
    })
    .await;
    wait_until(Duration::from_secs(3), "connected status", || async {
        let s = &notifier.status()[0];
        s.connected && s.pending == 0 && !s.over_cap
    })
    .await;
    notifier.shutdown().await;
    broker.stop().await;
}

/// QoS 0 and 2 sinks on the system broker, a custom topic template, and the retained
/// per-zone occupancy topic a late subscriber sees at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_levels_topics_and_retained_occupancy() {
    common::system_broker().await;
    let db = common::sqlite().await;
    let run = seed_run(&db.store, "cam-2").await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let sub = Subscriber::start(1883, &format!("t/{tag}/#")).await;

    let mut q2 = MqttSinkConfig::new("q2", "127.0.0.1", 1883);
    q2.qos = 2;
    q2.topic = format!("t/{tag}/q2/{{run_id}}/{{type}}/{{zone}}");
    q2.retain_occupancy = true;
    q2.occupancy_topic = format!("t/{tag}/occ/{{run_id}}/{{zone}}");
    let mut q0 = MqttSinkConfig::new("q0", "127.0.0.1", 1883);
    q0.qos = 0;
    q0.topic = format!("t/{tag}/q0/{{class}}");
    let cfg = NotifySection {
        sinks: vec![SinkConfig::Mqtt(q2), SinkConfig::Mqtt(q0)],
        poll_interval_ms: 20,
        ..NotifySection::default()
    };
    let notifier = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();

    let mut evs = events(&run, 3);
    evs[2].body.kind = EventKind::Count;
    evs[2].body.zone = Some("dock".into());
    evs[2].body.count = Some(4);
    db.store
        .insert_events_routed(&evs, |e| cfg.route(e))
        .await
        .unwrap();
    notifier.wake();
    wait_until(Duration::from_secs(5), "7 messages", || async {
        sub.received().len() >= 7
    })
    .await;
    let got = sub.received();
    let topics: HashSet<&str> = got.iter().map(|r| r.topic.as_str()).collect();
    for t in [
        format!("t/{tag}/q2/cam-2/zone_enter/dock"),
        format!("t/{tag}/q2/cam-2/line_cross/_"),
        format!("t/{tag}/q2/cam-2/count/dock"),
        format!("t/{tag}/occ/cam-2/dock"),
        format!("t/{tag}/q0/person"),
        format!("t/{tag}/q0/car"),
    ] {
        assert!(topics.contains(t.as_str()), "missing {t} in {topics:?}");
    }
    for sink in ["q2", "q0"] {
        wait_until(Duration::from_secs(3), "delivered", || async {
            db.store.outbox_depth(sink).await.unwrap().pending == 0
        })
        .await;
    }
    // A late subscriber sees the current occupancy at once (retained).
    let late = Subscriber::start(1883, &format!("t/{tag}/occ/#")).await;
    wait_until(Duration::from_secs(3), "retained occupancy", || async {
        late.received()
            .iter()
            .any(|r| r.retain && r.payload == b"4")
    })
    .await;
    notifier.shutdown().await;
    // Clear the retained message so the shared broker stays clean.
    let (c, mut el) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(format!("clean-{tag}"), "127.0.0.1", 1883),
        10,
    );
    c.publish(
        format!("t/{tag}/occ/cam-2/dock"),
        rumqttc::QoS::AtLeastOnce,
        true,
        Vec::<u8>::new(),
    )
    .await
    .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(ev) = el.poll().await {
            if matches!(ev, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) {
                break;
            }
        }
    })
    .await;
}

/// A broker that does not answer at start: the notifier starts anyway, the sink shows as
/// disconnected with the reason, rows wait in the outbox, and shutdown does not hang on the
/// reconnect loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_at_start() {
    let db = common::sqlite().await;
    let run = seed_run(&db.store, "cam-3").await;
    let mut sink = MqttSinkConfig::new("down", "127.0.0.1", common::free_port());
    sink.reconnect_min_ms = 20;
    sink.reconnect_max_ms = 100;
    let cfg = section(sink);
    let notifier = Notifier::start(
        db.store.clone(),
        &cfg,
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .unwrap();
    db.store
        .insert_events_routed(&events(&run, 5), |e| cfg.route(e))
        .await
        .unwrap();
    wait_until(Duration::from_secs(3), "disconnected status", || async {
        let s = &notifier.status()[0];
        !s.connected
            && s.pending == 5
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused"))
    })
    .await;
    let t = Instant::now();
    notifier.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(db.store.outbox_depth("down").await.unwrap().pending, 5);
}
