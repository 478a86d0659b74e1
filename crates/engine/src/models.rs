//! Loaded models, shared. A model is loaded once per process (per content hash) and every
//! run that names it gets the same `SharedModel`, so frames from many streams meet in one
//! batcher and one ONNX Runtime session.

use parking_lot::Mutex;
use sightline_config::server::InferenceSection;
use sightline_inference::{
    InferError, OcrOptions, Provider, Registry, RuntimeOptions, SharedModel, TextReader,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The model type runs use.
pub type LoadedModel = SharedModel;

/// Models by content hash, loaded on first use.
#[derive(Debug)]
pub struct ModelCache {
    registry: Registry,
    opts: RuntimeOptions,
    loaded: Mutex<HashMap<String, Arc<SharedModel>>>,
    /// OCR model pairs by (detector, recogniser) path.
    readers: Mutex<HashMap<(PathBuf, PathBuf), Arc<TextReader>>>,
}

/// The shipped OCR models (`models/ppocr-v4/{det,rec}.onnx` beside the built-in detectors).
pub fn builtin_ocr_models() -> Option<(PathBuf, PathBuf)> {
    let dir = sightline_inference::builtin_models_dir()?.join("ppocr-v4");
    let (d, r) = (dir.join("det.onnx"), dir.join("rec.onnx"));
    (d.is_file() && r.is_file()).then_some((d, r))
}

/// Runtime options from the server config's `[inference]` section.
pub fn runtime_options(s: &InferenceSection, data_dir: &Path) -> RuntimeOptions {
    let provider = match s.provider.as_str() {
        "cuda" => Provider::Cuda { device_id: 0 },
        "tensorrt" => Provider::TensorRt {
            device_id: 0,
            fp16: s.tensorrt_fp16,
            engine_cache_dir: Some(
                s.tensorrt_cache_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("trt-cache")),
            ),
        },
        _ => Provider::Cpu,
    };
    let mut o = RuntimeOptions {
        provider,
        fallback_to_cpu: s.fallback_to_cpu,
        // Sessions share the cores: without a thread count, each gets its share.
        intra_threads: s.intra_threads.or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (s.sessions > 1).then(|| (cores / s.sessions).max(1))
        }),
        sessions: s.sessions.max(1),
        ..RuntimeOptions::default()
    };
    o.batch.max_batch = s.max_batch.max(1);
    o.batch.max_wait = Duration::from_millis(s.max_wait_ms);
    o
}

impl ModelCache {
    /// Initialises ONNX Runtime and opens the registry under `<data_dir>/models`.
    pub fn open(s: &InferenceSection, data_dir: &Path) -> Result<ModelCache, InferError> {
        sightline_inference::init_runtime(s.library_path.as_deref())?;
        let registry = Registry::open(data_dir.join("models"))?;
        Ok(ModelCache {
            registry,
            opts: runtime_options(s, data_dir),
            loaded: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn runtime_options(&self) -> &RuntimeOptions {
        &self.opts
    }

    /// The loaded model named `name` (a registry name or a path), loading it if needed.
    pub fn get(&self, name: &str) -> Result<Arc<SharedModel>, InferError> {
        let rec = self.registry.resolve(name)?;
        let mut loaded = self.loaded.lock();
        if let Some(m) = loaded.get(&rec.sha256) {
            return Ok(m.clone());
        }
        tracing::info!(model = %rec.name, sha256 = %rec.sha256, provider = self.opts.provider.name(), "loading model");
        let manifest = rec.manifest.detector()?.clone();
        let m = SharedModel::load(&rec.onnx_path, manifest, &self.opts)?;
        loaded.insert(rec.sha256.clone(), m.clone());
        Ok(m)
    }

    /// The OCR models for a plate stage: `det`/`rec` paths, or the shipped ones. Loaded once
    /// per pair and shared by every run (a load failure is the caller's config error).
    pub fn text_reader(
        &self,
        det: Option<&str>,
        rec: Option<&str>,
    ) -> Result<Arc<TextReader>, InferError> {
        let builtin = builtin_ocr_models();
        let pick = |given: Option<&str>, shipped: Option<PathBuf>, what: &str| {
            given.map(PathBuf::from).or(shipped).ok_or_else(|| {
                InferError::ModelNotFound(format!(
                    "the shipped {what} (models/ppocr-v4) is missing; name one in the config"
                ))
            })
        };
        let d = pick(det, builtin.as_ref().map(|b| b.0.clone()), "text detector")?;
        let r = pick(rec, builtin.map(|b| b.1), "text recogniser")?;
        let key = (d, r);
        let mut readers = self.readers.lock();
        if let Some(t) = readers.get(&key) {
            return Ok(t.clone());
        }
        let mut opts = self.opts.clone();
        // The OCR networks run beside the detector: one thread each keeps them from taking
        // the detector's cores.
        opts.intra_threads = Some(1);
        let t = Arc::new(TextReader::open(
            &key.0,
            &key.1,
            &opts,
            OcrOptions::default(),
        )?);
        readers.insert(key, t.clone());
        Ok(t)
    }

    /// Models currently loaded, by name.
    pub fn loaded(&self) -> Vec<Arc<SharedModel>> {
        self.loaded.lock().values().cloned().collect()
    }
}
