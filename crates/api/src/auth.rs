//! Bearer-token authentication and role checks, as one middleware in front of every route.
//!
//! Tokens are stored as SHA-256 hashes, so the presented token is hashed and looked up. The
//! permission a request needs is decided here from its method and path, in one table, rather
//! than scattered over handlers: reads need `viewer`, model uploads and deletions `admin`,
//! every other mutation (runs, configs, infer) `operator`. The resolved [`Caller`] travels
//! in the request extensions (the infer rate limiter keys on it).
//!
//! The dashboard's browser session carries the same token in an `HttpOnly`,
//! `SameSite=Strict` cookie ([`SESSION_COOKIE`], set by its login page). A request
//! authenticated by that cookie that changes something must also send the session's CSRF
//! token ([`CSRF_COOKIE`], readable by the page's script) in [`CSRF_HEADER`]: a page of
//! another site can make the browser send the cookie but cannot read the CSRF token.

use crate::error::ApiError;
use crate::state::{ApiState, AuthMode};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use sightline_store::TokenRole;
use std::net::SocketAddr;

/// The dashboard session cookie: the bearer token itself, `HttpOnly; SameSite=Strict`.
pub const SESSION_COOKIE: &str = "sightline_session";
/// The double-submit CSRF cookie (readable by the dashboard's script).
pub const CSRF_COOKIE: &str = "sightline_csrf";
/// The header a cookie-authenticated mutation must repeat the CSRF cookie in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

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
        // The dashboard's page and assets hold no data; its login sets the session.
        "/" | "/ui/login" | "/ui/logout" => return Need::Open,
        p if p.starts_with("/ui/assets/") => return Need::Open,
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
    let (bearer, via_cookie) = match bearer {
        Some(t) => (Some(t), false),
        None => match cookie(req.headers(), SESSION_COOKIE) {
            Some(t) if !t.is_empty() => (Some(t.to_owned()), true),
            _ => (None, false),
        },
    };
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if via_cookie && mutating && need != Need::Open && opts.auth == AuthMode::Tokens {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let expected = cookie(req.headers(), CSRF_COOKIE);
        if sent.is_none() || sent != expected {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a request from the dashboard session must carry its CSRF token (X-CSRF-Token)",
            ));
        }
    }
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
                    "a bearer token is required (Authorization: Bearer <token>, or the dashboard's login)",
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
        assert_eq!(need(&Method::GET, "/", true), Need::Open);
        assert_eq!(need(&Method::GET, "/ui/assets/app.js", true), Need::Open);
        assert_eq!(need(&Method::POST, "/ui/login", true), Need::Open);
        assert_eq!(need(&Method::GET, "/ui/whoami", true), Need::Viewer);
        assert_eq!(need(&Method::GET, "/v1/runs/x/live", true), Need::Viewer);
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = axum::http::HeaderMap::new();
        h.append(header::COOKIE, "a=1; sightline_csrf=xyz".parse().unwrap());
        h.append(header::COOKIE, "sightline_session=slt_abc".parse().unwrap());
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("slt_abc"));
        assert_eq!(cookie(&h, "nope"), None);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
