//! The pipeline config file format: the shipped demo config is valid, bad configs report
//! every error at once with its path, and the committed JSON Schema is the one generated
//! from the types (regenerate with `SIGHTLINE_BLESS=1 cargo test -p sightline-config`).

use sightline_config::PipelineConfig;
use sightline_core::Labels;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn labels() -> Labels {
    Labels::new(["person", "bicycle", "car", "motorcycle", "bus", "truck"])
}

/// The validation errors of the config `text` (which must parse and must not validate).
fn validation_errors(text: &str) -> String {
    let c = PipelineConfig::from_toml(text).unwrap();
    c.validate(Some(&labels())).unwrap_err().to_string()
}

/// Validating `text` reports every one of `needles`.
fn assert_reported(text: &str, needles: &[&str]) {
    let errs = validation_errors(text);
    for needle in needles {
        assert!(errs.contains(needle), "missing {needle:?} in:\n{errs}");
    }
}

#[test]
fn the_demo_config_is_valid() {
    let c = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    c.validate(Some(&labels())).unwrap();
    assert_eq!(c.model.name, "nanodet-m-416");
    assert_eq!(c.rules.len(), 5);
}

#[test]
fn every_shipped_config_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = PipelineConfig::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            c.validate(Some(&labels()))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} configs");
    let still = PipelineConfig::from_file(&repo().join("configs/still-camera.toml")).unwrap();
    assert!(still.model.motion_gate.enabled);
    let demo = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    assert!(
        !demo.model.motion_gate.enabled,
        "the gate is off by default"
    );
}

#[test]
fn motion_gate_settings_are_checked() {
    let text = r#"
[model.motion_gate]
enabled = true
cell_delta = 0
min_area = 1.5
refresh_s = 0
"#;
    assert_reported(
        text,
        &[
            "model.motion_gate.cell_delta",
            "model.motion_gate.min_area",
            "model.motion_gate.refresh_s",
        ],
    );
    let err = PipelineConfig::from_toml("[model.motion_gate]\nthreshold = 3\n").unwrap_err();
    assert!(err.to_string().contains("model.motion_gate"), "{err}");
}

#[test]
fn every_error_is_reported_with_its_path() {
    let text = r#"
[model]
name = "nanodet-m-416"
interval = 0
classes = ["person", "forklift"]

[zones.dock]
points = [[0.1, 0.1], [0.5, 0.5]]

[lines.door]
a = [0.5, 0.0]
b = [0.5, 0.0]

[[rules]]
type = "zone"
name = "r1"
zone = "yard"

[[rules]]
type = "line"
name = "r2"
line = "door"
classes = ["unicorn"]

[output]
bitrate_kbps = 10
"#;
    assert_reported(
        text,
        &[
            "model.interval",
            "model.classes[1]",
            "forklift",
            "the model's classes are: person, bicycle",
            "zones.dock.points",
            "rules[0].zone",
            "yard",
            "unicorn",
            "output.bitrate_kbps",
        ],
    );
}

#[test]
fn a_rule_attribute_must_come_from_a_secondary_stage() {
    let rule = r#"
[[rules]]
type = "detected"
name = "known-car"
classes = ["car"]
attribute = "plate"
attribute_matches = "^KA01"
"#;
    let errs = validation_errors(rule);
    assert!(
        errs.contains(
            "rules[0].attribute: no [[secondary]] stage gives tracks the attribute \"plate\" \
             (this config has no [[secondary]] stage)"
        ),
        "{errs}"
    );
    let text = format!("{rule}\n[[secondary]]\nname = \"plates\"\nkind = \"plate\"\n");
    let c = PipelineConfig::from_toml(&text).unwrap();
    c.validate(Some(&labels())).unwrap();
    let bad = text.replace("\"^KA01\"", "\"^KA(01\"");
    let errs = validation_errors(&bad);
    assert!(
        errs.contains("rules[0].attribute_matches: not a valid regular expression"),
        "{errs}"
    );
}

#[test]
fn unknown_fields_and_wrong_types_name_the_field() {
    let e = PipelineConfig::from_toml("[model]\nnmae = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("model"), "{e}");
    assert!(e.to_string().contains("nmae"), "{e}");
    let e = PipelineConfig::from_toml("[output]\nbitrate_kbps = \"fast\"\n").unwrap_err();
    assert!(e.to_string().contains("output.bitrate_kbps"), "{e}");
    let e = PipelineConfig::from_json(r#"{"tracker": {"bogus": 1}}"#).unwrap_err();
    assert!(e.to_string().contains("tracker"), "{e}");
    let e = PipelineConfig::from_toml("[connect]\nrtsp_transport = \"quic\"\n").unwrap_err();
    assert!(e.to_string().contains("connect.rtsp_transport"), "{e}");
    assert!(e.to_string().contains("udp"), "{e}");
}

#[test]
fn rtsp_transport_defaults_to_auto_and_is_chosen_per_run() {
    use sightline_config::RtspTransport;
    let c = PipelineConfig::from_toml("").unwrap();
    assert_eq!(c.connect.rtsp_transport, RtspTransport::Auto);
    let c = PipelineConfig::from_toml("[connect]\nrtsp_transport = \"udp\"\n").unwrap();
    assert_eq!(c.connect.rtsp_transport, RtspTransport::Udp);
    let c = PipelineConfig::from_json(r#"{"connect": {"rtsp_transport": "tcp"}}"#).unwrap();
    assert_eq!(c.connect.rtsp_transport, RtspTransport::Tcp);
}

#[test]
fn toml_and_json_are_the_same_format() {
    let c = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    let json = serde_json::to_string(&c).unwrap();
    let back = PipelineConfig::from_json(&json).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&c).unwrap()
    );
}

#[test]
fn the_committed_json_schema_is_current() {
    let schema = serde_json::to_string_pretty(&PipelineConfig::json_schema()).unwrap() + "\n";
    let path = repo().join("docs/schema/pipeline-config.schema.json");
    if std::env::var_os("SIGHTLINE_BLESS").is_some() {
        std::fs::write(&path, &schema).unwrap();
    }
    let committed =
        std::fs::read_to_string(&path).expect("docs/schema/pipeline-config.schema.json");
    assert!(
        committed == schema,
        "the JSON Schema changed: run SIGHTLINE_BLESS=1 cargo test -p sightline-config and commit it"
    );
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    for section in [
        "model",
        "tracker",
        "zones",
        "lines",
        "rules",
        "draw",
        "output",
        "connect",
        "reconnect",
        "watchdog",
    ] {
        assert!(
            v["properties"][section].is_object(),
            "schema documents {section}"
        );
    }
}
