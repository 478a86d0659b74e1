//! The key scheme of the media store (ADR 0006). Keys are paths relative to the store's
//! root, partitioned by run and UTC hour so that a directory listing or an S3 prefix of one
//! camera's hour stays small, and so an operator can find things by hand:
//!
//! ```text
//! events/{run}/{YYYY-MM-DD}/{HH}/{event_id}-{crop|snapshot}.jpg
//! recordings/{run}/{YYYY-MM-DD}/{HH}/{YYYYMMDDTHHMMSSZ}-{segment_id}.mp4
//! ```
//! Run ids are `[A-Za-z0-9_-]{1,64}` and the other parts are generated, so a key never needs
//! escaping. Pure functions: no IO.

use chrono::{DateTime, Utc};
use sightline_core::{EventId, PictureKind, RunId};
use uuid::Uuid;

fn hour_dir(wall_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(wall_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d/%H")
        .to_string()
}

/// Key of an event's picture.
pub fn picture_key(run: &RunId, event: EventId, wall_ms: i64, kind: PictureKind) -> String {
    format!(
        "events/{}/{}/{}-{}.jpg",
        run.as_str(),
        hour_dir(wall_ms),
        event,
        kind.as_str()
    )
}

/// Key of a recording segment that starts at `wall_ms`.
pub fn segment_key(run: &RunId, wall_ms: i64, id: Uuid) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(wall_ms).unwrap_or_default();
    format!(
        "recordings/{}/{}/{}-{}.mp4",
        run.as_str(),
        hour_dir(wall_ms),
        t.format("%Y%m%dT%H%M%SZ"),
        id.simple()
    )
}

/// The segment id in a segment key (its file name's last part).
pub fn segment_id(key: &str) -> Option<Uuid> {
    let stem = key.rsplit('/').next()?.strip_suffix(".mp4")?;
    Uuid::try_parse(stem.rsplit('-').next()?).ok()
}

/// URL of an event's picture on the API whose base is `public_base` (`http://host:port`).
pub fn picture_url(public_base: &str, event: EventId, kind: PictureKind) -> String {
    format!(
        "{}/v1/events/{}/{}.jpg",
        public_base.trim_end_matches('/'),
        event,
        kind.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_partitioned_by_run_and_hour() {
        let run = RunId::parse("cam-1").unwrap();
        let ev = EventId::generate();
        // 2025-12-01T09:30:00Z
        let t = 1_764_581_400_000;
        assert_eq!(
            picture_key(&run, ev, t, PictureKind::Crop),
            format!("events/cam-1/2025-12-01/09/{ev}-crop.jpg")
        );
        let id = Uuid::now_v7();
        let k = segment_key(&run, t, id);
        assert_eq!(
            k,
            format!(
                "recordings/cam-1/2025-12-01/09/20251201T093000Z-{}.mp4",
                id.simple()
            )
        );
        assert_eq!(segment_id(&k), Some(id));
        assert_eq!(segment_id("recordings/x/y.mp4"), None);
        assert_eq!(
            picture_url("http://h:8080/", ev, PictureKind::Snapshot),
            format!("http://h:8080/v1/events/{ev}/snapshot.jpg")
        );
    }
}
