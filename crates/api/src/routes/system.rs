//! `GET /v1/system`: what the dashboard's System page shows — workers and the runs they
//! hold, runs by state, the outbox backlog per sink (from the database, so every worker's),
//! and this server's own resources and live runs (from the process).

use crate::error::ApiResult;
use crate::state::ApiState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

/// The system overview.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemDto {
    /// Workers, leases, runs by state, outbox per sink.
    #[schema(value_type = Object)]
    pub database: sightline_store::SystemOverview,
    /// Runs executing in this process, with live status.
    #[schema(value_type = Vec<Object>)]
    pub local_runs: Vec<serde_json::Value>,
    /// This process: CPU, memory, data disk (filled in by the binary).
    #[schema(value_type = Object)]
    pub process: serde_json::Value,
    /// The media store: survival mode, volume use, bytes stored.
    #[schema(value_type = Option<Object>)]
    pub media: Option<sightline_storage::MediaHealth>,
    /// Live viewers of each local run's stream (the dashboard's live view).
    #[schema(value_type = Object)]
    pub live_viewers: std::collections::BTreeMap<String, usize>,
}

/// The system overview.
#[utoipa::path(get, path = "/v1/system", tag = "system",
    responses((status = 200, body = SystemDto)))]
pub(crate) async fn system(State(state): State<ApiState>) -> ApiResult<Json<SystemDto>> {
    let inner = &state.inner;
    let database = inner.store.system_overview().await?;
    let mut local_runs = Vec::new();
    let mut live_viewers = std::collections::BTreeMap::new();
    for (id, s) in inner.engine.active_runs() {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("run_id".into(), id.to_string().into());
        }
        local_runs.push(v);
        if let Some(view) = inner.engine.run_view(&id) {
            live_viewers.insert(id.to_string(), view.live.viewers());
        }
    }
    local_runs.sort_by(|a, b| a["run_id"].as_str().cmp(&b["run_id"].as_str()));
    let process = inner
        .opts
        .system_info
        .as_ref()
        .map(|f| f())
        .unwrap_or_default();
    Ok(Json(SystemDto {
        database,
        local_runs,
        process,
        media: inner.opts.media.as_ref().map(|m| m.status.health()),
        live_viewers,
    }))
}
