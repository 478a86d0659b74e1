//! Sightline's web dashboard, served by `sightline serve` (and `demo`) at `/` on the API
//! address: an embedded single-page UI (plain HTML, CSS and JavaScript, no build step, no
//! CDN; ADR 0007) that talks to the same JSON API as every other client, a login that turns
//! an API token into an `HttpOnly`, `SameSite=Strict` session cookie (with a CSRF token for
//! changes), and the live view: the run's already-encoded H.264 as fragmented MP4 over a
//! WebSocket into the browser's Media Source Extensions.
//!
//! [`routes`] are merged into the API router (`sightline_api::router_with`), so they share
//! its authentication, role table and metrics, and reach the engine and the store only
//! through the API's state.

pub mod assets;
pub mod fmp4;
pub mod live;
pub mod session;

use axum::Router;
use axum::routing::{get, post};
use sightline_api::ApiState;

/// The dashboard's routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(assets::index))
        .route("/ui/assets/{file}", get(assets::asset))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/whoami", get(session::whoami))
        .route("/v1/runs/{id}/live", get(live::live))
}
