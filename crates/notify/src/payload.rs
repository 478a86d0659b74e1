//! The JSON document a subscriber or webhook receives for an event. Its schema is stable and
//! versioned (`"v": 1`): every field is always present (`null` when it does not apply), so
//! consumers can rely on the shape. `id` is the event id, the idempotency key: delivery is
//! at least once, and a receiver that remembers the ids it has processed sees each event
//! exactly once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sightline_core::event::Level;
use sightline_core::{Direction, Event, EventId, EventKind};

/// Schema version of [`Notification`].
pub const SCHEMA_VERSION: u32 = 1;

/// A box in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoxPayload {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// One event as delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Notification {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Event id (UUIDv7): the idempotency key.
    pub id: EventId,
    /// Run that produced the event.
    pub run_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Rule that fired.
    pub rule: String,
    /// Object class.
    pub class: Option<String>,
    /// Track id (unique within the run).
    pub track_id: Option<u64>,
    pub zone: Option<String>,
    pub line: Option<String>,
    /// Line crossings: `in` or `out`.
    pub direction: Option<Direction>,
    /// Stream presentation time, nanoseconds.
    pub pts_ns: i64,
    /// Wall-clock time the event was produced, RFC 3339 with milliseconds.
    pub time: String,
    /// The same, milliseconds since the Unix epoch.
    pub wall_ms: i64,
    /// Detection confidence (0..1).
    pub confidence: Option<f32>,
    /// Bounding box in frame pixels.
    #[serde(rename = "box")]
    pub bbox: Option<BoxPayload>,
    /// Occupancy (count rules) or running total in the direction (line rules).
    pub count: Option<u32>,
    /// Count rules: above or below the threshold.
    pub level: Option<Level>,
    /// Dwell rules: seconds in the zone.
    pub dwell_s: Option<f64>,
    /// URL of the object's JPEG crop in the media store (fetch it from the API).
    pub crop_url: Option<String>,
    /// URL of the full-frame JPEG snapshot.
    pub snapshot_url: Option<String>,
}

impl Notification {
    pub fn from_event(ev: &Event) -> Notification {
        let b = &ev.body;
        let time = DateTime::<Utc>::from_timestamp_millis(ev.wall_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        Notification {
            v: SCHEMA_VERSION,
            id: ev.id,
            run_id: ev.run_id.as_str().to_owned(),
            kind: b.kind,
            rule: b.rule.clone(),
            class: b.class.clone(),
            track_id: b.track_id.map(|t| t.0),
            zone: b.zone.clone(),
            line: b.line.clone(),
            direction: b.direction,
            pts_ns: b.pts.nanos(),
            time,
            wall_ms: ev.wall_ms,
            confidence: b.confidence.filter(|c| c.is_finite()),
            bbox: b.bbox.map(|x| BoxPayload {
                x1: x.x1,
                y1: x.y1,
                x2: x.x2,
                y2: x.y2,
            }),
            count: b.count,
            level: b.level,
            dwell_s: b.dwell_s.filter(|d| d.is_finite()),
            crop_url: ev
                .media
                .as_ref()
                .and_then(|m| m.crop.as_ref())
                .map(|r| r.url.clone()),
            snapshot_url: ev
                .media
                .as_ref()
                .and_then(|m| m.snapshot.as_ref())
                .map(|r| r.url.clone()),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain fields into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The JSON Schema of the payload, for docs and receivers.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Notification)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{BBox, Pts, RuleEvent, RunId, TrackId};

    #[test]
    fn stable_shape_with_nulls() {
        let mut body = RuleEvent::new(EventKind::LineCross, "door", Pts::from_millis(1500));
        body.track_id = Some(TrackId(7));
        body.class = Some("person".into());
        body.line = Some("door".into());
        body.direction = Some(Direction::In);
        body.confidence = Some(0.5);
        body.bbox = Some(BBox::new(1.0, 2.0, 3.0, 4.0));
        let ev = Event {
            id: EventId::generate(),
            run_id: RunId::parse("cam1").unwrap(),
            wall_ms: 1_735_689_600_123,
            body,
            media: Some(sightline_core::EventMedia {
                crop: Some(sightline_core::MediaRef {
                    url: "http://h/v1/events/x/crop.jpg".into(),
                    key: "events/cam1/x-crop.jpg".into(),
                    width: 64,
                    height: 96,
                }),
                snapshot: None,
            }),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&Notification::from_event(&ev).to_json()).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["id"], ev.id.to_string());
        assert_eq!(v["type"], "line_cross");
        assert_eq!(v["direction"], "in");
        assert_eq!(v["track_id"], 7);
        assert_eq!(v["pts_ns"], 1_500_000_000i64);
        assert_eq!(v["time"], "2025-01-01T00:00:00.123Z");
        assert_eq!(v["box"]["x2"], 3.0);
        assert!(
            v["zone"].is_null() && v["count"].is_null(),
            "present as null"
        );
        assert_eq!(v["crop_url"], "http://h/v1/events/x/crop.jpg");
        assert!(v["snapshot_url"].is_null(), "no snapshot: null");
        assert_eq!(v.as_object().unwrap().len(), 20);
    }
}
