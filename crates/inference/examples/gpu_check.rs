//! Checks the accelerated paths on a machine with an NVIDIA GPU and the `onnxruntime-gpu`
//! library: CUDA detections equal the CPU's, the figures (a), (b), (d) on CUDA, TensorRT
//! availability or fallback, and a GPU memory budget turning into `OutOfMemory` without
//! losing the session. Usage: `gpu_check --ort /path/to/libonnxruntime.so [--out DIR]`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sightline_core::{Detection, Frame, Pts};
use sightline_inference::bench::{InferenceBenchOptions, run_inference_bench_on};
use sightline_inference::{
    BatchOptions, DetectOptions, InferError, ModelManifest, Provider, RuntimeOptions, SharedModel,
    decode_image, init_runtime,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The checkout: the working directory when it has `models/`, else this crate's workspace.
fn repo() -> PathBuf {
    match std::env::current_dir() {
        Ok(d) if d.join("models").is_dir() => d,
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

fn shipped(name: &str) -> (PathBuf, ModelManifest) {
    let dir = repo().join("models").join(name);
    (
        dir.join("model.onnx"),
        ModelManifest::from_path(&dir.join("manifest.toml")).expect("manifest"),
    )
}

fn cuda(limit: Option<u64>) -> RuntimeOptions {
    RuntimeOptions {
        provider: Provider::Cuda { device_id: 0 },
        gpu_memory_limit_bytes: limit,
        ..RuntimeOptions::default()
    }
}

fn detect(
    name: &str,
    opts: &RuntimeOptions,
    frame: &Frame,
) -> Result<(String, Vec<Detection>), InferError> {
    let (onnx, m) = shipped(name);
    let model = SharedModel::load(&onnx, m, opts)?;
    let d = model.client(1).infer(frame, &DetectOptions::default())?;
    Ok((model.info().provider.name().to_string(), d))
}

fn max_diff(a: &[Detection], b: &[Detection]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            [
                x.bbox.x1 - y.bbox.x1,
                x.bbox.y1 - y.bbox.y1,
                x.bbox.x2 - y.bbox.x2,
                x.bbox.y2 - y.bbox.y2,
            ]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
        })
        .fold(0.0, f32::max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut ort, mut out) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ort" => ort = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            _ => {}
        }
    }
    match init_runtime(ort.as_deref()) {
        Ok(p) => println!("runtime: {}", p.display()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let png = std::fs::read(repo().join("crates/inference/tests/fixtures/vtest_frame100.png"))
        .expect("fixture");
    let frame = decode_image(&png, 10_000_000).expect("png");

    for name in ["nanodet-m-416", "centernet-mbv3-512"] {
        let cpu = detect(name, &RuntimeOptions::default(), &frame);
        let gpu = detect(name, &cuda(None), &frame);
        match (cpu, gpu) {
            (Ok((_, c)), Ok((p, g))) => println!(
                "{name}: cpu {} dets, {p} {} dets, same classes: {}, max box diff {:.2}px",
                c.len(),
                g.len(),
                c.iter()
                    .map(|d| d.class_id)
                    .eq(g.iter().map(|d| d.class_id)),
                max_diff(&c, &g)
            ),
            (c, g) => println!("{name}: cpu {:?} / cuda {:?}", c.err(), g.err()),
        }
    }

    // (a), (b), (d) on CUDA, frames = the fixture and its mirror image.
    let mut mirrored = frame.clone();
    let w = frame.width as usize;
    for (src, dst) in frame
        .data
        .chunks_exact(w * 3)
        .zip(mirrored.data.chunks_exact_mut(w * 3))
    {
        for x in 0..w {
            dst[x * 3..x * 3 + 3].copy_from_slice(&src[(w - 1 - x) * 3..(w - x) * 3]);
        }
    }
    let frames: Vec<Frame> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                frame.clone()
            } else {
                mirrored.clone()
            }
        })
        .collect();
    for name in ["nanodet-m-416", "centernet-mbv3-512"] {
        let (onnx, manifest) = shipped(name);
        let opts = InferenceBenchOptions {
            video: PathBuf::new(),
            frames: frames.len(),
            warmup: 20,
            onnx,
            manifest,
            runtime: cuda(None),
            python: None,
            concurrency: vec![1, 2, 4],
        };
        match run_inference_bench_on(&opts, &frames) {
            Ok(r) => {
                println!("{}", r.to_markdown());
                if let Some(dir) = &out {
                    let _ = std::fs::write(
                        dir.join(format!("bench-cuda-{name}.json")),
                        serde_json::to_string_pretty(&r).unwrap_or_default(),
                    );
                }
            }
            Err(e) => println!("bench {name} on cuda: {e}"),
        }
    }

    let trt = RuntimeOptions {
        provider: Provider::TensorRt {
            device_id: 0,
            fp16: true,
            engine_cache_dir: Some(std::env::temp_dir().join("sightline-trt")),
        },
        ..RuntimeOptions::default()
    };
    println!(
        "tensorrt: {:?}",
        detect("nanodet-m-416", &trt, &frame).map(|(p, d)| (p, d.len()))
    );
    let trt_fb = RuntimeOptions {
        fallback_to_cpu: true,
        ..trt
    };
    println!(
        "tensorrt with fallback: {:?}",
        detect("nanodet-m-416", &trt_fb, &frame).map(|(p, d)| (p, d.len()))
    );

    // Memory budget: a load that does not fit, and runs that do not fit.
    match detect("nanodet-m-416", &cuda(Some(1 << 20)), &frame) {
        Ok((p, d)) => println!(
            "nanodet with a 1 MiB budget loaded on {p}, {} dets",
            d.len()
        ),
        Err(e) => println!(
            "nanodet with a 1 MiB budget: {e:?} kind={}",
            sightline_core::error::Classify::kind(&e)
        ),
    }
    oom_runs(&repo().join("crates/inference/tests/fixtures/tiny_yolov8.onnx"));
}

