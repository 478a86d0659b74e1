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
