//! Identifiers. Run ids double as RTSP mount names (`/runs/{id}`), so they are restricted to
//! URL-safe characters.

use serde::{Deserialize, Serialize};

/// Identifier of a run: 1–64 characters of `[A-Za-z0-9_-]`. Generated ids are UUIDv7 strings
/// (time-ordered, so they sort by creation time).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        RunId(uuid::Uuid::now_v7().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RunId(s.to_owned()))
        } else {
            Err(format!(
                "invalid run id {s:?}: use 1-64 characters of letters, digits, '-' and '_'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunId::parse(s)
    }
}

/// Identifier of a track, unique within a run and never reused.
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
pub struct TrackId(pub u64);

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifier of an event (UUIDv7): the idempotency key for every notification.
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
pub struct EventId(pub uuid::Uuid);

impl EventId {
    pub fn generate() -> Self {
        EventId(uuid::Uuid::now_v7())
    }

    /// The id of an event of a *replayable* run (a file played once): a function of the run
    /// (`run`, and `base_ms`, its creation time) and of what the rules decided (stream time,
    /// type, rule, track, class, zone, line, direction, level, count), so replaying the
    /// file after a takeover or a crash gives the same ids and the store keeps each event
    /// once. Confidence, box and dwell time are left out: they are floats that may differ
    /// in the last bits when frames are batched differently.
    ///
    /// The layout is a UUIDv7 whose timestamp is `base_ms` + the event's PTS in
    /// milliseconds (ids stay ordered by stream time within the run, near its creation
    /// time across runs) and whose 74 other bits come from a SHA-256 of the fields above.
    pub fn derived(run: &RunId, base_ms: i64, e: &crate::event::RuleEvent) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(run.as_str().as_bytes());
        field(&base_ms.to_le_bytes());
        field(&e.pts.nanos().to_le_bytes());
        field(e.kind.as_str().as_bytes());
        field(e.rule.as_bytes());
        field(&e.track_id.map_or(u64::MAX, |t| t.0).to_le_bytes());
        field(e.class.as_deref().unwrap_or("\0").as_bytes());
        field(e.zone.as_deref().unwrap_or("\0").as_bytes());
        field(e.line.as_deref().unwrap_or("\0").as_bytes());
        field(e.direction.map_or("\0", |d| d.as_str()).as_bytes());
        field(
            match e.level {
                Some(crate::event::Level::Above) => "above",
                Some(crate::event::Level::Below) => "below",
                None => "\0",
            }
            .as_bytes(),
        );
        field(&e.count.map_or(u64::MAX, u64::from).to_le_bytes());
        let digest = h.finalize();
        let mut rand = [0u8; 10];
        rand.copy_from_slice(&digest[..10]);
        let ms = base_ms.max(0).saturating_add(e.pts.millis().max(0)) as u64;
        EventId(uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid())
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_event_ids_are_stable_distinct_and_ordered_by_stream_time() {
        use crate::event::{EventKind, RuleEvent};
        use crate::time::Pts;
        let run = RunId::parse("cam-1").unwrap();
        let mut a = RuleEvent::new(EventKind::LineCross, "crossing", Pts::from_millis(1500));
        a.track_id = Some(TrackId(7));
        a.confidence = Some(0.61);
        let base = 1_700_000_000_000;
        let id = EventId::derived(&run, base, &a);
        // Same decision, another confidence (batched differently on a replay): same id.
        let mut again = a.clone();
        again.confidence = Some(0.6100001);
        assert_eq!(EventId::derived(&run, base, &again), id);
        assert_eq!(id.0.get_version_num(), 7);
        let (secs, nanos) = id.0.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            base as u64 + 1500
        );
        // Any decided field, the run or its creation time changes it.
        let mut other = a.clone();
        other.track_id = Some(TrackId(8));
        assert_ne!(EventId::derived(&run, base, &other), id);
        let mut other = a.clone();
        other.rule = "crossing2".into();
        assert_ne!(EventId::derived(&run, base, &other), id);
        assert_ne!(
            EventId::derived(&RunId::parse("cam-2").unwrap(), base, &a),
            id
        );
        assert_ne!(EventId::derived(&run, base + 1, &a), id);
        // Later in the stream sorts later.
        let mut later = a.clone();
        later.pts = Pts::from_millis(1600);
        assert!(EventId::derived(&run, base, &later) > id);
    }

    #[test]
    fn run_ids_are_url_safe() {
        assert!(RunId::parse("demo").is_ok());
        assert!(RunId::parse("a/b").is_err());
        assert!(RunId::parse("").is_err());
        assert!(RunId::parse(&"x".repeat(65)).is_err());
        let g = RunId::generate();
        assert!(RunId::parse(g.as_str()).is_ok());
    }

    #[test]
    fn generated_run_ids_sort_by_time() {
        let a = RunId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RunId::generate();
        assert!(a < b);
    }
}
