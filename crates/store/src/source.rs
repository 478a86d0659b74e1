//! Source URIs keep their credentials in the database (the engine needs them to connect) but
//! never show them: `Debug`, `Display` and `Serialize` print the masked form, and only an
//! explicit [`SourceUri::expose`] yields the clear text.

use crate::error::StoreError;
use serde::{Serialize, Serializer};

/// Query parameters whose values are treated as secrets.
const SECRET_PARAMS: [&str; 9] = [
    "password",
    "passwd",
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "signature",
];

/// A run's source URI (`rtsp://`, `file://`, `http(s)://`, `test://`).
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUri(String);

impl SourceUri {
    /// Accepts any `scheme://…` string without whitespace or control characters.
    pub fn new(uri: impl Into<String>) -> Result<Self, StoreError> {
        let uri = uri.into();
        let scheme_ok = uri
            .split_once("://")
            .map(|(s, _)| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            })
            .unwrap_or(false);
        if !scheme_ok {
            return Err(StoreError::invalid(
                "source",
                "expected a URI of the form scheme://…",
            ));
        }
        if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(StoreError::invalid(
                "source",
                "must not contain whitespace or control characters",
            ));
        }
        Ok(SourceUri(uri))
    }

    /// Wraps a stored value without validation (what the database holds is what was
    /// validated on the way in).
    pub(crate) fn from_stored(uri: String) -> Self {
        SourceUri(uri)
    }

    /// The URI in clear, credentials included. Only for opening the source.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (`rtsp`, `file`, …), lower case.
    pub fn scheme(&self) -> String {
        self.0
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The URI with user information replaced by `***` and secret-looking query values
    /// masked: `rtsp://***@cam/stream`.
    pub fn masked(&self) -> String {
        mask_uri(&self.0)
    }
}

fn mask_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return "***".to_owned();
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                        format!("{k}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            let mut t = format!("{path}?{}", masked.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl std::fmt::Debug for SourceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceUri({:?})", self.masked())
    }
}

impl std::fmt::Display for SourceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SourceUri {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        let s = SourceUri::new("rtsp://admin:hunter2@10.0.0.5:554/stream1").unwrap();
        assert_eq!(s.masked(), "rtsp://***@10.0.0.5:554/stream1");
        assert_eq!(format!("{s}"), "rtsp://***@10.0.0.5:554/stream1");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
        assert_eq!(s.expose(), "rtsp://admin:hunter2@10.0.0.5:554/stream1");
        assert_eq!(s.scheme(), "rtsp");
    }

    #[test]
    fn secret_query_values_masked() {
        let s = SourceUri::new("https://cdn/x.m3u8?token=abc&quality=hd#t=1").unwrap();
        assert_eq!(s.masked(), "https://cdn/x.m3u8?token=***&quality=hd#t=1");
        let f = SourceUri::new("file:///data/vtest.avi").unwrap();
        assert_eq!(f.masked(), "file:///data/vtest.avi");
    }

    #[test]
    fn rejects_non_uris() {
        assert!(SourceUri::new("vtest.avi").is_err());
        assert!(SourceUri::new("://x").is_err());
        assert!(SourceUri::new("rtsp://cam/a b").is_err());
    }
}
