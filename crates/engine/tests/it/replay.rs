//! The whole per-frame pipeline on the real clip: `samples/vtest.avi` decoded by GStreamer
//! (paced `fast`: every frame, none dropped), the shipped NanoDet model, the tracker, the
//! rules of `configs/demo.toml` and the overlay. The event list must equal the committed
//! golden list exactly, on every run: time comes from the frames' PTS, never from a clock.
//!
//! After an intended change of behaviour, regenerate the list with
//! `SIGHTLINE_BLESS=1 cargo test -p sightline-engine --test it replay` and review the diff.

use sightline_config::{InferenceSection, PipelineConfig};
use sightline_engine::{FrameProcessor, ModelCache, StatusText};
use sightline_media::{Pacing, Source, SourceEvent, SourceOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn replay() -> (Vec<serde_json::Value>, u64) {
    sightline_media::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = ModelCache::open(&InferenceSection::default(), dir.path()).unwrap();
    let config = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    let model = models.get(&config.model.name).unwrap();
    config.validate(Some(model.labels())).unwrap();
    let mut proc = FrameProcessor::new(Arc::new(config), model).unwrap();
    let uri = format!(
        "file://{}",
        repo()
            .join("samples/vtest.avi")
            .canonicalize()
            .unwrap()
            .display()
    );
    let source = Source::open(SourceOptions::new(uri).with_pacing(Pacing::Fast)).unwrap();
    let status = StatusText {
        lines: vec!["replay".into()],
        timestamp: None,
    };
    let mut events = Vec::new();
    let mut frames = 0;
    loop {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(mut f) => {
                frames += 1;
                let (evs, _) = proc.process(&mut f, &status).unwrap();
                events.extend(evs.into_iter().map(|e| serde_json::to_value(e).unwrap()));
            }
            SourceEvent::Eos => break,
            other => panic!("unexpected source event {other:?}"),
        }
    }
    (events, frames)
}

#[test]
fn vtest_with_the_demo_config_gives_the_golden_events() {
    let (events, frames) = replay();
    assert_eq!(frames, 795, "every frame of the clip is processed");
    // Compared as text (one compact JSON event per line): exact, including every float.
    let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    let golden_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vtest_demo_events.jsonl");
    if std::env::var_os("SIGHTLINE_BLESS").is_some() {
        std::fs::write(&golden_path, lines.join("\n") + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&golden_path).expect("golden list committed");
    let golden: Vec<&str> = text.lines().collect();
    let kinds: std::collections::BTreeSet<String> = golden
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    for k in [
        "line_cross",
        "zone_enter",
        "zone_exit",
        "dwell",
        "count",
        "detected",
    ] {
        assert!(
            kinds.contains(k),
            "the demo config exercises {k}: {kinds:?}"
        );
    }
    // Everything but the model's floats must be identical; boxes and confidences may differ
    // in the last bits between CPUs (ONNX Runtime picks AVX2 or AVX-512 kernels, whose sums
    // round differently), so those are compared to within 1e-3 px and 1e-5.
    for (i, (a, b)) in lines.iter().zip(&golden).enumerate() {
        let (ja, jb): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert!(
            same_event(&ja, &jb),
            "event {i} differs\n  got: {a}\n want: {b}"
        );
    }
    assert_eq!(lines.len(), golden.len(), "number of events");
}

/// Equal JSON, except that numbers under `bbox` may differ by 1e-3 and `confidence`-like
/// fractional numbers by 1e-5 (see the golden test).
fn same_event(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k).is_some_and(|w| match (v, w) {
                        (Value::Object(bx), Value::Object(by)) if k == "bbox" => {
                            bx.len() == by.len()
                                && bx
                                    .iter()
                                    .all(|(c, p)| by.get(c).is_some_and(|q| close(p, q, 1e-3)))
                        }
                        _ => same_event(v, w),
                    })
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_event(v, w))
        }
        (Value::Number(x), Value::Number(y)) if !(x.is_f64() && y.is_f64()) => x == y,
        (Value::Number(_), Value::Number(_)) => close(a, b, 1e-5),
        _ => a == b,
    }
}

fn close(a: &serde_json::Value, b: &serde_json::Value, tol: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= tol,
        _ => a == b,
    }
}
