//! The media store's errors, classified like every library error (STYLE pattern 1).

use sightline_core::ErrorKind;
use sightline_core::error::Classify;

pub type MediaResult<T> = std::result::Result<T, MediaError>;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A setting makes the store unusable (start-up error; names the setting).
    #[error("{setting}: {message}")]
    Config {
        setting: &'static str,
        message: String,
    },
    /// No such object.
    #[error("media {key:?} not found")]
    NotFound { key: String },
    /// The volume is full.
    #[error("media {key:?}: no space left on the media volume")]
    Full { key: String },
    /// The store did not answer or refused (network, server error, permissions).
    #[error("media {key:?}: {message}")]
    Unavailable { key: String, message: String },
    /// Bad input (an invalid time range, a picture that cannot be encoded).
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(#[from] sightline_store::StoreError),
}

fn is_enospc(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && (io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// An error and its sources, `a: b: c` (object_store's top-level text often hides the cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

impl MediaError {
    pub(crate) fn from_store(key: &str, e: object_store::Error) -> MediaError {
        match e {
            object_store::Error::NotFound { .. } => MediaError::NotFound { key: key.into() },
            other if is_enospc(&other) => MediaError::Full { key: key.into() },
            other => MediaError::Unavailable {
                key: key.into(),
                message: chain(&other),
            },
        }
    }

    pub(crate) fn io(key: &str, e: std::io::Error) -> MediaError {
        if is_enospc(&e) {
            MediaError::Full { key: key.into() }
        } else if e.kind() == std::io::ErrorKind::NotFound {
            MediaError::NotFound { key: key.into() }
        } else {
            MediaError::Unavailable {
                key: key.into(),
                message: e.to_string(),
            }
        }
    }
}

impl Classify for MediaError {
    fn kind(&self) -> ErrorKind {
        match self {
            MediaError::Config { .. } | MediaError::Invalid(_) => ErrorKind::InvalidInput,
            MediaError::NotFound { .. } => ErrorKind::NotFound,
            MediaError::Full { .. } => ErrorKind::ResourceExhausted,
            MediaError::Unavailable { .. } => ErrorKind::Unavailable,
            MediaError::Store(e) => e.kind(),
        }
    }
}
