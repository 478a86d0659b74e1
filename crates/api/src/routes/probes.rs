//! Probes for orchestrators: `/health` (the process answers; no dependencies), `/ready`
//! (database reachable, default model loaded, engine heart-beating, plus the binary's own
//! checks; 503 naming every failing check), `/version` and `/metrics`.

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// One readiness check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Readiness with every check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
    /// The media store: `survival` is true while disk survival mode deletes the oldest
    /// media ahead of retention (the worker stays ready; recording goes on).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub media: Option<sightline_storage::MediaHealth>,
}

/// Build information.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub name: &'static str,
    pub version: String,
    pub api: &'static str,
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness.
#[utoipa::path(get, path = "/ready", tag = "probes", responses(
    (status = 200, body = Readiness),
    (status = 503, description = "a check failed; `error.details` lists the checks", body = crate::error::ErrorBody)))]
pub(crate) async fn ready(State(state): State<ApiState>) -> ApiResult<Json<Readiness>> {
    let inner = &state.inner;
    let mut checks = Vec::new();
    let db = database_check(&inner.store).await;
    checks.push(check("database", db));
    let want = &inner.opts.default_model;
    let loaded = inner
        .models
        .loaded()
        .iter()
        .any(|m| &m.manifest().name == want);
    checks.push(check(
        "model",
        if loaded {
            Ok(())
        } else {
            Err(format!("default model {want:?} is not loaded"))
        },
    ));
    if let Some(max) = inner.opts.max_heartbeat_age {
        let r = engine_check(&inner.engine, max);
        checks.push(check("engine", r));
    }
    for (name, f) in &inner.opts.readiness {
        checks.push(check(name, f()));
    }
    let media = inner.opts.media.as_ref().map(|m| m.status.health());
    if let Some(h) = &media {
        checks.push(Check {
            name: "media".into(),
            ok: true,
            message: h.survival.then(|| {
                format!(
                    "disk survival mode: the oldest media is being deleted ahead of retention{}",
                    h.used_pct
                        .map(|p| format!(" (volume {p:.1} % used)"))
                        .unwrap_or_default()
                )
            }),
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    let body = Readiness {
        ready,
        checks,
        media,
    };
    if ready {
        Ok(Json(body))
    } else {
        let failing: Vec<&str> = body
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not ready: {}", failing.join(", ")),
        )
        .with_details(serde_json::to_value(&body.checks).unwrap_or_default())
        .with_retry_after(5))
    }
}

/// The `database` readiness check: the store answers a ping within 2 s. The reason given is
/// generic (probes are unauthenticated); the error itself is logged.
pub async fn database_check(store: &sightline_store::Store) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database ping failed");
            Err("database unreachable".to_owned())
        }
        Err(_) => Err("database did not answer within 2 s".to_owned()),
    }
}

/// The `engine` readiness check: the engine heart-beat at most `max` ago.
pub fn engine_check(engine: &sightline_engine::EngineShared, max: Duration) -> Result<(), String> {
    match engine.heartbeat_age() {
        Some(age) if age <= max => Ok(()),
        Some(age) => Err(format!(
            "last engine heartbeat {:.1} s ago (limit {:.1} s)",
            age.as_secs_f64(),
            max.as_secs_f64()
        )),
        None => Err("the engine has not heart-beaten yet".to_owned()),
    }
}

fn check(name: &str, r: Result<(), String>) -> Check {
    Check {
        name: name.to_owned(),
        ok: r.is_ok(),
        message: r.err(),
    }
}

/// Version.
#[utoipa::path(get, path = "/version", tag = "probes", responses((status = 200, body = Version)))]
pub(crate) async fn version(State(state): State<ApiState>) -> Json<Version> {
    Json(Version {
        name: "sightline",
        version: state.inner.opts.version.clone(),
        api: "v1",
    })
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "probes", responses((status = 200, content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<ApiState>) -> ApiResult<Response> {
    match &state.inner.opts.metrics {
        Some(render) => Ok((
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response()),
        None => Err(ApiError::not_found("metrics are not served here")),
    }
}
