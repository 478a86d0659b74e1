//! The overlay's errors. Drawing itself never fails (bad geometry is skipped, everything is
//! clipped); only installing a style or loading the font can.

use sightline_core::FieldErrors;
use sightline_core::error::{Classify, ErrorKind};

/// Why a painter could not be created or restyled.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The drawing style has invalid fields (each named in the list).
    #[error("invalid drawing style: {0}")]
    InvalidStyle(FieldErrors),
    /// The embedded font could not be parsed: a build defect.
    #[error("embedded font is unreadable: {0}")]
    Font(ab_glyph::InvalidFont),
}

impl Classify for OverlayError {
    fn kind(&self) -> ErrorKind {
        match self {
            OverlayError::InvalidStyle(_) => ErrorKind::InvalidInput,
            OverlayError::Font(_) => ErrorKind::Internal,
        }
    }
}
