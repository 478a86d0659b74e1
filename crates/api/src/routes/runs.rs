//! Runs: create, list, inspect (record + transitions + live status + RTSP URL), stop,
//! delete, and apply a config version to a live run. Bodies are API DTOs converted from the
//! store's records, so the wire format is documented (OpenAPI) and independent of the
//! storage types; source URIs leave only in their masked form.

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_config::PipelineConfig;
use sightline_core::{FieldErrors, RunId, RunState};
use sightline_engine::RunOptions;
use sightline_store::{NewRun, RunFilter, RunRecord, SourceUri, Transition};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Optional id (1-64 letters, digits, `-`, `_`); generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// Source URI (`rtsp://user:pass@cam/stream`, `file:///clip.mp4`, ...). Credentials are
    /// stored but never shown.
    #[schema(
        min_length = 1,
        pattern = "^[A-Za-z0-9+.-]+://[^\\s\\u0000-\\u001f\\u007f]+$"
    )]
    pub source: String,
    /// Config name.
    #[schema(min_length = 1, pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    pub config: String,
    /// Config version (default: latest).
    #[schema(minimum = 1)]
    pub config_version: Option<i64>,
    /// Models the run uses (default: the config's model).
    pub models: Option<Vec<String>>,
    /// Output options: `{"rtsp": bool, "mp4": "path.mp4", "loop": bool, "pacing": "realtime|fast|live"}`.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
}

/// A state change.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionDto {
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    pub message: Option<String>,
    pub worker: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The last failure.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunErrorDto {
    pub code: String,
    pub message: String,
}

/// A run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDto {
    pub id: String,
    /// Masked: `rtsp://***@cam/stream`.
    pub source: String,
    pub config: String,
    pub config_version: i64,
    pub models: Vec<String>,
    #[schema(value_type = Object)]
    pub output: Value,
    /// `run` or `stop`.
    pub desired_state: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<RunErrorDto>,
    pub owner: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last stats persisted by the engine.
    #[schema(value_type = Object)]
    pub stats: Value,
    /// Where the annotated stream is published (when a public RTSP base is configured).
    pub rtsp_url: Option<String>,
}

/// A run with its history and live status.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunDto,
    pub transitions: Vec<TransitionDto>,
    /// fps, frames, drops, latency: present while the run executes on this worker.
    #[schema(value_type = Option<Object>)]
    pub live: Option<Value>,
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub items: Vec<RunDto>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// `pending`, `starting`, `running`, `retrying`, `stopping`, `stopped`, `completed`, `failed`.
    #[param(pattern = "^(pending|starting|running|retrying|stopping|stopped|completed|failed)$")]
    pub state: Option<String>,
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000; 0 means the default).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `POST /v1/runs/{id}/config`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Version of the run's config to apply (default: latest).
    #[serde(default, deserialize_with = "integral")]
    pub version: Option<i64>,
}

/// An optional JSON integer, written as `3` or `3.0`: JSON (and JSON Schema's `integer`)
/// does not tell them apart, though serde's `i64` takes only the first.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(format!("{n} is not an integer"))),
    }
}

pub(crate) fn run_dto(state: &ApiState, r: RunRecord) -> RunDto {
    let rtsp_url = state
        .inner
        .opts
        .public_rtsp_base
        .as_ref()
        .map(|b| format!("{}/runs/{}", b.trim_end_matches('/'), r.id));
    RunDto {
        id: r.id.to_string(),
        source: r.source.masked(),
        config: r.config_name,
        config_version: r.config_version,
        models: r.models,
        output: r.output,
        desired_state: r.desired_state.as_str().to_owned(),
        state: r.state.as_str().to_owned(),
        attempts: r.attempts,
        last_error: r.last_error.map(|e| RunErrorDto {
            code: e.code,
            message: e.message,
        }),
        owner: r.owner,
        created_at: r.created_at,
        updated_at: r.updated_at,
        started_at: r.started_at,
        ended_at: r.ended_at,
        stats: r.stats,
        rtsp_url,
    }
}

