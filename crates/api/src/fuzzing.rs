//! Entry points for the fuzz targets in `fuzz/` and for `tests/fuzz_smoke.rs`: thin wrappers
//! over the code the server runs on untrusted request bodies. They must not panic on any
//! input; a panic (or a hang, or an allocation out of proportion to the input) is a bug.
//!
//! - [`infer_body`]: a `POST /v1/infer` body, dispatched by its content type (JSON with a
//!   base64 image, multipart form, raw bytes) exactly as the handler does, then the image
//!   decode with the header pixel check.
//! - [`model_manifest`]: the `manifest` field of `POST /v1/models` (TOML or JSON) parsed and
//!   validated as the upload handler does, then the uses a stored manifest gets (labels,
//!   JSON for the index, TOML).

use crate::error::ApiError;
use crate::infer;
use crate::routes::models;
use axum::body::Bytes;
use axum::http::{Method, Request, header};
use futures_util::FutureExt as _;

/// Pixel limit of [`infer_body`]: the check is the server's own code; a limit below the
/// server default (16 M) keeps each fuzz iteration's decode small.
pub const MAX_PIXELS: u64 = 1 << 22;

/// How an input ended: the decoded image size, or the API error code it would be answered
/// with (`invalid_image`, `too_many_pixels`, `invalid_request`, `unsupported_media_type`,
/// `invalid_manifest`, ...). `bad_header` marks a content type no HTTP server would pass on.
pub type Outcome<T> = Result<T, &'static str>;

fn code(e: ApiError) -> &'static str {
    e.code
}

/// One `/v1/infer` body. Input format: the `Content-Type` header value, a `\n`, then the body
/// bytes (no `\n` at all: the whole input is the body of an `application/json` request).
/// Returns the decoded image's width and height.
pub fn infer_body(data: &[u8]) -> Outcome<(u32, u32)> {
    let (ctype, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"application/json"[..], data),
    };
    let ctype = ctype.strip_suffix(b"\r").unwrap_or(ctype);
    let Ok(req) = Request::builder()
        .method(Method::POST)
        .uri("/v1/infer")
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CONTENT_LENGTH, body.len())
        .body(())
    else {
        return Err("bad_header");
    };
    let (parts, ()) = req.into_parts();
    // Everything is in memory, so the future completes on its first poll.
    let parsed = match infer::parse_body(parts, Bytes::copy_from_slice(body)).now_or_never() {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(code(e)),
        None => return Err("pending"),
    };
    let frame = infer::decode(&parsed.image, MAX_PIXELS).map_err(code)?;
    Ok((frame.width, frame.height))
}

/// One `manifest` form field of a model upload (bytes as sent; invalid UTF-8 is replaced, as
/// the multipart reader does). Returns the manifest's name.
pub fn model_manifest(data: &[u8]) -> Outcome<String> {
    let text = String::from_utf8_lossy(data);
    if text.len() > models::MAX_MANIFEST_BYTES {
        return Err("invalid_upload");
    }
    let m = models::parse_manifest(&text).map_err(code)?;
    // What a registered manifest goes through next: class names, the store's JSON copy
    // (also the API's answer) and the TOML written next to the model.
    if let Ok(d) = m.detector()
        && d.labels().len() != d.num_classes()
    {
        return Err("labels_mismatch");
    }
    serde_json::to_value(&m).map_err(|_| "json_serialize")?;
    m.to_toml_string().map_err(|_| "toml_serialize")?;
    Ok(m.name().to_string())
}
