//! Loaded models, shared. A model is loaded once per process (per content hash) and every
//! run that names it gets the same `SharedModel`, so frames from many streams meet in one
//! batcher and one ONNX Runtime session.

use parking_lot::Mutex;
use sightline_config::server::InferenceSection;
use sightline_inference::{InferError, Provider, Registry, RuntimeOptions, SharedModel};
use std::collections::HashMap;
use std::path::Path;
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
        intra_threads: s.intra_threads,
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

    /// Models currently loaded, by name.
    pub fn loaded(&self) -> Vec<Arc<SharedModel>> {
        self.loaded.lock().values().cloned().collect()
    }
}
