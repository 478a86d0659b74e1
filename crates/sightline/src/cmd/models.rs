//! `sightline models add|list|remove`: the on-disk model registry. A model is accepted only
//! after ONNX Runtime loads it and a dry run gives outputs its decoder understands.

use anyhow::Context;
use clap::Subcommand;
use sightline_config::ServerConfig;
use sightline_inference::{Manifest, ModelRecord, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Validate and register an ONNX model with its manifest.
    Add {
        /// The .onnx file.
        onnx: PathBuf,
        /// Its manifest (TOML or JSON).
        #[arg(long, short = 'm')]
        manifest: PathBuf,
    },
    /// List registered and built-in models.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a registered model.
    Remove { name: String },
}

/// What a model is, in a few words: `nanodet 416x416, 80 classes` or `image_to_image ×2`.
fn what(r: &ModelRecord) -> String {
    match &r.manifest {
        Manifest::Detect(m) => format!(
            "{} {}x{}, {} classes",
            m.family.as_str(),
            m.input.width,
            m.input.height,
            m.labels().len()
        ),
        Manifest::ImageToImage(m) => format!(
            "image_to_image ×{}, tile {}",
            m.image_to_image.scale, m.image_to_image.tile
        ),
    }
}

pub fn main(server: &ServerConfig, c: ModelsCmd) -> anyhow::Result<ExitCode> {
    sightline_inference::init_runtime(server.inference.library_path.as_deref())?;
    let registry = Registry::open(server.data_dir.join("models"))?;
    match c {
        ModelsCmd::Add { onnx, manifest } => {
            let m = Manifest::from_path(&manifest)
                .with_context(|| format!("manifest {}", manifest.display()))?;
            let rec = registry.add(&onnx, m)?;
            super::say(&format!(
                "added {} (sha256 {}, {}, {} bytes)",
                rec.name,
                rec.sha256,
                what(&rec),
                rec.size_bytes
            ));
        }
        ModelsCmd::List { json } => {
            let list = registry.list()?;
            if json {
                super::print_json(&serde_json::to_value(&list)?)?;
            } else {
                for r in list {
                    super::say(&format!(
                        "{:<24} {:<34} {}{}",
                        r.name,
                        what(&r),
                        &r.sha256[..12],
                        if r.builtin { "  (built-in)" } else { "" }
                    ));
                }
            }
        }
        ModelsCmd::Remove { name } => {
            let r = registry.remove(&name)?;
            super::say(&format!("removed {} ({})", r.name, r.sha256));
        }
    }
    Ok(ExitCode::SUCCESS)
}
