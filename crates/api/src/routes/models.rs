//! The model registry over HTTP. An upload (multipart: `onnx` file + `manifest` TOML/JSON)
//! is streamed to a temporary file inside the registry folder with a size cap and hashed on
//! the way, then handed to the registry, which validates it by loading it and running a blank
//! frame before it is stored (422 with the reason otherwise). The temporary file is removed
//! whatever happens (and a crash's leftovers by the registry's next start: it sweeps `.tmp-*`).
//! Deleting a model that a non-finished run uses is refused (409).

use crate::error::{ApiError, ApiResult};
use crate::jpeg::blocking;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sightline_inference::{Manifest, ModelRecord};
use sightline_store::NewModel;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

/// A registered model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDto {
    pub name: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// Shipped with Sightline (cannot be deleted).
    pub builtin: bool,
    /// Loaded in this process (shared by runs and `/v1/infer`).
    pub loaded: bool,
    #[schema(value_type = Object)]
    pub manifest: Value,
}

fn dto(state: &ApiState, r: ModelRecord) -> ModelDto {
    let loaded = state
        .inner
        .models
        .loaded()
        .iter()
        .any(|m| m.manifest().name == r.name)
        || state
            .inner
            .upscalers
            .try_lock()
            .is_ok_and(|m| m.contains_key(&format!("{}@{}", r.name, r.sha256)));
    ModelDto {
        manifest: serde_json::to_value(&r.manifest).unwrap_or_default(),
        name: r.name,
        sha256: r.sha256,
        size_bytes: r.size_bytes,
        builtin: r.builtin,
        loaded,
    }
}

/// Upload form (documentation only; parsed as a stream).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ModelUpload {
    /// The ONNX file.
    #[schema(format = Binary, value_type = String)]
    onnx: Vec<u8>,
    /// The manifest, TOML or JSON (see `models/*/manifest.toml`).
    manifest: String,
}

/// Largest `manifest` form field accepted.
pub(crate) const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The `manifest` form field: JSON when it starts with `{`, TOML otherwise; parsed and
/// validated (422 `invalid_manifest` naming every bad field) before the ONNX file is used.
pub(crate) fn parse_manifest(text: &str) -> ApiResult<Manifest> {
    let manifest = if text.trim_start().starts_with('{') {
        Manifest::from_json_str(text)?
    } else {
        Manifest::from_toml_str(text)?
    };
    manifest.validate()?;
    Ok(manifest)
}

/// Register a model (validated by loading it).
#[utoipa::path(post, path = "/v1/models", tag = "models",
    request_body(content = ModelUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = ModelDto),
    (status = 409, description = "name or file already registered differently", body = crate::error::ErrorBody),
    (status = 413, description = "file over the size limit", body = crate::error::ErrorBody),
    (status = 422, description = "invalid manifest or model (with the reason)", body = crate::error::ErrorBody)))]
pub(crate) async fn upload_model(
    State(state): State<ApiState>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<ModelDto>)> {
    // Not multipart at all (or no boundary): the JSON error shape, not axum's plain text.
    let mut form = form.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "expected multipart/form-data with a boundary: {}",
                e.body_text()
            ),
        )
    })?;
    let bad = |m: String| ApiError::unprocessable("invalid_upload", m);
    let max = state.inner.opts.max_model_bytes;
    let dir = state.inner.models.registry().dir().to_path_buf();
    let mut manifest_text: Option<String> = None;
    let mut onnx: Option<(tempfile::TempPath, String, u64)> = None;
    while let Some(mut field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        match field.name().unwrap_or("") {
            "manifest" => {
                // Read in chunks with the cap: the route has no body limit (models are large).
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
                    if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
                        return Err(bad("manifest over 1 MiB".into()));
                    }
                    buf.extend_from_slice(&chunk);
                }
                let t =
                    String::from_utf8(buf).map_err(|_| bad("manifest is not UTF-8 text".into()))?;
                manifest_text = Some(t);
            }
            "onnx" | "model" | "file" => {
                let tmp = tempfile::Builder::new()
                    .prefix(".tmp-upload-")
                    .tempfile_in(&dir)
                    .map_err(|e| ApiError::internal("creating upload file", &e))?;
                let (std_file, path) = tmp.into_parts();
                let mut file = tokio::fs::File::from_std(std_file);
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
                    size += chunk.len() as u64;
                    if size > max {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "model_too_large",
                            format!("model file over {max} bytes"),
                        ));
                    }
                    hasher.update(&chunk);
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| ApiError::internal("writing upload", &e))?;
                }
                file.flush()
                    .await
                    .map_err(|e| ApiError::internal("writing upload", &e))?;
                drop(file);
                onnx = Some((path, hex::encode(hasher.finalize()), size));
            }
            other => return Err(bad(format!("unknown form field {other:?}"))),
        }
    }
    let (Some(text), Some((path, sha256, size))) = (manifest_text, onnx) else {
        return Err(bad(
            "expected form fields \"onnx\" (file) and \"manifest\"".into()
        ));
    };
    let manifest = parse_manifest(&text)?;
    let models = state.inner.models.clone();
    // `path` (the temp file) is dropped, and deleted, when this closure returns.
    let rec = blocking(move || {
        let r = models.registry().add(&path, manifest);
        drop(path);
        r
    })
    .await??;
    debug_assert_eq!(rec.sha256, sha256);
    state
        .inner
        .store
        .upsert_model(&NewModel {
            name: rec.name.clone(),
            sha256: rec.sha256.clone(),
            manifest: serde_json::to_value(&rec.manifest).unwrap_or_default(),
            path: rec.onnx_path.display().to_string(),
            size_bytes: size,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(dto(&state, rec))))
}

/// Every model (built-in first).
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = Vec<ModelDto>)))]
pub(crate) async fn list_models(State(state): State<ApiState>) -> ApiResult<Json<Vec<ModelDto>>> {
    let models = state.inner.models.clone();
    let all = blocking(move || models.registry().list()).await??;
    Ok(Json(all.into_iter().map(|r| dto(&state, r)).collect()))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{name}", tag = "models", params(("name" = String, Path)),
    responses((status = 200, body = ModelDto), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_model(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ModelDto>> {
    let models = state.inner.models.clone();
    let r = blocking(move || models.registry().get(&name)).await??;
    Ok(Json(dto(&state, r)))
}

/// Delete a model no active run uses.
#[utoipa::path(delete, path = "/v1/models/{name}", tag = "models", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "in use by a run, or built-in", body = crate::error::ErrorBody)))]
pub(crate) async fn delete_model(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let users = state.inner.store.runs_using_model(&name).await?;
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "model_in_use",
            format!("model {name:?} is used by run(s) {}", users.join(", ")),
        ));
    }
    // The index row goes first: its deletion re-checks the users in one transaction.
    match state.inner.store.delete_model(&name).await {
        Ok(_) | Err(sightline_store::StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let models = state.inner.models.clone();
    blocking(move || models.registry().remove(&name)).await??;
    Ok(StatusCode::NO_CONTENT)
}
