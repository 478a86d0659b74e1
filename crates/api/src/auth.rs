//! Bearer-token authentication and role checks, as one middleware in front of every route.
//!
//! Tokens are stored as SHA-256 hashes, so the presented token is hashed and looked up. The
//! permission a request needs is decided here from its method and path, in one table, rather
//! than scattered over handlers: reads need `viewer`, model uploads and deletions `admin`,
//! every other mutation (runs, configs, infer) `operator`. The resolved [`Caller`] travels
//! in the request extensions (the infer rate limiter keys on it).

use crate::error::ApiError;
use crate::state::{ApiState, AuthMode};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use sightline_store::TokenRole;
use std::net::SocketAddr;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: TokenRole,
    /// Rate-limit key: `token:<id>` or `ip:<addr>`.
    pub client_key: String,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Open,
    Viewer,
    Operator,
    Admin,
}

fn rank(r: TokenRole) -> u8 {
    match r {
        TokenRole::Viewer => 1,
        TokenRole::Operator => 2,
        TokenRole::Admin => 3,
    }
}

fn need(method: &Method, path: &str, open_probes: bool) -> Need {
    match path {
        "/health" | "/docs" | "/openapi.json" => return Need::Open,
        "/ready" | "/metrics" if open_probes => return Need::Open,
        _ => {}
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Need::Viewer
    } else if path.starts_with("/v1/models") {
        Need::Admin
    } else {
        Need::Operator
    }
}

/// SHA-256 of a token, lower-case hex (what the store keeps).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn peer(req: &Request) -> String {
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(a)) => format!("ip:{}", a.ip()),
        None => "ip:unknown".into(),
    }
}

pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let opts = &state.inner.opts;
    let need = need(req.method(), req.uri().path(), opts.open_probes);
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let caller = match (opts.auth, bearer) {
        (AuthMode::Disabled, _) => Some(Caller {
            role: TokenRole::Admin,
            client_key: peer(&req),
        }),
        (AuthMode::Tokens, Some(token)) if !token.is_empty() => {
            match state
                .inner
                .store
                .find_token_by_hash(&hash_token(&token))
                .await?
            {
                Some(rec) => Some(Caller {
                    role: rec.role,
                    client_key: format!("token:{}", rec.id),
                }),
                None if need == Need::Open => None,
                None => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "unknown or revoked token",
                    ));
                }
            }
        }
        (AuthMode::Tokens, _) => None,
    };
    let required = match need {
        Need::Open => None,
        Need::Viewer => Some(TokenRole::Viewer),
        Need::Operator => Some(TokenRole::Operator),
        Need::Admin => Some(TokenRole::Admin),
    };
    if let Some(required) = required {
        match &caller {
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a bearer token is required (Authorization: Bearer <token>)",
                ));
            }
            Some(c) if rank(c.role) < rank(required) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "this needs the {} role; the token has {}",
                        required.as_str(),
                        c.role.as_str()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let caller = caller.unwrap_or_else(|| Caller {
        role: TokenRole::Viewer,
        client_key: peer(&req),
    });
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_by_method_and_path() {
        assert_eq!(need(&Method::GET, "/health", false), Need::Open);
        assert_eq!(need(&Method::GET, "/ready", true), Need::Open);
        assert_eq!(need(&Method::GET, "/ready", false), Need::Viewer);
        assert_eq!(need(&Method::GET, "/v1/runs", true), Need::Viewer);
        assert_eq!(need(&Method::POST, "/v1/runs", true), Need::Operator);
        assert_eq!(need(&Method::POST, "/v1/infer", true), Need::Operator);
        assert_eq!(need(&Method::POST, "/v1/models", true), Need::Admin);
        assert_eq!(need(&Method::DELETE, "/v1/models/x", true), Need::Admin);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
