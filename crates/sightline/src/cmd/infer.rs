//! `sightline infer IMAGE...`: detections for still images, printed as text or JSON, with
//! annotated copies written to `--out`. Exits non-zero if any image could not be processed.

use anyhow::Context;
use clap::Args;
use sightline_config::ServerConfig;
use sightline_core::Frame;
use sightline_engine::ModelCache;
use sightline_inference::DetectOptions;
use sightline_overlay::{DrawStyle, Painter};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InferArgs {
    /// Image files (PNG or JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Model name in the registry (default: the server config's default model).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Write annotated copies into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Minimum score (default: the model's).
    #[arg(long)]
    pub score: Option<f32>,
    /// Largest image accepted, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 16_000_000)]
    pub max_pixels: u64,
}

pub fn main(server: &ServerConfig, a: InferArgs) -> anyhow::Result<ExitCode> {
    let models = ModelCache::open(&server.inference, &server.data_dir)?;
    let name = a
        .model
        .clone()
        .unwrap_or_else(|| server.inference.default_model.clone());
    let model = models.get(&name)?;
    let client = model.client(1);
    let opts = DetectOptions {
        score_threshold: a.score,
        ..DetectOptions::default()
    };
    if let Some(d) = &a.out {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut painter = Painter::new(DrawStyle::default())?;
    let labels = model.labels().clone();
    let mut failed = 0usize;
    let mut results = Vec::new();
    for path in &a.images {
        let frame = match sightline_inference::decode_image_file(path, a.max_pixels) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(image = %path.display(), error = %e, "cannot read image");
                failed += 1;
                continue;
            }
        };
        let (width, height) = (frame.width, frame.height);
        let started = std::time::Instant::now();
        let dets = match client.infer(&frame, &opts) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(image = %path.display(), error = %e, "inference failed");
                failed += 1;
                continue;
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let items: Vec<serde_json::Value> = dets
            .iter()
            .map(|d| {
                serde_json::json!({
                    "class": labels.name(d.class_id),
                    "class_id": d.class_id.0,
                    "score": (d.score * 1000.0).round() / 1000.0,
                    "box": [d.bbox.x1.round(), d.bbox.y1.round(), d.bbox.x2.round(), d.bbox.y2.round()],
                })
            })
            .collect();
        if !a.json {
            super::say(&format!(
                "{} ({}x{}, {} detections, {ms:.1} ms)",
                path.display(),
                width,
                height,
                dets.len()
            ));
            for d in &dets {
                super::say(&format!(
                    "  {:<14} {:.2}  [{:.0}, {:.0}, {:.0}, {:.0}]",
                    labels.name(d.class_id),
                    d.score,
                    d.bbox.x1,
                    d.bbox.y1,
                    d.bbox.x2,
                    d.bbox.y2
                ));
            }
        }
        let mut written = None;
        if let Some(dir) = &a.out {
            let mut frame: Frame = frame;

            painter.draw_detections(&mut frame, &dets, &labels);
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
            let out = dir.join(format!("{stem}.annotated.png"));
            image::RgbImage::from_raw(frame.width, frame.height, frame.data)
                .context("frame buffer")?
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            written = Some(out.display().to_string());
        }
        results.push(serde_json::json!({
            "image": path.display().to_string(),
            "width": width,
            "height": height,
            "detections": items,
            "inference_ms": (ms * 10.0).round() / 10.0,
            "annotated": written,
        }));
    }
    if a.json {
        super::print_json(&serde_json::Value::Array(results))?;
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
