//! `sightline upscale IMAGE -o OUT.png`: a shipped super-resolution model over one picture,
//! tile by tile, with a progress bar over the tiles.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sightline_config::ServerConfig;
use sightline_inference::{RgbPicture, TileOptions, Upscaler, builtin_upscalers};
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
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=4))]
    pub scale: u32,
    /// Model name (see `models/sr/`); overrides `--scale`.
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Largest tile side fed to the network (pixels).
    #[arg(long, default_value_t = 256)]
    pub tile: u32,
    /// Context taken from neighbouring tiles (pixels).
    #[arg(long, default_value_t = 16)]
    pub overlap: u32,
    /// Largest picture accepted, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 16_000_000)]
    pub max_pixels: u64,
}

pub fn main(server: &ServerConfig, a: UpscaleArgs) -> anyhow::Result<ExitCode> {
    let known = builtin_upscalers();
    let entry = match &a.model {
        Some(m) => known.iter().find(|b| b.name == m).with_context(|| {
            let names: Vec<_> = known.iter().map(|b| b.name).collect();
            format!(
                "no image-to-image model `{m}` (known: {})",
                names.join(", ")
            )
        })?,
        None => known
            .iter()
            .find(|b| b.scale == a.scale)
            .with_context(|| format!("no shipped model for ×{}", a.scale))?,
    };
    if a.tile == 0 {
        anyhow::bail!("--tile must be at least 1");
    }
    let dir = sightline_inference::builtin_models_dir()
        .context("the shipped models/ folder was not found")?
        .join("sr");
    sightline_inference::init_runtime(server.inference.library_path.as_deref())?;
    let opts = sightline_engine::runtime_options(&server.inference, &server.data_dir);
    let up = Upscaler::open(entry.name, &dir.join(entry.file), entry.scale, &opts)?;

    let frame = sightline_inference::decode_image_file(&a.image, a.max_pixels)
        .with_context(|| format!("reading {}", a.image.display()))?;
    let (w, h) = (frame.width, frame.height);
    let out_pixels = w as u64 * h as u64 * (entry.scale as u64).pow(2);
    if out_pixels > 4 * a.max_pixels {
        anyhow::bail!(
            "the result would be {}x{} ({out_pixels} pixels), over 4 × --max-pixels",
            w * entry.scale,
            h * entry.scale
        );
    }
    let pic = RgbPicture::new(w, h, frame.data)?;
    let tiles = TileOptions {
        tile: a.tile,
        overlap: a.overlap,
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
