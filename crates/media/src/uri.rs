//! Source URIs: parsing into what the pipeline builder needs, and credential masking.
//!
//! A source is named by a URI that may carry credentials (`rtsp://user:pass@cam/stream`).
//! Credentials must never reach a log line, an error message or the API, so every URI that
//! leaves this crate goes through [`mask_uri`], and the credentials are split off here and
//! handed to GStreamer as element properties rather than inside the location it logs.

use crate::error::{MediaError, MediaErrorKind};
use std::path::PathBuf;

/// The local path a file source URI (`file:///a%20b.mp4`, a bare path) names; `None` for
/// any other source.
pub fn file_path(uri: &str) -> Option<std::path::PathBuf> {
    match SourceSpec::parse(uri) {
        Ok(SourceSpec::File(p)) => Some(p),
        _ => None,
    }
}

/// Replaces the user-info part of a URI (`user:pass@`) with `***@`. Other text is returned
/// unchanged, so plain paths and URIs without credentials read as given.
///
/// `rtsp://user:pass@h/x` → `rtsp://***@h/x`.
pub fn mask_uri(uri: &str) -> String {
    match userinfo_range(uri) {
        Some((start, end)) => format!("{}***{}", &uri[..start], &uri[end..]),
        None => uri.to_string(),
    }
}

/// Byte range of the user-info (without the `@`) in `uri`, if any.
fn userinfo_range(uri: &str) -> Option<(usize, usize)> {
    let start = uri.find("://")? + 3;
    let rest = &uri[start..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..auth_len].rfind('@')?;
    Some((start, start + at))
}

/// Removes every trace of `uri`'s credentials from `text` (the raw user-info, the password
/// alone, percent-decoded forms, the unmasked URI).
pub(crate) fn scrub(uri: &str, text: &str) -> String {
    let Some((s, e)) = userinfo_range(uri) else {
        return text.to_string();
    };
    let info = &uri[s..e];
    let mut out = text.replace(uri, &mask_uri(uri)).replace(info, "***");
    let mut secrets: Vec<String> = Vec::new();
    if let Some((user, pass)) = info.split_once(':') {
        secrets.push(pass.to_string());
        secrets.push(percent_decode(pass));
        secrets.push(format!("{}:{}", percent_decode(user), percent_decode(pass)));
    }
    secrets.push(percent_decode(info));
    for secret in secrets.into_iter().filter(|s| s.len() >= 3) {
        out = out.replace(&secret, "***");
    }
    out
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// A synthetic source description (`test://PATTERN?width=W&height=H&fps=F&frames=N`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TestSpec {
    /// A `videotestsrc` pattern nick (`smpte`, `ball`, `snow`, …).
    pub pattern: String,
    pub width: u32,
    pub height: u32,
    /// Frame rate as a fraction (numerator, denominator).
    pub fps: (i32, i32),
    /// Stop (EOS) after this many frames; endless when `None`.
    pub frames: Option<u64>,
}

/// What a URI asks for, with credentials separated from the location.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SourceSpec {
    File(PathBuf),
    Rtsp {
        /// The URI without user-info.
        location: String,
        user: Option<String>,
        password: Option<String>,
    },
    Http {
        location: String,
        user: Option<String>,
        password: Option<String>,
    },
    Test(TestSpec),
}

impl SourceSpec {
    /// True for sources that produce frames in real time by themselves.
    pub fn is_network(&self) -> bool {
        matches!(self, SourceSpec::Rtsp { .. } | SourceSpec::Http { .. })
    }

    /// The transport an `rtspt://` (TCP) or `rtspu://` (UDP) URI forces, if any.
    pub fn forced_rtsp_transport(&self) -> Option<crate::RtspTransport> {
        match self {
            SourceSpec::Rtsp { location, .. } if location.starts_with("rtspt:") => {
                Some(crate::RtspTransport::Tcp)
            }
            SourceSpec::Rtsp { location, .. } if location.starts_with("rtspu:") => {
                Some(crate::RtspTransport::Udp)
            }
            _ => None,
        }
    }

