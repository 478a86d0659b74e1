//! The model registry on disk: content-addressed, and validated by actually running.
//!
//! A stored model lives in `<dir>/<sha256 of the ONNX file>/{model.onnx, manifest.toml}`, so
//! the same bytes are never stored twice and a manifest always names exactly one file. A
//! model is accepted only after it loads with its manifest and a dry run on a blank frame
//! yields outputs its decoder can read; the work happens in a temporary folder that is
//! renamed into place on success and removed on failure, so a rejected upload leaves
//! nothing behind. The repository's `models/` (the shipped detectors and image-to-image
//! models) are always available by name, read-only.
//!
//! A manifest's `task` says what kind of model it is: a detector is dry-run on a blank frame
//! through its decoder, an image-to-image model on an 8×8 picture whose result must be the
//! manifest's scale.

use crate::decode::{DecodeParams, Decoder, DetectDecoder, OutputInfo, TensorView};
use crate::error::InferError;
use crate::manifest::{Manifest, ModelManifest, Task};
use crate::preprocess::Preprocessor;
use crate::runtime::RuntimeOptions;
use crate::session::{ModelInfo, ModelSession};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sightline_core::{Frame, Pts};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The default model's name.
pub const DEFAULT_MODEL: &str = "nanodet-m-416";

const ONNX_FILE: &str = "model.onnx";
const MANIFEST_FILE: &str = "manifest.toml";

/// One model the registry knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    pub name: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    pub onnx_path: PathBuf,
    pub manifest: Manifest,
    /// Shipped with Sightline (cannot be removed).
    pub builtin: bool,
    pub size_bytes: u64,
}

/// Models on disk.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    builtin_dir: Option<PathBuf>,
    validation: RuntimeOptions,
    builtin: Mutex<Option<Vec<ModelRecord>>>,
    write: Mutex<()>,
}

/// Where the shipped models are: `SIGHTLINE_MODELS_DIR`, `models/` next to the executable
/// (or `../share/sightline/models`), `./models`, then the workspace's `models/`.
pub fn builtin_models_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("SIGHTLINE_MODELS_DIR").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("models"));
        candidates.push(dir.join("../share/sightline/models"));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join("models"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    candidates
        .into_iter()
        .find(|d| d.join(DEFAULT_MODEL).join(MANIFEST_FILE).is_file())
}

/// Loads `onnx` with `manifest` and runs it once on a tiny input: a blank frame whose outputs
/// must fit the detector's decoder, or an 8×8 picture whose result must be `scale` times as
/// large for an image-to-image model.
pub fn validate_model(
    onnx: &Path,
    manifest: &Manifest,
    opts: &RuntimeOptions,
) -> Result<(), InferError> {
    match manifest {
        Manifest::Detect(m) => validate_detector(onnx, m, opts).map(|_| ()),
        Manifest::ImageToImage(m) => {
            crate::upscale::Upscaler::open(&m.name, onnx, &m.image_to_image, opts).map(|_| ())
        }
    }
}

/// Loads a detector and runs it once on a blank frame; succeeds only if the outputs have the
/// shape the manifest's decoder expects.
pub fn validate_detector(
    onnx: &Path,
    manifest: &ModelManifest,
    opts: &RuntimeOptions,
) -> Result<ModelInfo, InferError> {
    let (mut session, decoder) = ModelSession::open(onnx, manifest, opts)?;
    let mismatch = |message: String| InferError::OutputMismatch {
        model: manifest.name.clone(),
        family: manifest.family.as_str(),
        message,
    };
    let mut pre = Preprocessor::new(&manifest.input);
    let blank = Frame::filled(
        manifest.input.width,
        manifest.input.height,
        [0, 0, 0],
        Pts::ZERO,
    );
    let mut input = Vec::new();
    pre.run(&blank, &mut input)?;
    let mut items = session
        .run(&input, 1)
        .map_err(|f| mismatch(format!("dry run failed: {}", f.message)))?;
    let outs = items.pop().unwrap_or_default();
    let info = session.info().clone();
    // The real shapes must satisfy the decoder too (declared ones may be dynamic).
    let concrete: Vec<OutputInfo> = info
        .decoder_outputs
        .iter()
        .zip(&outs)
        .map(|(name, t)| OutputInfo {
            name: name.clone(),
            shape: t.shape.clone(),
        })
        .collect();
    let names = info.decoder_outputs.clone();
    DetectDecoder::bind(
        manifest.family,
        manifest.num_classes(),
        (manifest.input.width, manifest.input.height),
        &concrete,
        Some(&names),
    )
    .map_err(mismatch)?;
    let views: Vec<TensorView<'_>> = outs
        .iter()
        .map(|t| TensorView {
            shape: &t.shape,
            data: &t.data,
        })
        .collect();
    decoder
        .decode(
            &views,
            &DecodeParams {
                score_threshold: 1.0,
            },
        )
        .map_err(mismatch)?;
    Ok(info)
}

