//! One error vocabulary (STYLE pattern 1): every library error maps onto an [`ErrorKind`] and
//! a [`RetryHint`]. The supervisor uses the hint to decide between retrying a run and failing
//! it; the API maps the kind to an HTTP status in one place.

use serde::{Deserialize, Serialize};

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller gave something invalid (config, model, image, URI).
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// It exists but cannot be used now (conflict with current state).
    Conflict,
    /// A dependency is unreachable or overloaded (network, broker, source, database).
    Unavailable,
    /// A timeout expired.
    Timeout,
    /// A resource limit was hit (memory, accelerator memory, pixel limit).
    ResourceExhausted,
    /// A bug or an unexpected state inside Sightline.
    Internal,
}

/// Whether repeating the same operation may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryHint {
    /// Retrying may help (transient network failure, source offline).
    Retry,
    /// Retrying the same input gives the same failure (bad model, invalid config, panic).
    DoNotRetry,
}

impl ErrorKind {
    /// The default retry hint for this kind.
    pub fn default_retry(self) -> RetryHint {
        match self {
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::ResourceExhausted => {
                RetryHint::Retry
            }
            _ => RetryHint::DoNotRetry,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every library error so callers can classify it without matching variants.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
    fn retry(&self) -> RetryHint {
        self.kind().default_retry()
    }
}
