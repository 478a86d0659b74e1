//! What the models see and what the tracker keeps.

use crate::geometry::BBox;
use crate::ids::TrackId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Index of a class in a model's label list.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct ClassId(pub u32);

/// A model's class names, shared cheaply between stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Arc<[String]>);

impl Labels {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Labels(names.into_iter().map(Into::into).collect::<Vec<_>>().into())
    }
    /// The name of `id`, or `"class_<n>"` when the model has no such class.
    pub fn name(&self, id: ClassId) -> std::borrow::Cow<'_, str> {
        match self.0.get(id.0 as usize) {
            Some(n) => std::borrow::Cow::Borrowed(n.as_str()),
            None => std::borrow::Cow::Owned(format!("class_{}", id.0)),
        }
    }
    pub fn id_of(&self, name: &str) -> Option<ClassId> {
        self.0
            .iter()
            .position(|n| n == name)
            .map(|i| ClassId(i as u32))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// One object found by a detector in one frame, in source-frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class_id: ClassId,
}

/// An object followed across frames by the tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub id: TrackId,
    pub class_id: ClassId,
    /// Filtered box (Kalman estimate) in source-frame pixels.
    pub bbox: BBox,
    /// Score of the last detection matched to this track.
    pub score: f32,
    /// Number of detections matched so far.
    pub hits: u32,
    /// Consecutive inference frames without a matching detection.
    pub misses: u32,
    /// True when a detection was matched on the current frame (false on predicted frames).
    pub matched: bool,
}
