//! `sightline anpr IMAGE...`: licence plates in still pictures. Vehicles are found by the
//! detector and read one by one; a picture without a vehicle that gives a plate (a close-up)
//! is read whole. One JSON object per image with `--json`, a line per plate otherwise. Exits
//! non-zero if any image could not be processed.

use clap::Args;
use sightline_config::{SecondaryDef, ServerConfig};
use sightline_engine::ModelCache;
use sightline_engine::secondary::plates::read_still;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct AnprArgs {
    /// Image files (PNG or JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Vehicle detector in the registry (default: the server config's default model).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Print one JSON object per image.
    #[arg(long)]
    pub json: bool,
    /// A regex the plate text must match in full (after normalisation), e.g.
    /// `^[A-Z]{2}[0-9]{2}[A-Z]{1,2}[0-9]{4}$`.
    #[arg(long)]
    pub format: Option<String>,
    /// A plate detector you own (a registered model or an `.onnx` with its manifest beside
    /// it) that finds the plates instead of the text detector.
    #[arg(long)]
    pub plate_detector: Option<String>,
    /// With `--plate-detector`: its classes that are plates (repeat; default: every class).
    #[arg(long = "plate-class")]
    pub plate_classes: Vec<String>,
    /// Largest image accepted, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 16_000_000)]
    pub max_pixels: u64,
}

pub fn main(server: &ServerConfig, a: AnprArgs) -> anyhow::Result<ExitCode> {
    let models = ModelCache::open(&server.inference, &server.data_dir)?;
    let name = a
        .model
        .clone()
        .unwrap_or_else(|| server.inference.default_model.clone());
    let model = models.get(&name)?;
    let client = model.client(1);
    let labels = model.labels().clone();
    let mut def = SecondaryDef::default();
    def.plate.format = a.format.clone();
    def.plate_detector = a.plate_detector.clone();
    def.plate_detector_classes = a.plate_classes.clone();
    let locator = sightline_engine::secondary::locator(&def, &models)
        .map_err(|e| anyhow::anyhow!("--plate-detector: {e}"))?;
    let settings = def.plate.validate().map_err(|errs| {
        anyhow::anyhow!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let plate_models = sightline_engine::secondary::PlateModels {
        reader: models.text_reader(None, None)?,
        locator,
    };
    let mut failed = 0usize;
    for path in &a.images {
        let frame = match sightline_inference::decode_image_file(path, a.max_pixels) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(image = %path.display(), error = %e, "cannot read image");
                failed += 1;
                continue;
            }
        };
        let started = std::time::Instant::now();
        let plates = match read_still(
            &client,
            &labels,
            &def.classes,
            &plate_models,
            &frame,
            def.upscale_below,
            &settings,
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(image = %path.display(), error = %e, "plate reading failed");
                failed += 1;
                continue;
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if a.json {
            // One compact object per line (JSON lines), one line per image.
            super::say(
                &serde_json::json!({
                    "image": path.display().to_string(),
                    "plates": plates,
                    "ms": (ms * 10.0).round() / 10.0,
                })
                .to_string(),
            );
        } else {
            super::say(&format!(
                "{} ({} plates, {ms:.0} ms)",
                path.display(),
                plates.len()
            ));
            for p in &plates {
                let on = p
                    .vehicle
                    .as_ref()
                    .map_or("whole image".to_string(), |v| format!("on a {}", v.class));
                super::say(&format!("  {}  {:.2}  {on}", p.text, p.confidence));
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
