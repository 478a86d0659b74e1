//! Domain vocabulary shared by every Sightline crate.
//!
//! This crate holds *types only*: identifiers, the stream clock, frames, boxes, detections,
//! tracks, events, the run lifecycle and the error classification that lets the supervisor
//! decide whether to retry. It performs no IO and links no system library, so every other
//! crate (including the pure `tracking`, `analytics` and `overlay` crates) can depend on it
//! and still test in milliseconds.

pub mod clock;
pub mod error;
pub mod event;
pub mod frame;
pub mod geometry;
pub mod ids;
pub mod job;
pub mod media;
pub mod run;
pub mod secret;
pub mod time;
pub mod validation;
pub mod vision;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorKind, RetryHint};
pub use event::{Direction, Event, EventKind, PlateCandidate, PlateRead, RuleEvent};
pub use frame::{Frame, PixelFormat, YuvColor, YuvMatrix};
pub use geometry::{BBox, Point};
pub use ids::{EventId, RunId, TrackId};
pub use job::JobState;
pub use media::{EventMedia, MediaRef, PictureKind};
pub use run::{RunState, TransitionError};
pub use secret::Secret;
pub use time::Pts;
pub use validation::{FieldError, FieldErrors};
pub use vision::{ClassId, Detection, Labels, Track, TrackAttributes};