    pub fn parse(uri: &str) -> Result<SourceSpec, MediaError> {
        let uri = uri.trim();
        let invalid = |msg: &str| MediaError::new(MediaErrorKind::InvalidUri, uri, msg);
        if uri.is_empty() {
            return Err(invalid("empty source URI"));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Ok(SourceSpec::File(PathBuf::from(uri)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if rest.starts_with('/') {
                    let url = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
                    url.to_file_path()
                        .map(SourceSpec::File)
                        .map_err(|()| invalid("not a local file path"))
                } else {
                    // `file://relative/path`: not a valid URL, but unambiguous enough.
                    Ok(SourceSpec::File(PathBuf::from(percent_decode(rest))))
                }
            }
            s @ ("rtsp" | "rtsps" | "rtspt" | "rtspu" | "http" | "https") => {
                let mut url = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("missing host"));
                }
                let user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
                let password = url.password().map(percent_decode);
                let _ = url.set_username("");
                let _ = url.set_password(None);
                let location = url.to_string();
                Ok(if s.starts_with("rtsp") {
                    SourceSpec::Rtsp {
                        location,
                        user,
                        password,
                    }
                } else {
                    SourceSpec::Http {
                        location,
                        user,
                        password,
                    }
                })
            }
            "test" => Self::parse_test(uri, rest).map(SourceSpec::Test),
            other => Err(MediaError::new(
                MediaErrorKind::UnsupportedScheme,
                uri,
                format!("unsupported scheme `{other}` (use file, rtsp, http, https or test)"),
            )),
        }
    }

    fn parse_test(uri: &str, rest: &str) -> Result<TestSpec, MediaError> {
        let invalid = |msg: String| MediaError::new(MediaErrorKind::InvalidUri, uri, msg);
        let (pattern, query) = rest.split_once('?').unwrap_or((rest, ""));
        let pattern = pattern.trim_end_matches('/');
        let mut spec = TestSpec {
            pattern: if pattern.is_empty() {
                "smpte".into()
            } else {
                pattern.to_string()
            },
            width: 1280,
            height: 720,
            fps: (25, 1),
            frames: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let num = |v: &str| -> Result<u32, MediaError> {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=16384).contains(n))
                    .ok_or_else(|| invalid(format!("`{key}` must be an integer in 1..=16384")))
            };
            match key.as_ref() {
                "width" => spec.width = num(&value)?,
                "height" => spec.height = num(&value)?,
                "fps" => {
                    let f = value
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0)
                        .ok_or_else(|| invalid("`fps` must be a number in (0, 1000]".into()))?;
                    spec.fps = fps_fraction(f);
                }
                "frames" => {
                    spec.frames = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| invalid("`frames` must be an integer".into()))?,
                    )
                }
                other => return Err(invalid(format!("unknown parameter `{other}`"))),
            }
        }
        Ok(spec)
    }
}

/// A frame rate as a GStreamer fraction (exact for integers, 1/1000 precision otherwise).
pub(crate) fn fps_fraction(fps: f64) -> (i32, i32) {
    if (fps - fps.round()).abs() < 1e-9 {
        (fps.round() as i32, 1)
    } else {
        ((fps * 1000.0).round() as i32, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credentials() {
        assert_eq!(mask_uri("rtsp://user:pass@h/x"), "rtsp://***@h/x");
        assert_eq!(
            mask_uri("rtsp://user@h:554/x?a=b@c"),
            "rtsp://***@h:554/x?a=b@c"
        );
        assert_eq!(mask_uri("rtsp://h/x"), "rtsp://h/x");
        assert_eq!(mask_uri("/tmp/a@b.mp4"), "/tmp/a@b.mp4");
        assert_eq!(mask_uri("http://a:b@c@host/p"), "http://***@host/p");
    }

    #[test]
    fn scrubs_messages() {
        let uri = "rtsp://admin:p%40ss@cam/x";
        let msg = "could not open rtsp://admin:p%40ss@cam/x with p@ss or admin:p%40ss";
        let out = scrub(uri, msg);
        assert!(!out.contains("p@ss") && !out.contains("p%40ss"), "{out}");
        assert!(out.contains("rtsp://***@cam/x"), "{out}");
    }

    #[test]
    fn parses_schemes() {
        assert_eq!(
            SourceSpec::parse("samples/vtest.avi").unwrap(),
            SourceSpec::File("samples/vtest.avi".into())
        );
        assert_eq!(
            SourceSpec::parse("file:///tmp/a%20b.mp4").unwrap(),
            SourceSpec::File("/tmp/a b.mp4".into())
        );
        assert_eq!(
            SourceSpec::parse("file://samples/vtest.avi").unwrap(),
            SourceSpec::File("samples/vtest.avi".into())
        );
        match SourceSpec::parse("rtsp://bob:s%3Acret@10.0.0.1:8554/live").unwrap() {
            SourceSpec::Rtsp {
                location,
                user,
                password,
            } => {
                assert_eq!(location, "rtsp://10.0.0.1:8554/live");
                assert_eq!(user.as_deref(), Some("bob"));
                assert_eq!(password.as_deref(), Some("s:cret"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            SourceSpec::parse("https://example.com/a.m3u8").unwrap(),
            SourceSpec::Http { .. }
        ));
        let err = SourceSpec::parse("foo://x").unwrap_err();
        assert_eq!(err.kind, MediaErrorKind::UnsupportedScheme);
        assert_eq!(
            SourceSpec::parse("rtsp:///x").unwrap_err().kind,
            MediaErrorKind::InvalidUri
        );
    }

    #[test]
    fn parses_test_sources() {
        let SourceSpec::Test(t) =
            SourceSpec::parse("test://smpte?width=640&height=360&fps=29.97&frames=10").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            t,
            TestSpec {
                pattern: "smpte".into(),
                width: 640,
                height: 360,
                fps: (29970, 1000),
                frames: Some(10)
            }
        );
        let SourceSpec::Test(t) = SourceSpec::parse("test://ball").unwrap() else {
            panic!()
        };
        assert_eq!(
            (t.pattern.as_str(), t.width, t.fps),
            ("ball", 1280, (25, 1))
        );
        for bad in ["test://x?width=0", "test://x?fps=-1", "test://x?color=red"] {
            assert_eq!(
                SourceSpec::parse(bad).unwrap_err().kind,
                MediaErrorKind::InvalidUri,
                "{bad}"
            );
        }
    }
}