fn sha256_file(path: &Path) -> Result<(String, u64), InferError> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| InferError::io(format!("opening {}", path.display()), e))?;
    copy_hashing(&mut f, None, path)
}

/// Streams `src` into `dst` (if any) while hashing.
fn copy_hashing(
    src: &mut impl Read,
    mut dst: Option<&mut std::fs::File>,
    what: &Path,
) -> Result<(String, u64), InferError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| InferError::io(format!("reading {}", what.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(d) = dst.as_deref_mut() {
            d.write_all(&buf[..n])
                .map_err(|e| InferError::io("writing into the registry", e))?;
        }
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn read_record(dir: &Path, builtin: bool, sha: Option<String>) -> Result<ModelRecord, InferError> {
    let onnx = dir.join(ONNX_FILE);
    let manifest = Manifest::from_path(&dir.join(MANIFEST_FILE))?;
    let (sha256, size_bytes) = match sha {
        Some(s) => {
            let len = std::fs::metadata(&onnx)
                .map_err(|e| InferError::io(format!("reading {}", onnx.display()), e))?
                .len();
            (s, len)
        }
        None => sha256_file(&onnx)?,
    };
    Ok(ModelRecord {
        name: manifest.name().to_string(),
        sha256,
        onnx_path: onnx,
        manifest,
        builtin,
        size_bytes,
    })
}

fn is_sha_dir(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Registry {
    /// Opens (creating) a registry in `dir`, with the shipped models found by
    /// [`builtin_models_dir`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Registry, InferError> {
        Self::with_builtin(dir, builtin_models_dir())
    }

    /// Opens a registry with an explicit built-in model folder (or none).
    pub fn with_builtin(
        dir: impl AsRef<Path>,
        builtin_dir: Option<PathBuf>,
    ) -> Result<Registry, InferError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| InferError::io(format!("creating registry {}", dir.display()), e))?;
        // Leftovers of an add interrupted by a crash.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(Registry {
            dir,
            builtin_dir,
            validation: RuntimeOptions {
                intra_threads: Some(1),
                ..RuntimeOptions::default()
            },
            builtin: Mutex::new(None),
            write: Mutex::new(()),
        })
    }

    /// Options used for the validation dry run (default: CPU, one thread).
    pub fn set_validation_options(&mut self, opts: RuntimeOptions) {
        self.validation = opts;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn builtins(&self) -> Vec<ModelRecord> {
        let mut cache = self.builtin.lock();
        if let Some(c) = cache.as_ref() {
            return c.clone();
        }
        let mut out = Vec::new();
        if let Some(root) = &self.builtin_dir
            && let Ok(entries) = std::fs::read_dir(root)
        {
            for e in entries.flatten() {
                let p = e.path();
                if !p.join(ONNX_FILE).is_file() || !p.join(MANIFEST_FILE).is_file() {
                    continue;
                }
                match read_record(&p, true, None) {
                    Ok(r) => out.push(r),
                    Err(error) => {
                        tracing::warn!(%error, path = %p.display(), "skipping built-in model")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        *cache = Some(out.clone());
        out
    }

    fn stored(&self) -> Result<Vec<ModelRecord>, InferError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| InferError::io(format!("listing {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_sha_dir(&name) {
                continue;
            }
            match read_record(&e.path(), false, Some(name)) {
                Ok(r) => out.push(r),
                Err(error) => {
                    tracing::warn!(%error, path = %e.path().display(), "skipping stored model")
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every model, built-in first, each group by name.
    pub fn list(&self) -> Result<Vec<ModelRecord>, InferError> {
        let mut all = self.builtins();
        all.extend(self.stored()?);
        Ok(all)
    }

    pub fn get(&self, name: &str) -> Result<ModelRecord, InferError> {
        self.list()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| InferError::ModelNotFound(name.to_string()))
    }

    /// A registered name, or a path: a model folder (`model.onnx` + `manifest.toml`) or an
    /// `.onnx` file with `<stem>.toml` or `manifest.toml` beside it.
    pub fn resolve(&self, name_or_path: &str) -> Result<ModelRecord, InferError> {
        match self.get(name_or_path) {
            Err(InferError::ModelNotFound(_)) => {}
            other => return other,
        }
        let p = Path::new(name_or_path);
        if p.is_dir() && p.join(ONNX_FILE).is_file() {
            return read_record(p, false, None);
        }
        if p.is_file() {
            let dir = p.parent().unwrap_or(Path::new("."));
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            let manifests = stem
                .map(|s| dir.join(format!("{s}.toml")))
                .into_iter()
                .chain([dir.join(MANIFEST_FILE)]);
            for m in manifests {
                if m.is_file() {
                    let manifest = Manifest::from_path(&m)?;
                    let (sha256, size_bytes) = sha256_file(p)?;
                    return Ok(ModelRecord {
                        name: manifest.name().to_string(),
                        sha256,
                        onnx_path: p.to_path_buf(),
                        manifest,
                        builtin: false,
                        size_bytes,
                    });
                }
            }
            return Err(InferError::invalid_model(
                name_or_path,
                "no manifest beside the file (<name>.toml or manifest.toml)",
            ));
        }
        Err(InferError::ModelNotFound(name_or_path.to_string()))
    }

    /// Stores a model after validating it (see the module docs). Adding the same file with
    /// the same name again returns the existing record.
    pub fn add(
        &self,
        onnx_path: &Path,
        manifest: impl Into<Manifest>,
    ) -> Result<ModelRecord, InferError> {
        let manifest = manifest.into();
        let mut src = std::fs::File::open(onnx_path)
            .map_err(|e| InferError::io(format!("opening {}", onnx_path.display()), e))?;
        self.add_from(&mut src, onnx_path, manifest)
    }

    /// Like [`add`](Self::add), from bytes (an HTTP upload).
    pub fn add_bytes(
        &self,
        onnx: &[u8],
        manifest: impl Into<Manifest>,
    ) -> Result<ModelRecord, InferError> {
        let manifest = manifest.into();
        self.add_from(&mut &onnx[..], Path::new("<upload>"), manifest)
    }

    fn add_from(
        &self,
        src: &mut impl Read,
        what: &Path,
        manifest: Manifest,
    ) -> Result<ModelRecord, InferError> {
        manifest.validate()?;
        let _guard = self.write.lock();
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let result = self.stage_and_commit(src, what, manifest, &tmp);
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn stage_and_commit(
        &self,
        src: &mut impl Read,
        what: &Path,
        manifest: Manifest,
        tmp: &Path,
    ) -> Result<ModelRecord, InferError> {
        std::fs::create_dir_all(tmp)
            .map_err(|e| InferError::io(format!("creating {}", tmp.display()), e))?;
        let staged = tmp.join(ONNX_FILE);
        let mut file = std::fs::File::create(&staged)
            .map_err(|e| InferError::io(format!("creating {}", staged.display()), e))?;
        let (sha256, size_bytes) = copy_hashing(src, Some(&mut file), what)?;
        file.sync_all()
            .map_err(|e| InferError::io("flushing the model file", e))?;
        drop(file);

        if self.builtins().iter().any(|r| r.name == manifest.name()) {
            return Err(InferError::ModelConflict {
                name: manifest.name().to_string(),
                message: "a built-in model has this name".into(),
            });
        }
        for r in self.stored()? {
            if r.sha256 == sha256 && r.name == manifest.name() {
                return Ok(r);
            }
            if r.name == manifest.name() {
                return Err(InferError::ModelConflict {
                    name: manifest.name().to_string(),
                    message: format!("already registered with another file ({})", r.sha256),
                });
            }
            if r.sha256 == sha256 {
                return Err(InferError::ModelConflict {
                    name: manifest.name().to_string(),
                    message: format!("this file is already registered as `{}`", r.name),
                });
            }
        }

        validate_model(&staged, &manifest, &self.validation)?;
        let text = manifest.to_toml_string()?;
        std::fs::write(tmp.join(MANIFEST_FILE), text)
            .map_err(|e| InferError::io("writing the manifest", e))?;
        let dest = self.dir.join(&sha256);
        std::fs::rename(tmp, &dest)
            .map_err(|e| InferError::io(format!("storing into {}", dest.display()), e))?;
        tracing::info!(model = %manifest.name(), %sha256, "model registered");
        Ok(ModelRecord {
            name: manifest.name().to_string(),
            sha256,
            onnx_path: dest.join(ONNX_FILE),
            manifest,
            builtin: false,
            size_bytes,
        })
    }

    /// The models of one task, built-in first, each group by name.
    pub fn of_task(&self, task: Task) -> Result<Vec<ModelRecord>, InferError> {
        let mut all = self.list()?;
        all.retain(|r| r.manifest.task() == task);
        Ok(all)
    }

    /// The image-to-image model for a request: the one named (whose scale must be `scale` if
    /// that is given too), else the first of `scale` (built-in first, then by name).
    pub fn find_image_to_image(
        &self,
        name: Option<&str>,
        scale: Option<u32>,
    ) -> Result<ModelRecord, InferError> {
        let all = self.of_task(Task::ImageToImage)?;
        let scale_of = |r: &ModelRecord| r.manifest.image_to_image().map_or(0, |s| s.scale);
        match (name, scale) {
            (Some(n), _) => {
                let rec = match all.into_iter().find(|r| r.name == n) {
                    Some(r) => r,
                    None => {
                        // A model of another task by that name is a wrong request, not a
                        // missing model.
                        let other = self.get(n)?;
                        return Err(InferError::InvalidRequest(format!(
                            "model `{n}` is a {} model, not image_to_image",
                            other.manifest.task().as_str()
                        )));
                    }
                };
                match scale {
                    Some(s) if s != scale_of(&rec) => Err(InferError::InvalidRequest(format!(
                        "scale_factor: {s} does not match model `{n}` (×{})",
                        scale_of(&rec)
                    ))),
                    _ => Ok(rec),
                }
            }
            (None, Some(s)) => {
                let mut offered: Vec<u32> = all.iter().map(scale_of).collect();
                offered.sort_unstable();
                offered.dedup();
                all.into_iter().find(|r| scale_of(r) == s).ok_or_else(|| {
                    let offered: Vec<String> = offered.iter().map(u32::to_string).collect();
                    InferError::InvalidRequest(format!(
                        "scale_factor: {s} is not offered (offered: {})",
                        if offered.is_empty() {
                            "none".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ))
                })
            }
            (None, None) => Err(InferError::InvalidRequest(
                "name an image_to_image model or give a scale_factor".into(),
            )),
        }
    }

    /// Deletes a stored model. Built-in models cannot be removed. (Refusing while a model
    /// is in use is the caller's business: it knows which runs use what.)
    pub fn remove(&self, name: &str) -> Result<ModelRecord, InferError> {
        let _guard = self.write.lock();
        if self.builtins().iter().any(|r| r.name == name) {
            return Err(InferError::ModelConflict {
                name: name.to_string(),
                message: "built-in models cannot be removed".into(),
            });
        }
        let rec = self
            .stored()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| InferError::ModelNotFound(name.to_string()))?;
        let dir = self.dir.join(&rec.sha256);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| InferError::io(format!("removing {}", dir.display()), e))?;
        tracing::info!(model = %name, sha256 = %rec.sha256, "model removed");
        Ok(rec)
    }
}
