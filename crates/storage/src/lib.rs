//! Sightline's media store: event pictures (crops and snapshots), continuous recording in MP4
//! segments, retention and disk survival mode.
//!
//! Pure parts first (tested in milliseconds, no disk, no database): the key scheme
//! ([`keys`]), where a crop is cut ([`crop`]), what the janitor deletes ([`plan`]) and which
//! part of which segments a clip needs ([`clip`]). IO at the edge: the object store behind
//! it all, a local directory or S3 through the `object_store` crate ([`backend`]); the
//! picture writer thread behind a bounded queue ([`pictures`]); the recording index
//! ([`segments`]); and the janitor task ([`janitor`]). The index rows live in the database
//! (`sightline-store`), the bytes only in the media store. See ADR 0006.

pub mod backend;
pub mod clip;
pub mod crop;
pub mod error;
pub mod janitor;
pub mod keys;
pub mod pictures;
pub mod plan;
pub mod segments;
mod telemetry;

pub use backend::MediaStore;
pub use clip::{ClipPart, ClipPlan, plan_clip};
pub use crop::{Rect, crop_rect, cut};
pub use error::{MediaError, MediaResult};
pub use janitor::{Janitor, JanitorOptions, JanitorStatus, MediaHealth};
pub use pictures::{PictureJob, PictureWriter, WriterOptions, encode_jpeg, scaled_size};
pub use segments::{SegmentIndexer, SegmentNote};
