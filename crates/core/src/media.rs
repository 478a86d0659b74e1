//! Pictures attached to events. An event says which pictures it has and where they can be
//! fetched (`url`); the bytes live in the media store (see the `storage` crate), never in the
//! event itself, its database row or its notifications.

use serde::{Deserialize, Serialize};

/// Which picture of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PictureKind {
    /// The object's box plus a margin.
    Crop,
    /// The whole frame.
    Snapshot,
}

impl PictureKind {
    pub const ALL: [PictureKind; 2] = [PictureKind::Crop, PictureKind::Snapshot];

    pub fn as_str(self) -> &'static str {
        match self {
            PictureKind::Crop => "crop",
            PictureKind::Snapshot => "snapshot",
        }
    }

    pub fn parse(s: &str) -> Option<PictureKind> {
        PictureKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for PictureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// Where to fetch it (the API's `/v1/events/{id}/{kind}.jpg`).
    pub url: String,
    /// The object key in the media store.
    pub key: String,
    pub width: u32,
    pub height: u32,
}

/// The pictures of an event (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMedia {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<MediaRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<MediaRef>,
}

impl EventMedia {
    pub fn get(&self, kind: PictureKind) -> Option<&MediaRef> {
        match kind {
            PictureKind::Crop => self.crop.as_ref(),
            PictureKind::Snapshot => self.snapshot.as_ref(),
        }
    }

    pub fn set(&mut self, kind: PictureKind, r: Option<MediaRef>) {
        match kind {
            PictureKind::Crop => self.crop = r,
            PictureKind::Snapshot => self.snapshot = r,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.crop.is_none() && self.snapshot.is_none()
    }
}