fn transition_dto(t: Transition) -> TransitionDto {
    TransitionDto {
        from: t.from.map(|s| s.as_str().to_owned()),
        to: t.to.as_str().to_owned(),
        reason: t.reason,
        message: t.message,
        worker: t.worker,
        at: t.at,
    }
}

pub(crate) fn parse_run_id(s: &str) -> ApiResult<RunId> {
    RunId::parse(s).map_err(|m| ApiError::not_found(format!("run {s:?}: {m}")))
}

/// Create a run.
///
/// The source is confined: a file must lie under one of the server's `[api].file_roots`
/// (after `..`, percent-escapes and symbolic links are resolved), and a network source must
/// name a host that `[api.source_hosts]` allows (link-local and cloud-metadata addresses and
/// the server's own database, broker and API ports are always refused). A refused source is
/// `422 source_not_allowed`, with the same message whether or not the file or host exists.
/// Runs created here stay confined: the engine checks again before every connection.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = CreateRun, responses(
    (status = 201, body = RunDto),
    (status = 409, description = "id taken", body = crate::error::ErrorBody),
    (status = 422, description = "invalid field (with paths), or `source_not_allowed`: the source is outside the file roots or the allowed hosts", body = crate::error::ErrorBody)))]
pub(crate) async fn create_run(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<CreateRun>,
) -> ApiResult<(StatusCode, Json<RunDto>)> {
    let mut errs = FieldErrors::new();
    let id = match body.id.as_deref().map(RunId::parse).transpose() {
        Ok(id) => id,
        Err(m) => {
            errs.push("id", m);
            None
        }
    };
    // Files only inside the file roots, addresses only where the policy allows; refused
    // before anything is stored or opened.
    let mut source_refused = None;
    let source = match crate::sources::admit(&state, &body.source).await? {
        Ok(admitted) => match SourceUri::new(admitted) {
            Ok(s) => Some(s),
            Err(e) => {
                errs.push("source", e.to_string());
                None
            }
        },
        Err(public) => {
            errs.push("source", public.clone());
            source_refused = Some(public);
            None
        }
    };
    let mut output = body.output.clone().unwrap_or_else(|| serde_json::json!({}));
    match serde_json::from_value::<RunOptions>(output.clone()) {
        Err(e) => errs.push("output", e.to_string()),
        // Only the jobs API marks a run as a job or lets the engine delete its file.
        Ok(o) if o.job || o.delete_source => errs.push(
            "output",
            "`job` and `delete_source` are set by the jobs API (POST /v1/jobs) only",
        ),
        Ok(_) => {}
    }
    // A run created through the API stays confined: the engine checks its source against
    // the policy again right before every connection (whatever the client sent).
    if let Some(o) = output.as_object_mut() {
        o.insert("confined".into(), serde_json::Value::Bool(true));
    }
    // The config must exist (at that version) and still be valid.
    let cfg = match state
        .inner
        .store
        .get_config(&body.config, body.config_version)
        .await
    {
        Ok(c) => Some(c),
        Err(sightline_store::StoreError::NotFound { .. }) => {
            errs.push(
                if body.config_version.is_some() {
                    "config_version"
                } else {
                    "config"
                },
                "no such config (version)",
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let models = match (&body.models, &cfg) {
        (Some(m), _) => m.clone(),
        (None, Some(c)) => PipelineConfig::models_of(&c.body),
        (None, None) => Vec::new(),
    };
    let (Some(source), Some(cfg), true) = (source, cfg, errs.is_empty()) else {
        // A refused source alone is answered the same way whatever the reason.
        return Err(match source_refused {
            Some(public) if errs.len() == 1 => {
                ApiError::fields("source_not_allowed", &errs).with_message(public)
            }
            _ => ApiError::fields("invalid_run", &errs),
        });
    };
    let rec = state
        .inner
        .store
        .create_run(NewRun {
            id,
            source,
            config_name: body.config,
            config_version: Some(cfg.version),
            models,
            output,
        })
        .await?;
    state.inner.engine.nudge();
    Ok((StatusCode::CREATED, Json(run_dto(&state, rec))))
}

/// List runs.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunListQuery),
    responses((status = 200, body = RunPage)))]
pub(crate) async fn list_runs(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<RunListQuery>,
) -> ApiResult<Json<RunPage>> {
    let mut errs = FieldErrors::new();
    let run_state = match q.state.as_deref() {
        None => None,
        Some(s) => {
            let parsed = RunState::parse(s);
            if parsed.is_none() {
                errs.push("state", format!("unknown state {s:?}"));
            }
            parsed
        }
    };
    let limit = super::page_limit(q.limit, &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_query", &errs));
    }
    let page = state
        .inner
        .store
        .list_runs(&RunFilter {
            state: run_state,
            limit,
            cursor: q.cursor,
        })
        .await?;
    Ok(Json(RunPage {
        items: page.items.into_iter().map(|r| run_dto(&state, r)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One run with transitions and live status.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunDetail>> {
    let id = parse_run_id(&id)?;
    let rec = state.inner.store.get_run(&id).await?;
    let transitions = state.inner.store.transitions(&id).await?;
    let live = state
        .inner
        .engine
        .status(&id)
        .and_then(|s| serde_json::to_value(s).ok());
    Ok(Json(RunDetail {
        run: run_dto(&state, rec),
        transitions: transitions.into_iter().map(transition_dto).collect(),
        live,
    }))
}

/// Ask a run to stop (a pending run stops at once).
#[utoipa::path(post, path = "/v1/runs/{id}/stop", tag = "runs", params(("id" = String, Path)),
    responses((status = 202, body = RunDto), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn stop_run(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunDto>)> {
    let id = parse_run_id(&id)?;
    let rec = state.inner.store.request_stop(&id).await?;
    state.inner.engine.nudge();
    Ok((StatusCode::ACCEPTED, Json(run_dto(&state, rec))))
}

/// Start a finished run (stopped, completed or failed) again: it goes back to `pending`
/// and a worker picks it up, with its history kept.
#[utoipa::path(post, path = "/v1/runs/{id}/start", tag = "runs", params(("id" = String, Path)),
    responses((status = 202, body = RunDto), (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "run is active", body = crate::error::ErrorBody)))]
pub(crate) async fn start_run(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RunDto>)> {
    let id = parse_run_id(&id)?;
    let rec = state.inner.store.restart_run(&id).await?;
    state.inner.engine.nudge();
    Ok((StatusCode::ACCEPTED, Json(run_dto(&state, rec))))
}

/// Delete a run that is not active.
#[utoipa::path(delete, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "run is active", body = crate::error::ErrorBody)))]
pub(crate) async fn delete_run(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_run_id(&id)?;
    state.inner.store.delete_run(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply a version of the run's config; a live run switches at a frame boundary.
#[utoipa::path(post, path = "/v1/runs/{id}/config", tag = "runs", params(("id" = String, Path)),
    request_body = ApplyConfig,
    responses((status = 200, body = RunDto), (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "run finished", body = crate::error::ErrorBody),
    (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn apply_config(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ApplyConfig>,
) -> ApiResult<Json<RunDto>> {
    let id = parse_run_id(&id)?;
    let store = &state.inner.store;
    let run = store.get_run(&id).await?;
    let cfg = store
        .get_config(&run.config_name, body.version)
        .await
        .map_err(|e| match e {
            sightline_store::StoreError::NotFound { .. } => {
                let mut f = FieldErrors::new();
                f.push(
                    "version",
                    format!("config {:?} has no such version", run.config_name),
                );
                ApiError::fields("invalid_config", &f)
            }
            e => e.into(),
        })?;
    // Stored versions were validated on the way in; check again in case the models changed.
    crate::routes::configs::validate_body(&state, &cfg.body).await?;
    let rec = store.set_run_config_version(&id, cfg.version).await?;
    state.inner.engine.nudge();
    Ok(Json(run_dto(&state, rec)))
}
