//! Milliseconds per 256×256 tile for each shipped image-to-image model, on N CPU threads.
//! `cargo run --release -p sightline-inference --example upscale_bench -- [THREADS] [RUNS]`
//! (a figure for the README; run it on a quiet machine).
#![allow(clippy::print_stdout)]

use sightline_inference::{RgbPicture, RuntimeOptions, Upscaler, builtin_upscalers};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = sightline_inference::builtin_models_dir()
        .expect("models/ folder")
        .join("sr");
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
    for b in builtin_upscalers() {
        let up = Upscaler::open(b.name, &dir.join(b.file), b.scale, &opts).expect("model");
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
            b.name,
            256 * b.scale,
            256 * b.scale,
            ms[ms.len() / 2],
            ms[0]
        );
    }
}
