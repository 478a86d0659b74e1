//! The one place errors become HTTP responses (STYLE pattern 1/9).
//!
//! Every failure leaves the API as `{"error": {"code", "message", "details"?}}` with a stable
//! machine-readable `code`. Errors from the store and the inference crate are mapped by their
//! [`ErrorKind`]; anything internal is logged here with its full text and answered with a
//! generic message, so database or file-system details never reach a client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sightline_core::error::Classify;
use sightline_core::{ErrorKind, FieldErrors};
use sightline_inference::InferError;
use sightline_store::StoreError;
use utoipa::ToSchema;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, with a stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier (`not_found`, `invalid_config`, `queue_full`, ...).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Field errors (`[{path, message}]`), readiness checks (`[{name, ok, message}]`) or
    /// other structured detail: any JSON value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Classify for ApiError {
    fn kind(&self) -> ErrorKind {
        match self.status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::CONFLICT => ErrorKind::Conflict,
            StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => {
                ErrorKind::ResourceExhausted
            }
            s if s.is_client_error() => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 422 listing every field error with its path.
    pub fn fields(code: &'static str, errors: &FieldErrors) -> Self {
        let n = errors.len();
        Self::unprocessable(
            code,
            format!("{n} invalid field{}", if n == 1 { "" } else { "s" }),
        )
        .with_details(serde_json::to_value(errors).unwrap_or_default())
    }

    /// A failure whose text must not reach the client: logged here, answered generically.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::InvalidInput { field, reason } => {
                let mut f = FieldErrors::new();
                f.push(*field, reason.clone());
                ApiError::fields("invalid_input", &f).with_message(e.to_string())
            }
            StoreError::Conflict { .. }
            | StoreError::IllegalTransition { .. }
            | StoreError::StateMismatch { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            _ => match e.kind() {
                ErrorKind::Unavailable => {
                    tracing::warn!(error = %e, "database unavailable");
                    ApiError::unavailable("database_unavailable", "database unavailable; retry")
                }
                _ => ApiError::internal("store", &e),
            },
        }
    }
}

impl ApiError {
    pub fn with_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match &e {
            InferError::InvalidImage(_) => ApiError::unprocessable("invalid_image", e.to_string()),
            InferError::TooManyPixels { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_pixels",
                e.to_string(),
            ),
            InferError::OutOfMemory(_) => {
                tracing::warn!(error = %e, "accelerator out of memory");
                ApiError::unavailable(
                    "accelerator_out_of_memory",
                    "the accelerator is out of memory; retry later",
                )
            }
            InferError::Dropped | InferError::Closed => {
                ApiError::unavailable("inference_unavailable", e.to_string())
            }
            InferError::Timeout(_) | InferError::Cancelled => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "inference_timeout",
                e.to_string(),
            ),
            InferError::ModelNotFound(_) => ApiError::not_found(e.to_string()),
            InferError::ModelConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            InferError::ManifestParse(_) => {
                ApiError::unprocessable("invalid_manifest", e.to_string())
            }
            InferError::ManifestInvalid(f) => ApiError::fields("invalid_manifest", f),
            InferError::InvalidModel { .. } | InferError::OutputMismatch { .. } => {
                ApiError::unprocessable("invalid_model", e.to_string())
            }
            InferError::InvalidRequest(_) | InferError::InvalidFrame(_) => {
                ApiError::unprocessable("invalid_request", e.to_string())
            }
            InferError::RuntimeNotFound { .. }
            | InferError::RuntimeLoad { .. }
            | InferError::ProviderUnavailable { .. } => {
                tracing::error!(error = %e, "inference runtime unavailable");
                ApiError::unavailable("inference_unavailable", "inference runtime unavailable")
            }
            InferError::Runtime(_) | InferError::Io { .. } | InferError::Bench(_) => {
                ApiError::internal("inference", &e)
            }
        }
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_store::CorruptRow;

    #[test]
    fn internal_details_are_not_returned() {
        let e = ApiError::from(StoreError::Corrupt(CorruptRow {
            table: "secret_table",
            key: "k".into(),
            detail: "exploded".into(),
        }));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code, "internal");
        assert!(!e.message.contains("secret_table"));
    }

    #[test]
    fn kinds_map_to_statuses() {
        let nf = ApiError::from(InferError::ModelNotFound("m".into()));
        assert_eq!(nf.status, StatusCode::NOT_FOUND);
        let bomb = ApiError::from(InferError::TooManyPixels {
            width: 1,
            height: 1,
            limit: 0,
        });
        assert_eq!(bomb.status, StatusCode::PAYLOAD_TOO_LARGE);
        let oom = ApiError::from(InferError::OutOfMemory("x".into()));
        assert_eq!(oom.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(oom.retry_after, Some(1));
        assert_eq!(oom.kind(), ErrorKind::Unavailable);
    }
}