fn oom_runs(onnx: &Path) {
    let m = ModelManifest::from_toml_str(
        r#"name = "tiny"
task = "detect"
family = "yolov8"
classes = ["red", "green"]
score_threshold = 0.5
iou_threshold = 0.5
[input]
width = 32
height = 32
scale = 0.00392156862745098
"#,
    )
    .expect("manifest");
    let mut opts = cuda(Some(8 << 20));
    opts.batch = BatchOptions {
        max_batch: 4096,
        max_wait: Duration::from_millis(50),
    };
    let model = match SharedModel::load(onnx, m, &opts) {
        Ok(m) => m,
        Err(e) => {
            println!("tiny model with 8 MiB budget did not load: {e}");
            return;
        }
    };
    let client = model.client(4096);
    let f = Frame::filled(32, 32, [255, 0, 0], Pts::ZERO);
    let pending: Vec<_> = (0..4000)
        .filter_map(|_| client.submit(&f, &DetectOptions::default()).ok())
        .collect();
    let (mut ok, mut oom, mut other) = (0, 0, Vec::new());
    for p in pending {
        match p.wait(Duration::from_secs(60)) {
            Ok(_) => ok += 1,
            Err(InferError::OutOfMemory(_)) => oom += 1,
            Err(e) => other.push(e.to_string()),
        }
    }
    let s = model.stats();
    println!(
        "budget 8 MiB, 4000 requests: ok {ok}, out of memory {oom}, other {:?}; stats: batches {} oom {} largest batch {}",
        other.iter().take(3).collect::<Vec<_>>(),
        s.batches,
        s.out_of_memory,
        s.batch_sizes.len().saturating_sub(1)
    );
    println!(
        "after OOM, a single frame: {:?}",
        client.infer(&f, &DetectOptions::default()).map(|d| d.len())
    );
}
