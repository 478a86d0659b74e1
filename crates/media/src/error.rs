//! Typed media errors.
//!
//! GStreamer reports failures as GLib errors on a bus; callers (the engine, the CLI, the API)
//! need to know *what kind* of failure happened to decide between retrying a source and
//! failing a run. This module turns GStreamer errors into a [`MediaError`] with a
//! [`MediaErrorKind`], the masked URI of the source it concerns, and a readable message, and
//! maps it onto the shared error vocabulary through [`Classify`].

use sightline_core::error::{Classify, ErrorKind, RetryHint};

/// What went wrong with a source or an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaErrorKind {
    /// The file (or remote resource) does not exist.
    NotFound,
    /// The URI scheme is not one Sightline reads (`file`, `rtsp`, `http(s)`, `test`).
    UnsupportedScheme,
    /// The URI is malformed or has invalid parameters (e.g. `test://?width=abc`).
    InvalidUri,
    /// The host could not be reached, refused the connection, or dropped it.
    Unreachable,
    /// The server rejected the credentials (RTSP/HTTP 401).
    AuthFailed,
    /// The RTSP server refused the lower transport asked for (`461 Unsupported transport`:
    /// e.g. a UDP-only camera asked for RTP over TCP).
    TransportRefused,
    /// The resource exists but holds no decodable video stream.
    NotVideo,
    /// Nothing usable arrived within the configured time.
    Timeout,
    /// The stream could not be decoded (corrupt data, missing decoder).
    Decode,
    /// An unexpected failure inside GStreamer or Sightline.
    Internal,
}

impl MediaErrorKind {
    /// Stable snake_case name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaErrorKind::NotFound => "not_found",
            MediaErrorKind::UnsupportedScheme => "unsupported_scheme",
            MediaErrorKind::InvalidUri => "invalid_uri",
            MediaErrorKind::Unreachable => "unreachable",
            MediaErrorKind::AuthFailed => "auth_failed",
            MediaErrorKind::TransportRefused => "transport_refused",
            MediaErrorKind::NotVideo => "not_video",
            MediaErrorKind::Timeout => "timeout",
            MediaErrorKind::Decode => "decode",
            MediaErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for MediaErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media failure: its kind, the source or output it concerns (credentials masked), and a
/// message. Never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} ({uri}): {message}")]
pub struct MediaError {
    pub kind: MediaErrorKind,
    /// The URI (or path, or mount) concerned, with credentials replaced by `***`.
    pub uri: String,
    pub message: String,
}

impl MediaError {
    /// Builds an error; `uri` is masked here, so callers may pass the raw URI.
    pub fn new(kind: MediaErrorKind, uri: &str, message: impl Into<String>) -> Self {
        MediaError {
            kind,
            uri: crate::uri::mask_uri(uri),
            message: crate::uri::scrub(uri, &message.into()),
        }
    }

    pub(crate) fn internal(uri: &str, message: impl Into<String>) -> Self {
        Self::new(MediaErrorKind::Internal, uri, message)
    }

    /// Classifies an error posted on a pipeline bus.
    pub(crate) fn from_glib(uri: &str, err: &gstreamer::glib::Error, debug: Option<&str>) -> Self {
        use gstreamer::{CoreError, ResourceError, StreamError};
        let kind = if let Some(e) = err.kind::<ResourceError>() {
            match e {
                ResourceError::NotFound => MediaErrorKind::NotFound,
                ResourceError::NotAuthorized => MediaErrorKind::AuthFailed,
                ResourceError::OpenRead
                | ResourceError::OpenReadWrite
                | ResourceError::Read
                | ResourceError::Seek
                | ResourceError::Sync
                | ResourceError::Busy => MediaErrorKind::Unreachable,
                _ => MediaErrorKind::Internal,
            }
        } else if let Some(e) = err.kind::<StreamError>() {
            match e {
                StreamError::TypeNotFound
                | StreamError::WrongType
                | StreamError::CodecNotFound
                | StreamError::Demux
                | StreamError::Format => MediaErrorKind::NotVideo,
                StreamError::Decode => MediaErrorKind::Decode,
                _ => MediaErrorKind::Internal,
            }
        } else if let Some(CoreError::MissingPlugin) = err.kind::<CoreError>() {
            MediaErrorKind::NotVideo
        } else {
            MediaErrorKind::Internal
        };
        let mut message = err.message().to_string();
        // 401 from rtspsrc arrives as a generic read error with the status in the debug text.
        if let Some(d) = debug {
            if d.contains("401") || d.to_ascii_lowercase().contains("unauthorized") {
                return Self::new(MediaErrorKind::AuthFailed, uri, message);
            }
            if kind == MediaErrorKind::Unreachable && d.contains("404") {
                return Self::new(MediaErrorKind::NotFound, uri, message);
            }
            // rtspsrc says "Unhandled error" for a status it has no case for (e.g. a camera
            // that is busy: `Service Unavailable (503)`); the status is the debug's last line.
            if message == "Unhandled error"
                && let Some(status) = d.lines().last().filter(|l| l.ends_with(')'))
            {
                message = format!("the server answered {}", status.trim());
            }
            if kind == MediaErrorKind::Internal {
                message = format!("{message} ({d})");
            }
        }
        Self::new(kind, uri, message)
    }
}

impl Classify for MediaError {
    fn kind(&self) -> ErrorKind {
        match self.kind {
            MediaErrorKind::NotFound => ErrorKind::NotFound,
            MediaErrorKind::UnsupportedScheme
            | MediaErrorKind::InvalidUri
            | MediaErrorKind::AuthFailed
            | MediaErrorKind::TransportRefused
            | MediaErrorKind::NotVideo
            | MediaErrorKind::Decode => ErrorKind::InvalidInput,
            MediaErrorKind::Unreachable => ErrorKind::Unavailable,
            MediaErrorKind::Timeout => ErrorKind::Timeout,
            MediaErrorKind::Internal => ErrorKind::Internal,
        }
    }

    fn retry(&self) -> RetryHint {
        match self.kind {
            MediaErrorKind::Unreachable | MediaErrorKind::Timeout => RetryHint::Retry,
            _ => RetryHint::DoNotRetry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_and_masking() {
        let e = MediaError::new(
            MediaErrorKind::Unreachable,
            "rtsp://bob:s3cret@cam/x",
            "cannot reach rtsp://bob:s3cret@cam/x",
        );
        assert_eq!(Classify::kind(&e), ErrorKind::Unavailable);
        assert_eq!(e.retry(), RetryHint::Retry);
        assert_eq!(e.uri, "rtsp://***@cam/x");
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("bob"), "{text}");

        let e = MediaError::new(MediaErrorKind::NotVideo, "/tmp/a.mp4", "no video");
        assert_eq!(e.retry(), RetryHint::DoNotRetry);
        assert_eq!(Classify::kind(&e), ErrorKind::InvalidInput);
        let e = MediaError::new(MediaErrorKind::Timeout, "rtsp://h/x", "slow");
        assert_eq!(e.retry(), RetryHint::Retry);
        let e = MediaError::new(MediaErrorKind::NotFound, "/nope", "missing");
        assert_eq!(Classify::kind(&e), ErrorKind::NotFound);
        assert_eq!(e.retry(), RetryHint::DoNotRetry);
    }
}
