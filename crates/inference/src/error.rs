//! The inference crate's error vocabulary (STYLE pattern 1).
//!
//! One enum for everything that can go wrong between "find the ONNX Runtime library" and
//! "hand detections back". Each variant maps onto a [`sightline_core::ErrorKind`] so the
//! supervisor knows whether to retry a run and the HTTP API knows which status to answer
//! (a pixel bomb is 413, accelerator out of memory 503, an undecodable image 422, ...).

use sightline_core::FieldErrors;
use sightline_core::error::{Classify, ErrorKind, RetryHint};
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// No ONNX Runtime shared library was found in any of the places searched.
    #[error("ONNX Runtime library not found; looked in: {}", display_paths(.searched))]
    RuntimeNotFound { searched: Vec<PathBuf> },

    /// A library was found but could not be loaded (wrong version, wrong architecture, ...).
    #[error("could not load ONNX Runtime: {}", .attempts.join("; "))]
    RuntimeLoad { attempts: Vec<String> },

    /// The requested execution provider cannot be used and CPU fallback is off.
    #[error("execution provider `{provider}` is unavailable: {reason}")]
    ProviderUnavailable {
        provider: &'static str,
        reason: String,
    },

    /// The manifest text does not parse (syntax, unknown field, wrong type).
    #[error("invalid model manifest: {0}")]
    ManifestParse(String),

    /// The manifest parses but some fields have invalid values.
    #[error("invalid model manifest:\n{0}")]
    ManifestInvalid(FieldErrors),

    /// The model file cannot be loaded or does not fit its manifest (not ONNX, wrong input).
    #[error("invalid model `{model}`: {message}")]
    InvalidModel { model: String, message: String },

    /// The model's outputs do not have the layout its manifest's decoder expects.
    #[error("model `{model}`: outputs do not match the `{family}` decoder: {message}")]
    OutputMismatch {
        model: String,
        family: &'static str,
        message: String,
    },

    /// A frame handed to `submit` is inconsistent (size and buffer disagree, zero size).
    #[error("invalid frame: {0}")]
    InvalidFrame(String),

    /// Request options out of range (a threshold outside 0..=1).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// Image bytes that do not decode.
    #[error("invalid image: {0}")]
    InvalidImage(String),

    /// An image whose header announces more pixels than allowed (rejected before decoding).
    #[error("image is {width}x{height} ({} pixels), over the limit of {limit} pixels", *.width as u64 * *.height as u64)]
    TooManyPixels { width: u32, height: u32, limit: u64 },

    /// The request was dropped because its client's queue was full (newest wins).
    #[error("inference request dropped: the client's queue was full")]
    Dropped,

    /// No result within the time the caller was prepared to wait.
    #[error("no inference result within {0:?}")]
    Timeout(Duration),

    /// The caller cancelled the work (its time ran out); what was running was terminated.
    #[error("inference cancelled")]
    Cancelled,

    /// The accelerator ran out of memory; the session is still usable.
    #[error("accelerator out of memory: {0}")]
    OutOfMemory(String),

    /// ONNX Runtime failed while running a batch.
    #[error("inference failed: {0}")]
    Runtime(String),

    /// The model's batcher has stopped (model unloaded) or the request vanished.
    #[error("inference service for this model has stopped")]
    Closed,

    /// No model by that name in the registry.
    #[error("model `{0}` not found")]
    ModelNotFound(String),

    /// A registry operation conflicts with what is stored (name taken, built-in model).
    #[error("model `{name}`: {message}")]
    ModelConflict { name: String, message: String },

    /// File-system trouble, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The benchmark could not run (no ffmpeg, no frames, baseline script failed).
    #[error("benchmark: {0}")]
    Bench(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl InferError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        InferError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid_model(model: impl Into<String>, message: impl Into<String>) -> Self {
        InferError::InvalidModel {
            model: model.into(),
            message: message.into(),
        }
    }
}

impl Classify for InferError {
    fn kind(&self) -> ErrorKind {
        match self {
            InferError::RuntimeNotFound { .. }
            | InferError::RuntimeLoad { .. }
            | InferError::ProviderUnavailable { .. }
            | InferError::Dropped
            | InferError::Closed => ErrorKind::Unavailable,
            InferError::ManifestParse(_)
            | InferError::ManifestInvalid(_)
            | InferError::InvalidModel { .. }
            | InferError::OutputMismatch { .. }
            | InferError::InvalidFrame(_)
            | InferError::InvalidRequest(_)
            | InferError::InvalidImage(_) => ErrorKind::InvalidInput,
            InferError::TooManyPixels { .. } | InferError::OutOfMemory(_) => {
                ErrorKind::ResourceExhausted
            }
            InferError::Timeout(_) | InferError::Cancelled => ErrorKind::Timeout,
            InferError::ModelNotFound(_) => ErrorKind::NotFound,
            InferError::ModelConflict { .. } => ErrorKind::Conflict,
            InferError::Runtime(_) | InferError::Io { .. } | InferError::Bench(_) => {
                ErrorKind::Internal
            }
        }
    }

    fn retry(&self) -> RetryHint {
        match self {
            // A missing library or provider does not appear by retrying, and the same
            // oversized image stays oversized.
            InferError::RuntimeNotFound { .. }
            | InferError::RuntimeLoad { .. }
            | InferError::ProviderUnavailable { .. }
            | InferError::TooManyPixels { .. } => RetryHint::DoNotRetry,
            other => other.kind().default_retry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retry_hints() {
        let bomb = InferError::TooManyPixels {
            width: 100_000,
            height: 100_000,
            limit: 40_000_000,
        };
        assert_eq!(bomb.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(bomb.retry(), RetryHint::DoNotRetry);
        assert!(bomb.to_string().contains("10000000000 pixels"));

        let oom = InferError::OutOfMemory("cuda".into());
        assert_eq!(oom.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(oom.retry(), RetryHint::Retry);

        assert_eq!(InferError::Dropped.retry(), RetryHint::Retry);
        assert_eq!(
            InferError::InvalidImage("x".into()).kind(),
            ErrorKind::InvalidInput
        );
        let missing = InferError::RuntimeNotFound {
            searched: vec!["/a/libonnxruntime.so".into(), "/b".into()],
        };
        assert_eq!(missing.retry(), RetryHint::DoNotRetry);
        assert!(missing.to_string().contains("/a/libonnxruntime.so, /b"));
    }
}
