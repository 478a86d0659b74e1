//! Follows detected objects across the frames of one stream and gives each a stable id.
//!
//! Detectors see each frame in isolation; rules (zone entry, line crossing, dwell) need to know
//! that the person in this frame is the one from the previous frame. This crate is the
//! ByteTrack-style tracker that links them: a constant-velocity Kalman filter per object and
//! IoU matching in two score stages, so objects keep their id through short occlusions and
//! through dips in detector confidence, and boxes keep moving on frames that skipped inference.
//!
//! It is sans-IO: a [`Tracker`] is a plain struct fed one frame at a time by the run's
//! pipeline task; it does no IO, reads no clock and spawns nothing, so it tests in
//! milliseconds and gives the same output for the same input.
//!
//! ```
//! use sightline_core::{BBox, ClassId, Detection, Pts};
//! use sightline_tracking::{Tracker, TrackerSettings};
//!
//! let mut tracker = Tracker::new(TrackerSettings::default());
//! let person = Detection { bbox: BBox::new(10.0, 10.0, 50.0, 110.0), score: 0.9, class_id: ClassId(0) };
//! let tracks = tracker.update(Pts::ZERO, &[person]);
//! assert_eq!(tracks.len(), 1);
//! assert_eq!(tracks[0].id.0, 1);
//! // Next frame skipped inference: the track is still reported, with a predicted box.
//! let tracks = tracker.predict(Pts::from_millis(33));
//! assert!(!tracks[0].matched);
//! ```

#![warn(missing_docs)]

mod assign;
mod kalman;
mod settings;
mod tracker;

pub use settings::TrackerSettings;
pub use tracker::Tracker;
