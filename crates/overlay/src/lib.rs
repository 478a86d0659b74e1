//! Draws a run's results onto its frames: boxes with labels, zones, counting lines with
//! their counters, a status corner and a timestamp; and the "signal lost" slate shown while a
//! source reconnects.
//!
//! Frames are drawn **in place** in the pipeline's one frame format (packed RGB24, see
//! [`sightline_core::Frame`]), so the overlay adds no colour conversion and no copy. The
//! crate is pure: no IO at run time (the font is embedded), no threads, no system libraries.
//! Everything is clipped to the frame, and bad geometry (NaN, boxes or polygons outside the
//! frame, enormous text) is skipped or clipped, never a panic.
//!
//! ```
//! use sightline_core::{BBox, ClassId, Frame, Pts, TrackId};
//! use sightline_overlay::{DrawStyle, Painter, Scene, SceneObject};
//!
//! let mut painter = Painter::new(DrawStyle::default())?;
//! let mut frame = Frame::filled(640, 360, [40, 40, 40], Pts::ZERO);
//! let objects = [SceneObject {
//!     bbox: BBox::new(100.0, 80.0, 180.0, 300.0),
//!     class_id: ClassId(0),
//!     class_name: "person",
//!     score: 0.87,
//!     track_id: Some(TrackId(12)),
//! }];
//! painter.draw_scene(&mut frame, &Scene { objects: &objects, status: &["25.0 fps"], ..Scene::default() });
//! # Ok::<(), sightline_overlay::OverlayError>(())
//! ```

#![warn(missing_docs)]

pub mod clock_code;
mod color;
mod error;
mod painter;
mod raster;
mod scene;
mod style;
mod text;

pub use color::{CLASS_PALETTE, Color, REGION_PALETTE, class_color, region_color};
pub use error::OverlayError;
pub use painter::{Painter, TextBox};
pub use scene::{Scene, SceneLine, SceneObject, SceneZone};
pub use style::{
    BOX_THICKNESS_RANGE, DEFAULT_BOX_THICKNESS, DEFAULT_FONT_SIZE, DEFAULT_ZONE_FILL_OPACITY,
    DrawStyle, FONT_SIZE_RANGE,
};
pub use text::{MAX_TEXT_PX, MIN_TEXT_PX, TextSize, font_data};
