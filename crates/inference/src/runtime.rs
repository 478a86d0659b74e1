//! Finding and loading the ONNX Runtime shared library, and building sessions from options.
//!
//! The library is not linked at build time (`ort`'s `load-dynamic`): Debian ships no ONNX
//! Runtime, so `scripts/setup` takes `libonnxruntime.so` out of the pinned PyPI wheel. This
//! module looks for it in a fixed, documented order, loads it once per process, and owns the
//! single ONNX Runtime environment every session is created under. It is also the one place
//! that turns [`RuntimeOptions`] (provider, threads, spinning) into a session builder, so an
//! unavailable CUDA/TensorRT provider is reported (or falls back to CPU) the same way for
//! every model.

use crate::error::InferError;
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// File name of the library on this platform (`libonnxruntime.so` on Linux).
pub fn library_file_name() -> String {
    format!(
        "{}onnxruntime{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

struct Runtime {
    path: PathBuf,
    env: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The places [`init_runtime`] looks, in order: `explicit` (a file, or a folder holding the
/// library), `ORT_DYLIB_PATH`, next to the current executable and in `../lib` from it,
/// `./.ort/`, and the workspace's `.ort/` (where `scripts/setup` puts it).
pub fn runtime_search_paths(explicit: Option<&Path>) -> Vec<PathBuf> {
    let file = library_file_name();
    let as_file = |p: &Path| {
        if p.is_dir() {
            p.join(&file)
        } else {
            p.to_path_buf()
        }
    };
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(as_file(p));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(as_file(Path::new(&p)));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(&file));
        out.push(dir.join("..").join("lib").join(&file));
    }
    if let Ok(cwd) = std::env::current_dir() {
        out.push(cwd.join(".ort").join(&file));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.ort")
            .join(&file),
    );
    let mut seen = Vec::new();
    out.retain(|p| {
        let key = p.canonicalize().unwrap_or_else(|_| p.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    out
}

/// Loads the ONNX Runtime library (once per process) and returns the path it came from.
///
/// Idempotent: later calls return the first path, whatever `explicit` says (a process can
/// hold only one ONNX Runtime). Errors name every place looked in.
pub fn init_runtime(explicit: Option<&Path>) -> Result<PathBuf, InferError> {
    if let Some(rt) = RUNTIME.get() {
        warn_if_other(explicit, &rt.path);
        return Ok(rt.path.clone());
    }
    let _guard = INIT.lock();
    if let Some(rt) = RUNTIME.get() {
        warn_if_other(explicit, &rt.path);
        return Ok(rt.path.clone());
    }
    let candidates = runtime_search_paths(explicit);
    let mut attempts = Vec::new();
    for path in &candidates {
        if !path.is_file() {
            continue;
        }
        let builder = match ort::init_from(path) {
            Ok(b) => b,
            Err(e) => {
                attempts.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        // The library is loaded now; the environment must be built from it, or not at all.
        let env = builder
            .with_name("sightline")
            .with_telemetry(false)
            .build()
            .map_err(|e| InferError::RuntimeLoad {
                attempts: vec![format!("{}: creating the environment: {e}", path.display())],
            })?;
        let path = path.canonicalize().unwrap_or_else(|_| path.clone());
        tracing::info!(path = %path.display(), "ONNX Runtime loaded");
        let _ = RUNTIME.set(Runtime {
            path: path.clone(),
            env,
        });
        return Ok(path);
    }
    if attempts.is_empty() {
        Err(InferError::RuntimeNotFound {
            searched: candidates,
        })
    } else {
        Err(InferError::RuntimeLoad { attempts })
    }
}

fn warn_if_other(explicit: Option<&Path>, loaded: &Path) {
    if let Some(p) = explicit {
        let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if p != loaded && !loaded.starts_with(&p) {
            tracing::warn!(
                requested = %p.display(),
                loaded = %loaded.display(),
                "ONNX Runtime already loaded from another path; keeping it"
            );
        }
    }
}

/// The process-wide environment, loading the library from the default places if needed.
pub(crate) fn environment() -> Result<&'static Environment, InferError> {
    init_runtime(None)?;
    RUNTIME
        .get()
        .map(|r| &r.env)
        .ok_or_else(|| InferError::RuntimeLoad {
            attempts: vec!["runtime initialisation raced".into()],
        })
}

/// Which execution provider runs the model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Provider {
    /// ONNX Runtime's CPU provider (always available).
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `onnxruntime-gpu` library, CUDA 13 and cuDNN 9).
    Cuda {
        #[serde(default)]
        device_id: i32,
    },
    /// NVIDIA TensorRT, with CUDA for the nodes TensorRT does not take.
    #[serde(rename = "tensorrt")]
    TensorRt {
        #[serde(default)]
        device_id: i32,
        /// Build FP16 engines.
        #[serde(default)]
        fp16: bool,
        /// Where built engines are cached (building one takes minutes); none = no cache.
        #[serde(default)]
        engine_cache_dir: Option<PathBuf>,
    },
}

impl Provider {
    /// Short name for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda { .. } => "cuda",
            Provider::TensorRt { .. } => "tensorrt",
        }
    }
}

/// How the batcher groups requests from many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOptions {
    /// Most requests run as one batch (only when the model's batch dimension is dynamic).
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    #[serde(with = "millis")]
    pub max_wait: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch: 8,
            max_wait: Duration::from_millis(4),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// How sessions are created: provider, threads, batching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeOptions {
    pub provider: Provider,
    /// When the provider is unavailable: log and use the CPU instead of failing.
    pub fallback_to_cpu: bool,
    /// Intra-op threads; `None` = the number of cores.
    pub intra_threads: Option<usize>,
    /// Sessions of the model, each run by its own batcher thread taking requests from the
    /// shared queues (default 1). On a CPU, several one-thread sessions turn cores into
    /// throughput better than one session whose threads split each frame.
    pub sessions: usize,
    /// Let idle ONNX Runtime threads spin. Off by default: GStreamer shares the cores, and
    /// spinning threads starve it (measured 23.6 ms spinning vs 12.2 ms not, under load).
    pub spinning: bool,
    pub batch: BatchOptions,
    /// GPU memory budget of this model's CUDA arena, bytes (none = no limit). Going over it
    /// is an [`InferError::OutOfMemory`] for that batch (or that load), not a crash.
    pub gpu_memory_limit_bytes: Option<u64>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            provider: Provider::Cpu,
            fallback_to_cpu: false,
            intra_threads: None,
            sessions: 1,
            spinning: false,
            batch: BatchOptions::default(),
            gpu_memory_limit_bytes: None,
        }
    }
}

