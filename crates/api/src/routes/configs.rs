//! Pipeline configs: every `POST`/`PUT` creates a new version after full validation (parse
//! errors and cross-reference errors alike are answered 422 with every field path), lists,
//! versions, and the JSON Schema of the format.

use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::jpeg::blocking;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use sightline_config::PipelineConfig;
use sightline_core::FieldErrors;
use sightline_store::{ConfigSummary, ConfigVersion};
use utoipa::ToSchema;

/// One stored version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigVersionDto {
    pub name: String,
    pub version: i64,
    /// The validated pipeline config, defaults filled in.
    #[schema(value_type = Object)]
    pub body: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A config name and its latest version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigSummaryDto {
    pub name: String,
    pub latest_version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

fn version_dto(c: ConfigVersion) -> ConfigVersionDto {
    ConfigVersionDto {
        name: c.name,
        version: c.version,
        body: c.body,
        created_at: c.created_at,
    }
}

fn summary_dto(c: ConfigSummary) -> ConfigSummaryDto {
    ConfigSummaryDto {
        name: c.name,
        latest_version: c.latest_version,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// Parses and validates a config body against its model's classes; the normalised JSON.
pub(crate) async fn validate_body(state: &ApiState, body: &Value) -> ApiResult<Value> {
    let text = body.to_string();
    let cfg = PipelineConfig::from_json(&text)
        .map_err(|e| ApiError::fields("invalid_config", &e.field_errors()))?;
    let models = state.inner.models.clone();
    let name = cfg.model.name.clone();
    let labels = blocking(move || {
        models
            .registry()
            .get(&name)
            .map(|r| r.manifest.detector().map(|m| m.labels()))
    })
    .await?;
    let mut errs = FieldErrors::new();
    let labels = match labels {
        Ok(Ok(l)) => Some(l),
        Ok(Err(not_a_detector)) => {
            errs.push("model.name", not_a_detector.to_string());
            None
        }
        Err(sightline_inference::InferError::ModelNotFound(_)) => {
            errs.push(
                "model.name",
                format!("unknown model {:?} (see GET /v1/models)", cfg.model.name),
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = cfg.validate(labels.as_ref()) {
        errs.extend(e);
    }
    // A secondary stage whose models do not load is refused now, with the reason, rather
    // than becoming a run that fails later (the models stay loaded for the runs).
    for (i, d) in cfg.secondary.iter().enumerate() {
        let models = state.inner.models.clone();
        let (det, rec) = (d.text_detector.clone(), d.text_recognizer.clone());
        if let Err(e) = blocking(move || models.text_reader(det.as_deref(), rec.as_deref())).await?
        {
            let field = if e.to_string().contains("recogniser") {
                "text_recognizer"
            } else {
                "text_detector"
            };
            errs.push(format!("secondary[{i}].{field}"), e.to_string());
        }
        if d.plate_detector.is_some() {
            let (models, d) = (state.inner.models.clone(), d.clone());
            if let Err(e) =
                blocking(move || sightline_engine::secondary::locator(&d, &models)).await?
            {
                errs.push(format!("secondary[{i}].plate_detector"), e);
            }
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_config", &errs));
    }
    serde_json::to_value(&cfg).map_err(|e| ApiError::internal("config to JSON", &e))
}

/// Store a new version of a config (validated). `PUT` does the same.
#[utoipa::path(method(post, put), path = "/v1/configs/{name}", tag = "configs", params(("name" = String, Path)),
    request_body(content = Object, description = "a pipeline config (see /v1/schema/pipeline-config)"),
    responses((status = 201, body = ConfigVersionDto),
    (status = 422, description = "every invalid field with its path in `error.details`", body = crate::error::ErrorBody)))]
pub(crate) async fn put_config(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<ConfigVersionDto>)> {
    let normalised = validate_body(&state, &body).await?;
    let v = state
        .inner
        .store
        .put_config_version(&name, &normalised)
        .await?;
    Ok((StatusCode::CREATED, Json(version_dto(v))))
}

/// List configs.
#[utoipa::path(get, path = "/v1/configs", tag = "configs",
    responses((status = 200, body = Vec<ConfigSummaryDto>)))]
pub(crate) async fn list_configs(
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<ConfigSummaryDto>>> {
    let all = state.inner.store.list_configs().await?;
    Ok(Json(all.into_iter().map(summary_dto).collect()))
}

/// The latest version of a config.
#[utoipa::path(get, path = "/v1/configs/{name}", tag = "configs", params(("name" = String, Path)),
    responses((status = 200, body = ConfigVersionDto), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_config(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConfigVersionDto>> {
    let v = state.inner.store.get_config(&name, None).await?;
    Ok(Json(version_dto(v)))
}

/// Every version of a config.
#[utoipa::path(get, path = "/v1/configs/{name}/versions", tag = "configs", params(("name" = String, Path)),
    responses((status = 200, body = Vec<ConfigVersionDto>), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn list_versions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ConfigVersionDto>>> {
    let all = state.inner.store.list_config_versions(&name).await?;
    Ok(Json(all.into_iter().map(version_dto).collect()))
}

/// JSON Schema of the pipeline config.
#[utoipa::path(get, path = "/v1/schema/pipeline-config", tag = "configs",
    responses((status = 200, body = Object)))]
pub(crate) async fn schema() -> Json<Value> {
    Json(PipelineConfig::json_schema())
}
