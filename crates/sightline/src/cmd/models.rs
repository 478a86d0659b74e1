//! `sightline models add|list|remove`: the on-disk model registry. A model is accepted only
//! after ONNX Runtime loads it and a dry run gives outputs its decoder understands.

use anyhow::Context;
use clap::Subcommand;
use sightline_config::ServerConfig;
use sightline_inference::{ModelManifest, Registry};
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

pub fn main(server: &ServerConfig, c: ModelsCmd) -> anyhow::Result<ExitCode> {
    sightline_inference::init_runtime(server.inference.library_path.as_deref())?;
    let registry = Registry::open(server.data_dir.join("models"))?;
    match c {
        ModelsCmd::Add { onnx, manifest } => {
            let m = ModelManifest::from_path(&manifest)
                .with_context(|| format!("manifest {}", manifest.display()))?;
            let rec = registry.add(&onnx, m)?;
            super::say(&format!(
                "added {} (sha256 {}, {} classes, {} bytes)",
                rec.name,
                rec.sha256,
                rec.manifest.labels().len(),
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
                        "{:<24} {:<10} {}x{}  {} classes  {}{}",
                        r.name,
                        r.manifest.family.as_str(),
                        r.manifest.input.width,
                        r.manifest.input.height,
                        r.manifest.labels().len(),
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
