//! Sightline's HTTP API (axum): `pub fn router(state) -> Router`, served by `sightline serve`.
//!
//! - [`state`]: [`ApiState`] (store, engine view, model cache) and [`ApiOptions`] (what the
//!   binary decides: auth mode, guards, public RTSP base, readiness extras, metrics render).
//! - [`routes`]: probes, runs (with snapshot and MJPEG preview), configs, events (+ SSE),
//!   models, OpenAPI document and docs page; [`infer`]: `POST /v1/infer` and its guards.
//! - [`auth`]: bearer tokens (stored hashed) and roles, decided in one table by method/path.
//! - [`error`]: the one error → response mapping (`{"error": {"code", "message"}}`).
//! - [`telemetry`]: request latency and rejection metrics.
//! - `fuzzing` (hidden): never-panicking entry points over the request-body and manifest
//!   decoders, for the `fuzz/` targets and `tests/fuzz_smoke.rs`.
//!
//! The binary serves it with `into_make_service_with_connect_info::<SocketAddr>()` (per-IP
//! rate limits need the peer address) and `with_graceful_shutdown`.

pub mod auth;
pub mod error;
pub mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod infer;
pub mod jpeg;
pub mod routes;
pub mod sources;
pub mod state;
pub mod telemetry;

pub use auth::{CSRF_COOKIE, CSRF_HEADER, Caller, SESSION_COOKIE, cookie, hash_token};
pub use error::{ApiError, ApiResult};
pub use routes::docs::openapi_json;
pub use state::{
    ApiMedia, ApiOptions, ApiState, AuthMode, JobUploads, MetricsRender, ReadinessFn, SystemInfoFn,
};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{get, post};
use routes::{
    configs, docs, events, jobs, media, models, plates, probes, recordings, runs, system,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The whole API.
pub fn router(state: ApiState) -> Router {
    router_with(state, Router::new())
}

/// The API plus `extra` routes (the dashboard) behind the same authentication, role table,
/// latency metrics and CORS.
pub fn router_with(state: ApiState, extra: Router<ApiState>) -> Router {
    let cors = cors_layer(&state.inner.opts.cors_origins);
    let api = Router::new()
        .merge(extra)
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/version", get(probes::version))
        .route("/metrics", get(probes::metrics))
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::docs_page))
        .route("/v1/runs", get(runs::list_runs).post(runs::create_run))
        .route("/v1/runs/{id}", get(runs::get_run).delete(runs::delete_run))
        .route("/v1/runs/{id}/stop", post(runs::stop_run))
        .route("/v1/runs/{id}/start", post(runs::start_run))
        .route("/v1/runs/{id}/config", post(runs::apply_config))
        .route("/v1/runs/{id}/snapshot.jpg", get(media::snapshot))
        .route("/v1/runs/{id}/preview", get(media::preview))
        .route("/v1/runs/{id}/recordings", get(recordings::list_recordings))
        .route("/v1/runs/{id}/clip.mp4", get(recordings::clip))
        .route(
            "/v1/recordings/{id}/segment.mp4",
            get(recordings::download_segment),
        )
        .route(
            "/v1/jobs",
            get(jobs::list_jobs)
                .post(jobs::create_job)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/jobs/{id}", get(jobs::get_job).delete(jobs::delete_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/summary", get(jobs::job_summary))
        .route("/v1/jobs/{id}/video.mp4", get(jobs::job_video))
        .route("/v1/system", get(system::system))
        .route("/v1/configs", get(configs::list_configs))
        .route(
            "/v1/configs/{name}",
            get(configs::get_config)
                .post(configs::put_config)
                .put(configs::put_config),
        )
        .route("/v1/configs/{name}/versions", get(configs::list_versions))
        .route("/v1/schema/pipeline-config", get(configs::schema))
        .route("/v1/events", get(events::list_events))
        .route("/v1/events/stream", get(events::stream_events))
        .route("/v1/plates", get(plates::search_plates))
        .route("/v1/events/{id}", get(recordings::get_event))
        .route("/v1/events/{id}/crop.jpg", get(recordings::crop))
        .route(
            "/v1/events/{id}/snapshot.jpg",
            get(recordings::event_snapshot),
        )
        .route(
            "/v1/infer",
            post(infer::infer).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/models",
            get(models::list_models)
                .post(models::upload_model)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/models/{name}",
            get(models::get_model).delete(models::delete_model),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(middleware::from_fn(telemetry::track_latency))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state);
    match cors {
        Some(c) => api.layer(c),
        None => api,
    }
}

/// Spec-compliant CORS: `*` allows any origin without credentials; a list allows exactly
/// those origins. Bearer tokens travel in a header, so credentials mode is never needed.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| match HeaderValue::from_str(o) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::warn!(origin = %o, "ignoring invalid CORS origin");
                    None
                }
            })
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER]),
    )
}