impl RuntimeOptions {
    /// The thread count actually used.
    pub fn threads(&self) -> usize {
        self.intra_threads.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

/// A committed session and the provider it really runs on (after any fallback).
pub(crate) struct BuiltSession {
    pub session: Session,
    pub provider: Provider,
}

fn builder_err<R>(e: ort::Error<R>) -> String {
    e.message().to_string()
}

fn base_builder(opts: &RuntimeOptions) -> Result<SessionBuilder, String> {
    let env = environment().map_err(|e| e.to_string())?;
    Session::builder(env)
        .map_err(|e| e.to_string())?
        .with_intra_threads(opts.threads())
        .map_err(builder_err)?
        .with_inter_threads(1)
        .map_err(builder_err)?
        .with_intra_op_spinning(opts.spinning)
        .map_err(builder_err)?
        .with_inter_op_spinning(opts.spinning)
        .map_err(builder_err)
}

fn provider_available<E: ExecutionProvider>(name: &'static str) -> Result<(), InferError> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(InferError::ProviderUnavailable {
            provider: name,
            reason: format!(
                "this ONNX Runtime library was built without {} (use the onnxruntime-gpu build)",
                E::NAME
            ),
        }),
        Err(e) => Err(InferError::ProviderUnavailable {
            provider: name,
            reason: e.to_string(),
        }),
    }
}

fn cuda_ep(device_id: i32, memory_limit: Option<u64>) -> ep::ExecutionProviderDispatch {
    let mut cuda = ep::CUDA::default().with_device_id(device_id);
    if let Some(limit) = memory_limit {
        cuda = cuda.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    cuda.build().error_on_failure()
}

fn accelerated_builder(
    provider: &Provider,
    opts: &RuntimeOptions,
) -> Result<SessionBuilder, InferError> {
    let unavailable = |reason: String| InferError::ProviderUnavailable {
        provider: provider.name(),
        reason,
    };
    let builder = base_builder(opts).map_err(|m| InferError::RuntimeLoad { attempts: vec![m] })?;
    let dispatch = match provider {
        Provider::Cpu => return Ok(builder),
        Provider::Cuda { device_id } => {
            provider_available::<ep::CUDA>("cuda")?;
            vec![cuda_ep(*device_id, opts.gpu_memory_limit_bytes)]
        }
        Provider::TensorRt {
            device_id,
            fp16,
            engine_cache_dir,
        } => {
            provider_available::<ep::TensorRT>("tensorrt")?;
            let mut trt = ep::TensorRT::default()
                .with_device_id(*device_id)
                .with_fp16(*fp16);
            if let Some(dir) = engine_cache_dir {
                std::fs::create_dir_all(dir)
                    .map_err(|e| unavailable(format!("engine cache {}: {e}", dir.display())))?;
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display().to_string());
            }
            vec![
                trt.build().error_on_failure(),
                cuda_ep(*device_id, opts.gpu_memory_limit_bytes),
            ]
        }
    };
    builder
        .with_execution_providers(dispatch)
        .map_err(|e| unavailable(e.message().to_string()))
}

