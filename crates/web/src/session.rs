//! The dashboard's login: the operator pastes an API token once; the server checks it and
//! keeps it in an `HttpOnly; SameSite=Strict` cookie, so the page's script never holds it,
//! plus a random CSRF token in a readable cookie that the script repeats in `X-CSRF-Token`
//! on every change (double submit; checked by the API's authentication). With no token
//! configured on a loopback address the API is open, and so is the dashboard.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sightline_api::{
    ApiError, ApiResult, ApiState, AuthMode, CSRF_COOKIE, Caller, SESSION_COOKIE, hash_token,
};

/// `POST /ui/login`.
#[derive(Debug, Deserialize)]
pub struct Login {
    pub token: String,
}

/// Who the page is talking as.
#[derive(Debug, Serialize)]
pub struct Whoami {
    pub role: &'static str,
    /// Whether the API requires tokens (false: open on loopback).
    pub auth: bool,
    pub version: String,
}

fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

fn set_cookie(r: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Checks the token and opens a session.
pub async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    if state.options().auth == AuthMode::Disabled {
        return Ok(Json(Whoami {
            role: "admin",
            auth: false,
            version: state.options().version.clone(),
        })
        .into_response());
    }
    let token = body.token.trim();
    let rec = match token.is_empty() {
        true => None,
        false => state.store().find_token_by_hash(&hash_token(token)).await?,
    };
    let Some(rec) = rec else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown or revoked token",
        ));
    };
    let csrf = hex::encode(rand::random::<[u8; 16]>());
    let sec = secure(&headers);
    let mut r = Json(Whoami {
        role: rec.role.as_str(),
        auth: true,
        version: state.options().version.clone(),
    })
    .into_response();
    set_cookie(
        &mut r,
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{sec}"),
    );
    set_cookie(
        &mut r,
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict{sec}"),
    );
    tracing::info!(token = %rec.id, role = rec.role.as_str(), "dashboard login");
    Ok(r)
}

/// Ends the session (clears both cookies).
pub async fn logout() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    for c in [SESSION_COOKIE, CSRF_COOKIE] {
        set_cookie(&mut r, format!("{c}=; Path=/; Max-Age=0; SameSite=Strict"));
    }
    r
}

/// The caller's role (401 without a session when tokens are required).
pub async fn whoami(
    State(state): State<ApiState>,
    caller: axum::Extension<Caller>,
) -> Json<Whoami> {
    Json(Whoami {
        role: caller.role.as_str(),
        auth: state.options().auth == AuthMode::Tokens,
        version: state.options().version.clone(),
    })
}
