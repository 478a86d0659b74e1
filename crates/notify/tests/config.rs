//! The `[notify]` section: parsing, defaults, masking, validation with field paths, routing.

mod common;

use sightline_core::{EventKind, FieldErrors, RunId};
use sightline_notify::{NotifySection, SinkConfig};

const GOOD: &str = r#"
max_outbox_depth = 5000

[[sinks]]
name = "broker"
kind = "mqtt"
host = "127.0.0.1"
username = "sightline"
password = "hunter2"
filter = { types = ["zone_enter", "line_cross"], classes = ["person"] }

[[sinks]]
name = "crm"
kind = "webhook"
url = "https://example.com/hooks/sightline"
secret = "s3cret"
batch = 10
"#;

#[test]
fn parses_with_defaults_and_masks_secrets() {
    let n: NotifySection = toml::from_str(GOOD).unwrap();
    let mut e = FieldErrors::new();
    n.validate("notify", &mut e);
    assert!(e.is_empty(), "{e}");
    let SinkConfig::Mqtt(m) = &n.sinks[0] else {
        panic!("mqtt first")
    };
    assert_eq!(m.port, 1883);
    assert_eq!(m.qos, 1);
    assert_eq!(m.topic, "sightline/{run_id}/{type}");
    let SinkConfig::Webhook(w) = &n.sinks[1] else {
        panic!("webhook second")
    };
    assert_eq!((w.batch, w.max_attempts, w.max_concurrency), (10, 10, 4));
    assert_eq!(w.secret.as_ref().unwrap().expose(), "s3cret");
    let shown = format!("{n:?}") + &serde_json::to_string(&n).unwrap();
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cret"),
        "{shown}"
    );
    assert!(shown.contains("***"));
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    let bad = "[[sinks]]\nname = \"a\"\nkind = \"mqtt\"\nhost = \"h\"\ntopik = \"x\"\n";
    let err = toml::from_str::<NotifySection>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("topik"), "{err}");
    let bad = "[[sinks]]\nname = \"a\"\nkind = \"smtp\"\n";
    assert!(toml::from_str::<NotifySection>(bad).is_err());
    let bad = "[[sinks]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\nfilter = { types = [\"zone_entr\"] }\n";
    assert!(toml::from_str::<NotifySection>(bad).is_err());
}

#[test]
fn every_error_is_reported_with_its_path() {
    let text = r#"
poll_interval_ms = 0
[[sinks]]
name = "broker"
kind = "mqtt"
host = ""
topic = "sightline/{run}/{type}"
qos = 3
password = "p"
occupancy_topic = "z/{class}"

[[sinks]]
name = "broker"
kind = "webhook"
url = "ftp://example.com/x"
max_concurrency = 0
backoff_base_ms = 5000
backoff_max_ms = 10
jitter = 1.5

[[sinks]]
name = "bad name!"
kind = "webhook"
url = "not a url"
filter = { classes = [""] }
"#;
    let n: NotifySection = toml::from_str(text).unwrap();
    let mut e = FieldErrors::new();
    n.validate("notify", &mut e);
    let paths: Vec<&str> = e.iter().map(|f| f.path.as_str()).collect();
    for want in [
        "notify.poll_interval_ms",
        "notify.sinks[0].host",
        "notify.sinks[0].topic",
        "notify.sinks[0].qos",
        "notify.sinks[0].password",
        "notify.sinks[0].occupancy_topic",
        "notify.sinks[1].name",
        "notify.sinks[1].url",
        "notify.sinks[1].max_concurrency",
        "notify.sinks[1].backoff_max_ms",
        "notify.sinks[1].jitter",
        "notify.sinks[2].name",
        "notify.sinks[2].url",
        "notify.sinks[2].filter.classes[0]",
    ] {
        assert!(paths.contains(&want), "missing {want} in {e}");
    }
    let topic = e
        .iter()
        .find(|f| f.path == "notify.sinks[0].topic")
        .unwrap();
    assert!(
        topic.message.contains("unknown placeholder {run}"),
        "{topic}"
    );
    let dup = e.iter().find(|f| f.path == "notify.sinks[1].name").unwrap();
    assert!(dup.message.contains("duplicate"), "{dup}");
    assert_eq!(e.len(), 14, "{e}");
}

#[test]
fn routes_by_type_and_class() {
    let n: NotifySection = toml::from_str(GOOD).unwrap();
    let run = RunId::parse("cam").unwrap();
    let mut evs = common::events(&run, 2); // person zone_enter, car line_cross
    assert_eq!(n.route(&evs[0]), ["broker", "crm"]);
    assert_eq!(
        n.route(&evs[1]),
        ["crm"],
        "car is filtered out of the broker"
    );
    evs[0].body.kind = EventKind::Dwell;
    assert_eq!(n.route(&evs[0]), ["crm"], "dwell is not a broker type");
    evs[0].body.kind = EventKind::ZoneEnter;
    evs[0].body.class = None;
    assert_eq!(
        n.route(&evs[0]),
        ["crm"],
        "no class: a class filter does not match"
    );
    let r = n.router();
    assert_eq!(r.route(&evs[1]), n.route(&evs[1]));
}

#[test]
fn start_refuses_an_invalid_config() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = common::sqlite().await;
        let mut n: NotifySection = toml::from_str(GOOD).unwrap();
        if let SinkConfig::Webhook(w) = &mut n.sinks[1] {
            w.url = "mailto:x@example.com".into();
        }
        let err = sightline_notify::Notifier::start(
            db.store.clone(),
            &n,
            std::sync::Arc::new(sightline_core::SystemClock),
            std::future::pending(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("notify.sinks[1].url"), "{err}");
    });
}