/// Builds a session for `onnx` with `opts`, applying the CPU fallback policy.
pub(crate) fn build_session(
    model: &str,
    onnx: &Path,
    opts: &RuntimeOptions,
) -> Result<BuiltSession, InferError> {
    let commit =
        |mut b: SessionBuilder| b.commit_from_file(onnx).map_err(|e| load_error(model, &e));
    match accelerated_builder(&opts.provider, opts) {
        Ok(b) => {
            let session = commit(b);
            match session {
                Ok(session) => Ok(BuiltSession {
                    session,
                    provider: opts.provider.clone(),
                }),
                // A provider that registers but fails when the graph is placed on it (not for
                // lack of memory: that is the budget working, and is reported as such).
                Err(e)
                    if opts.provider != Provider::Cpu
                        && opts.fallback_to_cpu
                        && !matches!(e, InferError::OutOfMemory(_)) =>
                {
                    fallback(model, onnx, opts, &e.to_string())
                }
                Err(e) => Err(e),
            }
        }
        Err(e @ InferError::ProviderUnavailable { .. }) if opts.fallback_to_cpu => {
            fallback(model, onnx, opts, &e.to_string())
        }
        Err(e) => Err(e),
    }
}

fn fallback(
    model: &str,
    onnx: &Path,
    opts: &RuntimeOptions,
    reason: &str,
) -> Result<BuiltSession, InferError> {
    tracing::warn!(
        model,
        provider = opts.provider.name(),
        reason,
        "execution provider unavailable; falling back to CPU"
    );
    let mut b = base_builder(opts).map_err(|m| InferError::RuntimeLoad { attempts: vec![m] })?;
    let session = b
        .commit_from_file(onnx)
        .map_err(|e| load_error(model, &e))?;
    Ok(BuiltSession {
        session,
        provider: Provider::Cpu,
    })
}

/// A session that cannot be created: out of (accelerator) memory, or a bad model.
fn load_error(model: &str, e: &ort::Error) -> InferError {
    match classify_run_error(e.message()) {
        oom @ InferError::OutOfMemory(_) => oom,
        _ => InferError::invalid_model(model, e.message().to_string()),
    }
}

/// Maps an ONNX Runtime run failure onto our vocabulary: allocation failures on the
/// accelerator become [`InferError::OutOfMemory`] (recoverable: the session stays loaded).
pub(crate) fn classify_run_error(message: &str) -> InferError {
    let m = message.to_ascii_lowercase();
    let oom = [
        "out of memory",
        "failed to allocate memory",
        "cudaerrormemoryallocation",
        "cudnn_status_alloc_failed",
        "cublas_status_alloc_failed",
        "bad_alloc",
        "available memory",
    ];
    if oom.iter().any(|p| m.contains(p)) {
        InferError::OutOfMemory(message.to_string())
    } else {
        InferError::Runtime(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_starts_with_explicit_and_ends_with_workspace() {
        let paths = runtime_search_paths(Some(Path::new("/nonexistent/lib.so")));
        assert_eq!(paths[0], PathBuf::from("/nonexistent/lib.so"));
        assert!(
            paths
                .last()
                .unwrap()
                .ends_with(format!(".ort/{}", library_file_name()))
        );
    }

    #[test]
    fn run_errors_are_classified() {
        let e = classify_run_error(
            "CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc((void**)&p, size);",
        );
        assert!(matches!(e, InferError::OutOfMemory(_)));
        let e = classify_run_error(
            "BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer",
        );
        assert!(matches!(e, InferError::OutOfMemory(_)));
        let e = classify_run_error("Got invalid dimensions for input: x");
        assert!(matches!(e, InferError::Runtime(_)));
    }

    #[test]
    fn options_roundtrip_and_reject_unknown_fields() {
        let o: RuntimeOptions = toml::from_str(
            "fallback_to_cpu = true\n[provider]\nkind = \"tensorrt\"\nfp16 = true\nengine_cache_dir = \"/tmp/trt\"\n",
        )
        .unwrap();
        assert!(matches!(o.provider, Provider::TensorRt { fp16: true, .. }));
        assert!(o.fallback_to_cpu);
        assert!(!o.spinning);
        assert!(toml::from_str::<RuntimeOptions>("spin = true").is_err());
        assert!(RuntimeOptions::default().threads() >= 1);
    }

    #[test]
    fn runtime_loads_from_the_workspace() {
        let path = init_runtime(None).expect("run scripts/setup to fetch ONNX Runtime");
        assert!(path.is_file());
        // Idempotent, whatever is asked the second time.
        assert_eq!(init_runtime(Some(Path::new("/nonexistent"))).unwrap(), path);
    }

    #[test]
    fn unavailable_provider_is_an_error_or_a_fallback() {
        let onnx =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/nanodet-m-416/model.onnx");
        let mut opts = RuntimeOptions {
            provider: Provider::Cuda { device_id: 0 },
            intra_threads: Some(1),
            ..RuntimeOptions::default()
        };
        // The CPU wheel carries no CUDA provider; on a GPU build this test checks nothing
        // more than that the session loads.
        match build_session("nanodet", &onnx, &opts) {
            Ok(built) => assert_eq!(built.provider, opts.provider),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        InferError::ProviderUnavailable {
                            provider: "cuda",
                            ..
                        }
                    ),
                    "{e}"
                );
                opts.fallback_to_cpu = true;
                let built = build_session("nanodet", &onnx, &opts).unwrap();
                assert_eq!(built.provider, Provider::Cpu);
            }
        }
    }
}
