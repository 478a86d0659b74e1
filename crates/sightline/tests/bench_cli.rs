//! The offline CLI tools.
//!
//! `sightline bench --max-streams 2 --seconds 10` completes and emits a valid report (JSON on
//! stdout, a PNG plot). A short run on whatever machine runs the tests: no timing assertions,
//! only that every figure was measured and is consistent.
//!
//! `sightline upscale` writes a PNG of the scaled size that is closer to the original than the
//! low-resolution input was, and refuses an unknown model by name.
//!
//! `sightline models quantize` refuses non-detectors and, where the Python tools are
//! installed, registers a gated INT8 copy with its report.

#![allow(clippy::print_stderr)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn bench_reports_json_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("bench.png");
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("SIGHTLINE_DATA_DIR", dir.path().join("data"))
        .env("SIGHTLINE_LOG__LEVEL", "warn")
        .env_remove("RUST_LOG")
        .args([
            "bench",
            "--max-streams",
            "2",
            "--seconds",
            "10",
            "--warmup",
            "2",
            "--json",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(
        r["inference_interval"], 1,
        "configs/demo.toml infers every frame"
    );
    assert!(r["limits"]["decode_fps"].as_f64().unwrap() > 0.0);
    assert!(r["limits"]["infer_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["limits"]["infer_fps"].as_array().unwrap().len(), 3);
    assert!(r["single_stream_fps"].as_f64().unwrap() > 0.0);
    assert!(r["efficiency"].as_f64().unwrap() > 0.0);
    assert!(r["single_stream_cpu_pct"].as_f64().unwrap() > 0.0);
    let ceiling = r["efficiency_ceiling"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ceiling), "{ceiling}");
    assert!(r["target_p95_ms"].as_f64().unwrap() > 0.0);
    let steps = r["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 2, "{steps:?}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["streams"].as_u64().unwrap(), i as u64 + 1);
        assert!(s["fps_mean"].as_f64().unwrap() > 0.0);
        assert!(s["fps_min"].as_f64().unwrap() <= s["fps_mean"].as_f64().unwrap() + 1e-9);
        let d = s["drop_rate_max"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&d));
        assert!(s["latency_p95_ms"].as_f64().unwrap() > 0.0);
        assert!(s["rss_mb"].as_f64().unwrap() > 10.0);
        assert!(s["inference_interval_max"].as_u64().unwrap() >= 1);
        assert!(s["ok"].is_boolean());
    }
    let ok = r["max_streams_ok"].as_u64().unwrap() as usize;
    assert!(ok <= steps.len());
    assert!(r["python"].is_null(), "no baseline asked for");
    // Where one stream's CPU goes: every stage present, the measured ones positive.
    let c = &r["stages"];
    assert_eq!(c["frame_format"], "i420", "{c}");
    assert!(c["frames"].as_u64().unwrap() > 0, "{c}");
    for k in ["decode_ms", "encode_ms", "draw_ms", "total_ms"] {
        assert!(c[k].as_f64().unwrap() > 0.0, "{k}: {c}");
    }
    // The CPU ceiling: the cores' time over one frame's cost at the largest step.
    let last = steps
        .iter()
        .rev()
        .find(|s| s["inference_interval_max"].as_u64() <= r["inference_interval"].as_u64())
        .unwrap_or(steps.last().unwrap());
    let cost = last["core_ms_per_frame"].as_f64().unwrap();
    assert!(cost > 0.0, "{last}");
    let ceiling = &r["cpu_ceiling"];
    assert_eq!(ceiling["at_streams"], last["streams"], "{ceiling}");
    let expected = r["cores"].as_f64().unwrap() * 1000.0 / cost;
    let fps = ceiling["fps"].as_f64().unwrap();
    assert!((fps - expected).abs() < 1e-6 * expected, "{ceiling}");
    assert!(ceiling["streams"].as_f64().unwrap() > 0.0, "{ceiling}");
    for k in [
        "gate_ms",
        "convert_ms",
        "infer_ms",
        "track_ms",
        "rules_ms",
        "pictures_ms",
        "rest_ms",
    ] {
        assert!(c[k].as_f64().unwrap() >= 0.0, "{k}: {c}");
    }
    let threads = c["threads"].as_array().unwrap();
    assert!(
        threads
            .iter()
            .any(|t| t[0].as_str().unwrap().starts_with("run-")),
        "the run thread is among the threads: {threads:?}"
    );
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn upscale_writes_a_sharper_png() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = repo.join("crates/inference/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let out_png = dir.path().join("x4.png");
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .current_dir(&repo)
        .env("SIGHTLINE_DATA_DIR", dir.path().join("data"))
        .env("SIGHTLINE_LOG__LEVEL", "warn")
        .env_remove("RUST_LOG")
        .args(["upscale", "--scale", "4", "--tile", "64", "-o"])
        .arg(&out_png)
        .arg(fixtures.join("plate_lr_x4.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upscale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("160x50 → 640x200 with rdn-medium-x4"));
    let up = image::open(&out_png).unwrap().to_rgb8();
    let hr = image::open(fixtures.join("plate_hr_x4.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(up.dimensions(), hr.dimensions());
    let lr = image::open(fixtures.join("plate_lr_x4.png"))
        .unwrap()
        .to_rgb8();
    let nearest = image::imageops::resize(&lr, 640, 200, image::imageops::FilterType::Nearest);
    // PSNR (RGB) against the original.
    let psnr = |a: &image::RgbImage| {
        let mse = a
            .as_raw()
            .iter()
            .zip(hr.as_raw())
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum::<f64>()
            / a.as_raw().len() as f64;
        10.0 * (255.0f64 * 255.0 / mse).log10()
    };
    assert!(
        psnr(&up) > psnr(&nearest) + 1.0,
        "model {:.2} dB vs nearest {:.2} dB",
        psnr(&up),
        psnr(&nearest)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .current_dir(&repo)
        .env("SIGHTLINE_DATA_DIR", dir.path().join("data"))
        .args(["upscale", "--model", "nope", "-o"])
        .arg(dir.path().join("n.png"))
        .arg(fixtures.join("plate_lr_x4.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no image-to-image model `nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A detector is not an image-to-image model.
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .current_dir(&repo)
        .env("SIGHTLINE_DATA_DIR", dir.path().join("data"))
        .args(["upscale", "--model", "nanodet-m-416", "-o"])
        .arg(dir.path().join("n.png"))
        .arg(fixtures.join("plate_lr_x4.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a detect model, not image_to_image"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sightline models quantize`: refuses what it cannot quantise before running anything; with
/// the Python tools installed (`.venv-bench`, not in CI: `scripts/test` skips them), makes an
/// INT8 copy of the default detector, gated on agreement, and registers it with its report.
#[test]
fn models_quantize_refuses_non_detectors_and_registers_a_gated_copy() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sightline = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sightline"))
            .current_dir(&repo)
            .env("SIGHTLINE_DATA_DIR", dir.path().join("data"))
            .env("SIGHTLINE_LOG__LEVEL", "warn")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap()
    };
    let out = sightline(&[
        "models",
        "quantize",
        "rdn-medium-x2",
        "--calibration",
        "samples/vtest.avi",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("only detectors can be quantised"), "{err}");
    let out = sightline(&[
        "models",
        "quantize",
        "nanodet-m-416",
        "--calibration",
        "samples/nope.avi",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--calibration samples/nope.avi"), "{err}");

    let python = repo.join(".venv-bench/bin/python");
    let has_tools = Command::new(&python)
        .args(["-c", "import onnx, onnxruntime, cv2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tools {
        eprintln!("SKIPPED the quantisation itself: no .venv-bench with onnx (scripts/setup)");
        return;
    }
    let out = sightline(&[
        "models",
        "quantize",
        "nanodet-m-416",
        "--calibration",
        "samples/vtest.avi",
        "--as",
        "nano-q",
        "--calib-frames",
        "30",
        "--min-f1",
        "0.8",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("added nano-q"), "{text}");
    let list: Value =
        serde_json::from_slice(&sightline(&["models", "list", "--json"]).stdout).unwrap();
    let q = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "nano-q")
        .expect("registered");
    assert_eq!(q["builtin"], false);
    let onnx = Path::new(q["onnx_path"].as_str().unwrap());
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(onnx.with_file_name("quantization.json")).unwrap(),
    )
    .unwrap();
    let f1 = report.pointer("/evaluation/f1");
    assert!(f1.and_then(Value::as_f64).unwrap() >= 0.8, "{report}");
    // Smaller than the fp32 file (15 MB): int8 weights.
    assert!(q["size_bytes"].as_u64().unwrap() < 6_000_000, "{q}");
}
