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

/// What secondary stages have learnt about tracks (`plate` → the voted plate text), by
/// attribute name and track. The rule engine reads it for rules with an `attribute`
/// condition and copies a track's attributes onto the events it emits for that track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackAttributes {
    by_name: std::collections::BTreeMap<String, std::collections::HashMap<TrackId, String>>,
}

impl TrackAttributes {
    /// No attribute at all.
    pub fn is_empty(&self) -> bool {
        self.by_name.values().all(|m| m.is_empty())
    }

    /// Forgets every value (keeps the allocations for the next frame).
    pub fn clear(&mut self) {
        for m in self.by_name.values_mut() {
            m.clear();
        }
    }

    /// Sets attribute `name` of `track` to `value`.
    pub fn set(&mut self, name: &str, track: TrackId, value: String) {
        match self.by_name.get_mut(name) {
            Some(m) => {
                m.insert(track, value);
            }
            None => {
                self.by_name
                    .insert(name.to_owned(), std::iter::once((track, value)).collect());
            }
        }
    }

    /// Attribute `name` of `track`, if it has one.
    pub fn get(&self, name: &str, track: TrackId) -> Option<&str> {
        self.by_name.get(name)?.get(&track).map(String::as_str)
    }

    /// Every attribute of `track`, by name (what its events carry).
    pub fn of(&self, track: TrackId) -> std::collections::BTreeMap<String, String> {
        self.by_name
            .iter()
            .filter_map(|(k, m)| m.get(&track).map(|v| (k.clone(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod attribute_tests {
    use super::*;

    #[test]
    fn set_get_of_clear() {
        let mut a = TrackAttributes::default();
        assert!(a.is_empty());
        a.set("plate", TrackId(3), "AB12CD".into());
        a.set("colour", TrackId(3), "red".into());
        a.set("plate", TrackId(4), "XY99".into());
        a.set("plate", TrackId(3), "AB12CE".into());
        assert_eq!(a.get("plate", TrackId(3)), Some("AB12CE"));
        assert_eq!(a.get("plate", TrackId(5)), None);
        assert_eq!(a.get("make", TrackId(3)), None);
        let of3 = a.of(TrackId(3));
        assert_eq!(of3.len(), 2);
        assert_eq!(of3["colour"], "red");
        assert!(a.of(TrackId(9)).is_empty());
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.get("plate", TrackId(4)), None);
    }
}
