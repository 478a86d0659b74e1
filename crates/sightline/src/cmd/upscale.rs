//! `sightline upscale IMAGE -o OUT.png`: a shipped super-resolution model over one picture,
//! tile by tile, with a progress bar over the tiles.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sightline_config::ServerConfig;
use sightline_inference::{InferError, Registry, RgbPicture, Task, TileOptions, Upscaler};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// Picture to upscale (PNG or JPEG).
    pub image: PathBuf,
    /// Where to write the upscaled PNG.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Scale factor; picks the default model of that scale.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub scale: Option<u32>,
    /// Model name: a shipped or registered `image_to_image` model (`sightline models list`).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Largest tile side fed to the network (pixels; default the model's manifest).
    #[arg(long)]
    pub tile: Option<u32>,
    /// Context taken from neighbouring tiles (pixels; default the model's manifest).
    #[arg(long)]
    pub overlap: Option<u32>,
    /// Largest picture accepted, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 16_000_000)]
    pub max_pixels: u64,
}

pub fn main(server: &ServerConfig, a: UpscaleArgs) -> anyhow::Result<ExitCode> {
    if a.tile == Some(0) {
        anyhow::bail!("--tile must be at least 1");
    }
    sightline_inference::init_runtime(server.inference.library_path.as_deref())?;
    let registry = Registry::open(server.data_dir.join("models"))?;
    // Without either, ×2.
    let scale = a.scale.or(if a.model.is_none() { Some(2) } else { None });
    let rec = registry
        .find_image_to_image(a.model.as_deref(), scale)
        .map_err(|e| match e {
            InferError::ModelNotFound(n) => {
                let known: Vec<String> = registry
                    .of_task(Task::ImageToImage)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .collect();
                anyhow::anyhow!(
                    "no image-to-image model `{n}` (known: {})",
                    known.join(", ")
                )
            }
            other => other.into(),
        })?;
    let opts = sightline_engine::runtime_options(&server.inference, &server.data_dir);
    let up = Upscaler::from_record(&rec, &opts)?;
    let scale = up.scale();

    let frame = sightline_inference::decode_image_file(&a.image, a.max_pixels)
        .with_context(|| format!("reading {}", a.image.display()))?;
    let (w, h) = (frame.width, frame.height);
    let out_pixels = w as u64 * h as u64 * (scale as u64).pow(2);
    if out_pixels > 4 * a.max_pixels {
        anyhow::bail!(
            "the result would be {}x{} ({out_pixels} pixels), over 4 × --max-pixels",
            w * scale,
            h * scale
        );
    }
    let pic = RgbPicture::new(w, h, frame.data)?;
    let tiles = TileOptions {
        tile: a.tile.unwrap_or(up.tiles().tile),
        overlap: a.overlap.unwrap_or(up.tiles().overlap),
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tiles")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let result = up.upscale(&pic, tiles, None, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let img = image::RgbImage::from_raw(result.width, result.height, result.data)
        .context("upscaled picture")?;
    img.save_with_format(&a.out, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", a.out.display()))?;
    super::say(&format!(
        "{} {w}x{h} → {}x{} with {} in {ms:.0} ms: {}",
        a.image.display(),
        result.width,
        result.height,
        up.name(),
        a.out.display()
    ));
    Ok(ExitCode::SUCCESS)
}
