//! API telemetry as typed events (STYLE pattern 8): request latency by route template and
//! status (`sightline_api_request_seconds`), and `/v1/infer` rejections by reason
//! (`sightline_api_rejections_total`). Routes are labelled by their template
//! (`/v1/runs/{id}`), never the raw path, so label cardinality stays bounded.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};
use std::time::Instant;

/// Why `/v1/infer` refused a request (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    QueueFull,
    RateLimited,
    BodyTooLarge,
    TooManyPixels,
    InvalidImage,
    SlotTimeout,
    OutOfMemory,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::QueueFull => "queue_full",
            Rejection::RateLimited => "rate_limited",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::TooManyPixels => "too_many_pixels",
            Rejection::InvalidImage => "invalid_image",
            Rejection::SlotTimeout => "slot_timeout",
            Rejection::OutOfMemory => "out_of_memory",
        }
    }

    pub fn emit(self) {
        counter!("sightline_api_rejections_total", "reason" => self.as_str()).increment(1);
        tracing::debug!(reason = self.as_str(), "infer request rejected");
    }
}

/// Records each request's latency under its route template and status.
pub(crate) async fn track_latency(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    histogram!(
        "sightline_api_request_seconds",
        "route" => route,
        "status" => resp.status().as_u16().to_string()
    )
    .record(t0.elapsed().as_secs_f64());
    resp
}
