//! `sightline models add|list|remove|quantize`: the on-disk model registry. A model is accepted only
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
    /// Make a static INT8 (QDQ) copy of a detector, calibrated on frames of a clip, and
    /// register it only if its detections agree with the original's (F1 on held-back frames
    /// at least `--min-f1`). Runs `scripts/quantize/quantize.py` in `.venv-bench` (installed
    /// by `scripts/setup`): ONNX Runtime's quantiser is Python; the engine only loads the result.
    Quantize {
        /// The fp32 model (registered or built-in).
        name: String,
        /// A clip or a folder of images: calibration frames and, apart, evaluation frames.
        #[arg(long)]
        calibration: PathBuf,
        /// Name of the INT8 model (default `<name>-int8`).
        #[arg(long = "as")]
        as_name: Option<String>,
        /// Nodes to keep in fp32 (names in the ONNX graph).
        #[arg(long, num_args = 1..)]
        exclude_nodes: Vec<String>,
        /// The accuracy gate: F1 of the INT8 model's detections against the original's.
        #[arg(long, default_value_t = 0.95)]
        min_f1: f64,
        /// Calibration frames.
        #[arg(long, default_value_t = 100)]
        calib_frames: u32,
    },
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
        ModelsCmd::Quantize {
            name,
            calibration,
            as_name,
            exclude_nodes,
            min_f1,
            calib_frames,
        } => {
            return quantize(
                &registry,
                &name,
                &calibration,
                as_name,
                &exclude_nodes,
                min_f1,
                calib_frames,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `models quantize`: the Python tool writes the INT8 folder (model, manifest, report) into
/// a temporary directory, or exits 2 when the gate refuses it; the result is registered like
/// `models add` (loaded and dry-run first) and the report kept beside it.
fn quantize(
    registry: &Registry,
    name: &str,
    calibration: &std::path::Path,
    as_name: Option<String>,
    exclude_nodes: &[String],
    min_f1: f64,
    calib_frames: u32,
) -> anyhow::Result<ExitCode> {
    let src = registry.get(name)?;
    if !matches!(src.manifest, Manifest::Detect(_)) {
        anyhow::bail!(
            "{name}: only detectors can be quantised (this is {})",
            what(&src)
        );
    }
    if !calibration.exists() {
        anyhow::bail!(
            "--calibration {}: no such file or folder",
            calibration.display()
        );
    }
    let script = super::demo::shipped("scripts/quantize/quantize.py")
        .context("scripts/quantize/quantize.py not found (run from the repository)")?;
    let root = script
        .ancestors()
        .nth(3)
        .context("the repository of scripts/quantize")?;
    let python = root.join(".venv-bench/bin/python");
    if !python.is_file() {
        anyhow::bail!(
            "{} not found: quantising needs the Python tools (run scripts/setup without SIGHTLINE_SKIP_PY)",
            python.display()
        );
    }
    let model_dir = src
        .onnx_path
        .parent()
        .context("the model's folder")?
        .to_path_buf();
    let new_name = as_name.unwrap_or_else(|| format!("{name}-int8"));
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("int8");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg("--model-dir")
        .arg(&model_dir)
        .arg("--calibration")
        .arg(std::path::absolute(calibration)?)
        .arg("--out")
        .arg(&out)
        .arg("--name")
        .arg(&new_name)
        .arg("--min-f1")
        .arg(min_f1.to_string())
        .arg("--calib-frames")
        .arg(calib_frames.to_string());
    if !exclude_nodes.is_empty() {
        cmd.arg("--exclude-nodes").args(exclude_nodes);
    }
    // The tool's progress and summary go straight to the user's terminal.
    let status = cmd
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    match status.code() {
        Some(0) => {}
        Some(2) => {
            super::say(&format!(
                "{new_name} not registered: its detections do not agree well enough with {name}'s \
                 (F1 under {min_f1}, report above); try --exclude-nodes, or keep {name}"
            ));
            return Ok(ExitCode::from(2));
        }
        _ => anyhow::bail!("{} failed ({status})", script.display()),
    }
    let m = Manifest::from_path(&out.join("manifest.toml")).context("the INT8 manifest")?;
    let rec = registry.add(&out.join("model.onnx"), m)?;
    if let Some(dir) = rec.onnx_path.parent() {
        std::fs::copy(out.join("quantization.json"), dir.join("quantization.json"))
            .context("keeping the quantisation report")?;
    }
    super::say(&format!(
        "added {} (sha256 {}, {}, {} bytes; report: {})",
        rec.name,
        rec.sha256,
        what(&rec),
        rec.size_bytes,
        rec.onnx_path.with_file_name("quantization.json").display()
    ));
    Ok(ExitCode::SUCCESS)
}
