//! The notify crate's errors, classified with the shared vocabulary so `/ready` and the
//! supervisor can tell a down broker (retry) from a broken config (do not).

use sightline_core::error::Classify;
use sightline_core::{ErrorKind, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The `[notify]` section is invalid.
    #[error("invalid notify config:\n{0}")]
    Config(FieldErrors),
    /// The outbox could not be read or updated.
    #[error("outbox: {0}")]
    Store(#[from] sightline_store::StoreError),
    /// The broker or endpoint could not be reached, or refused the delivery.
    #[error("sink {sink}: {message}")]
    Delivery { sink: String, message: String },
    /// The HTTP client could not be built (TLS roots, proxy settings).
    #[error("sink {sink}: cannot build the HTTP client: {message}")]
    Client { sink: String, message: String },
}

impl Classify for NotifyError {
    fn kind(&self) -> ErrorKind {
        match self {
            NotifyError::Config(_) => ErrorKind::InvalidInput,
            NotifyError::Store(e) => e.kind(),
            NotifyError::Delivery { .. } => ErrorKind::Unavailable,
            NotifyError::Client { .. } => ErrorKind::Internal,
        }
    }
}
