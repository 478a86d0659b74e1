//! The UI's files, embedded in the binary at build time (`include_str!`), so the dashboard
//! works offline and ships as one file. Served with a content hash as ETag and
//! `no-cache` (revalidated, never stale after an upgrade). For work on the UI,
//! `SIGHTLINE_WEB_ASSETS=crates/web/assets` serves the files from disk instead, re-read on
//! every request.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
    Asset {
        name: "favicon.svg",
        mime: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

const INDEX: &str = include_str!("../assets/index.html");

fn etag(body: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// The file from `SIGHTLINE_WEB_ASSETS`, when set (development).
fn from_disk(name: &str) -> Option<String> {
    let dir = std::env::var_os("SIGHTLINE_WEB_ASSETS")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}

fn body_of(name: &str, embedded: &'static str) -> Cow<'static, str> {
    from_disk(name).map_or(Cow::Borrowed(embedded), Cow::Owned)
}

fn serve(headers: &HeaderMap, mime: &'static str, body: Cow<'static, str>) -> Response {
    let tag = etag(&body);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag)
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    // The page loads only its own files; no inline script, no other origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
             connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The single page (every view is a `#/…` route of it).
pub async fn index(headers: HeaderMap) -> Response {
    serve(
        &headers,
        "text/html; charset=utf-8",
        body_of("index.html", INDEX),
    )
}

/// `GET /ui/assets/{file}`.
pub async fn asset(headers: HeaderMap, Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(&headers, a.mime, body_of(a.name, a.body)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
