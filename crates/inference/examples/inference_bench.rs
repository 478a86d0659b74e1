//! Prints the inference figures (a)–(d) for the README: `cargo run --release -p
//! sightline-inference --example inference_bench -- [--frames N] [--threads N] [--model DIR]
//! [--json PATH] [--ort LIB] [--python INTERPRETER] [--raw-frames FILE --size WxH]`.
//! `--raw-frames` reads pre-decoded RGB24 frames instead of running `ffmpeg` (for machines
//! without it). `sightline bench` calls the same library functions.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sightline_core::{Frame, Pts};
use sightline_inference::ModelManifest;
use sightline_inference::bench::{
    InferenceBenchOptions, PythonBaseline, run_inference_bench, run_inference_bench_on,
};
use std::path::PathBuf;

fn raw_frames(path: &PathBuf, size: &str, max: usize) -> Vec<Frame> {
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .unwrap_or((0, 0));
    let bytes = std::fs::read(path).unwrap_or_default();
    let n = (w * h * 3) as usize;
    if n == 0 {
        return Vec::new();
    }
    bytes
        .chunks_exact(n)
        .take(max)
        .filter_map(|c| Frame::from_rgb(w, h, Pts::ZERO, c.to_vec()))
        .collect()
}

fn main() {
    let repo = match std::env::current_dir() {
        Ok(d) if d.join("models").is_dir() => d,
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    let mut opts = match InferenceBenchOptions::for_repo(&repo) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("inference_bench: {e}");
            std::process::exit(1);
        }
    };
    let mut json_out = None;
    let (mut raw, mut size) = (None, String::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--frames" => opts.frames = v.parse().unwrap_or(opts.frames),
            "--threads" => opts.runtime.intra_threads = v.parse().ok(),
            "--model" => {
                let dir = PathBuf::from(v);
                match ModelManifest::from_path(&dir.join("manifest.toml")) {
                    Ok(m) => opts.manifest = m,
                    Err(e) => {
                        eprintln!("inference_bench: {e}");
                        std::process::exit(2);
                    }
                }
                opts.onnx = dir.join("model.onnx");
            }
            "--json" => json_out = Some(PathBuf::from(v)),
            "--raw-frames" => raw = Some(PathBuf::from(v)),
            "--size" => size = v,
            "--python" => {
                opts.python = Some(PythonBaseline {
                    interpreter: PathBuf::from(v),
                    script: repo.join("crates/inference/bench/python_baseline.py"),
                })
            }
            "--ort" => {
                if let Err(e) = sightline_inference::init_runtime(Some(&PathBuf::from(v))) {
                    eprintln!("inference_bench: {e}");
                    std::process::exit(1);
                }
            }
            other => {
                eprintln!("inference_bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let result = match &raw {
        Some(p) => run_inference_bench_on(&opts, &raw_frames(p, &size, opts.frames)),
        None => run_inference_bench(&opts),
    };
    match result {
        Ok(report) => {
            println!("{}", report.to_markdown());
            if let Some(p) = json_out {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(&p, text) {
                    eprintln!("inference_bench: writing {}: {e}", p.display());
                }
            }
        }
        Err(e) => {
            eprintln!("inference_bench: {e}");
            std::process::exit(1);
        }
    }
}
