//! Milliseconds per 256×256 tile for each shipped image-to-image model, on N CPU threads.
//! `cargo run --release -p sightline-inference --example upscale_bench -- [THREADS] [RUNS]`
//! (a figure for the README; run it on a quiet machine).
#![allow(clippy::print_stdout)]

use sightline_inference::{Manifest, RgbPicture, RuntimeOptions, Upscaler};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let root = sightline_inference::builtin_models_dir().expect("models/ folder");
    let mut models: Vec<_> = std::fs::read_dir(&root)
        .expect("models/")
        .flatten()
        .filter_map(|e| {
            let m = Manifest::from_path(&e.path().join("manifest.toml")).ok()?;
            let spec = m.image_to_image()?.clone();
            Some((m.name().to_string(), e.path().join("model.onnx"), spec))
        })
        .collect();
    models.sort_by(|a, b| a.0.cmp(&b.0));
    let opts = RuntimeOptions {
        intra_threads: Some(threads),
        ..RuntimeOptions::default()
    };
    // A real picture: the ×2 plate input, tiled to 256×256.
    let img = image::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plate_hr_x2.png"),
    )
    .expect("fixture")
    .to_rgb8();
    let tile = image::imageops::crop_imm(&img, 0, 0, 256, 200).to_image();
    let tile = image::imageops::resize(&tile, 256, 256, image::imageops::FilterType::Triangle);
    let pic = RgbPicture::new(256, 256, tile.into_raw()).unwrap();
    for (name, onnx, spec) in models {
        let up = Upscaler::open(&name, &onnx, &spec, &opts).expect("model");
        up.run_tile(&pic, None).unwrap(); // warm-up
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                up.run_tile(&pic, None).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{}: 256x256 -> {}x{} on {threads} threads: median {:.0} ms, min {:.0} ms ({runs} runs)",
            name,
            256 * spec.scale,
            256 * spec.scale,
            ms[ms.len() / 2],
            ms[0]
        );
    }
}
