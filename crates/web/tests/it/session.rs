//! Login, cookies, CSRF and roles through the real router (`oneshot`), on a real store.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sightline_api::{ApiOptions, ApiState, AuthMode, hash_token, router_with};
use sightline_config::InferenceSection;
use sightline_engine::{EngineShared, ModelCache};
use sightline_store::{Store, StoreOptions, TokenRole};
use std::sync::Arc;
use tower::ServiceExt;

struct Fx {
    _dir: tempfile::TempDir,
    store: Store,
    app: axum::Router,
}

async fn fixture(auth: AuthMode) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db"), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let models = Arc::new(ModelCache::open(&InferenceSection::default(), dir.path()).unwrap());
    let state = ApiState::new(
        store.clone(),
        EngineShared::new(),
        models,
        ApiOptions {
            auth,
            ..ApiOptions::default()
        },
    );
    Fx {
        _dir: dir,
        store,
        app: router_with(state, sightline_web::routes()),
    }
}

async fn token(store: &Store, role: TokenRole) -> String {
    let t = format!("slt_test_{}", role.as_str());
    store
        .create_token(role.as_str(), role, &hash_token(&t))
        .await
        .unwrap();
    t
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn call(app: &axum::Router, req: Request<Body>) -> Resp {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 1 << 24)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn json_req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
}

#[tokio::test]
async fn login_sets_an_httponly_session_and_a_csrf_token() {
    let fx = fixture(AuthMode::Tokens).await;
    let op = token(&fx.store, TokenRole::Operator).await;
    // The page and its assets are open; the data is not.
    let page = call(&fx.app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, 200);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let js = call(
        &fx.app,
        Request::get("/ui/assets/app.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(js.status, 200);
    let etag = js.headers[header::ETAG].to_str().unwrap().to_owned();
    let again = call(
        &fx.app,
        Request::get("/ui/assets/app.js")
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 304);
    assert_eq!(
        call(
            &fx.app,
            Request::get("/ui/assets/nope.js")
                .body(Body::empty())
                .unwrap()
        )
        .await
        .status,
        404
    );
    let who = call(
        &fx.app,
        Request::get("/ui/whoami").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(who.status, 401);

    // A wrong token: 401, no cookie.
    let bad = call(
        &fx.app,
        json_req("POST", "/ui/login")
            .body(Body::from(r#"{"token":"slt_wrong"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad.headers.get(header::SET_COOKIE).is_none());

    // The right one: the session cookie is HttpOnly + SameSite=Strict, the CSRF one readable.
    let ok = call(
        &fx.app,
        json_req("POST", "/ui/login")
            .body(Body::from(format!(r#"{{"token":"{op}"}}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    let cookies: Vec<String> = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("sightline_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf_cookie = cookies
        .iter()
        .find(|c| c.starts_with("sightline_csrf="))
        .unwrap();
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page must read it: {csrf_cookie}"
    );
    let csrf = csrf_cookie
        .trim_start_matches("sightline_csrf=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 32);
    let jar = format!("sightline_session={op}; sightline_csrf={csrf}");

    // Reads with the cookie work.
    let who = call(
        &fx.app,
        Request::get("/ui/whoami")
            .header(header::COOKIE, &jar)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(who.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&who.body).unwrap();
    assert_eq!(
        (v["role"].as_str(), v["auth"].as_bool()),
        (Some("operator"), Some(true))
    );

    // A change with the cookie but without the CSRF header (what a cross-site form could
    // make a browser send) is refused; with it, it reaches the handler.
    let body = r#"{"model": {"name": "nanodet-m-416"}}"#;
    let no_csrf = call(
        &fx.app,
        json_req("PUT", "/v1/configs/c1")
            .header(header::COOKIE, &jar)
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(no_csrf.status, 403);
    assert!(String::from_utf8_lossy(&no_csrf.body).contains("\"csrf\""));
    let wrong = call(
        &fx.app,
        json_req("PUT", "/v1/configs/c1")
            .header(header::COOKIE, &jar)
            .header("x-csrf-token", "0".repeat(32))
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let with = call(
        &fx.app,
        json_req("PUT", "/v1/configs/c1")
            .header(header::COOKIE, &jar)
            .header("x-csrf-token", &csrf)
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(with.status, 201, "{}", String::from_utf8_lossy(&with.body));
    // Bearer clients are not affected by CSRF (no cookie, no ambient authority).
    let bearer = call(
        &fx.app,
        json_req("PUT", "/v1/configs/c1")
            .header(header::AUTHORIZATION, format!("Bearer {op}"))
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(bearer.status, 201);

    // Logout clears both cookies.
    let out = call(
        &fx.app,
        Request::post("/ui/logout").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(out.status, 204);
    assert_eq!(out.headers.get_all(header::SET_COOKIE).iter().count(), 2);
}

#[tokio::test]
async fn a_viewer_session_cannot_change_anything() {
    let fx = fixture(AuthMode::Tokens).await;
    let viewer = token(&fx.store, TokenRole::Viewer).await;
    let jar = format!("sightline_session={viewer}; sightline_csrf=abc");
    let r = call(
        &fx.app,
        json_req("PUT", "/v1/configs/c1")
            .header(header::COOKIE, &jar)
            .header("x-csrf-token", "abc")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("\"forbidden\""));
    // The live view of a run that does not exist.
    let r = call(
        &fx.app,
        Request::get("/v1/runs/nope/live")
            .header(header::COOKIE, &jar)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(r.status == 404 || r.status == 426, "{}", r.status);
}

#[tokio::test]
async fn without_tokens_on_loopback_the_dashboard_is_open() {
    let fx = fixture(AuthMode::Disabled).await;
    let who = call(
        &fx.app,
        Request::get("/ui/whoami").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(who.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&who.body).unwrap();
    assert_eq!(
        (v["role"].as_str(), v["auth"].as_bool()),
        (Some("admin"), Some(false))
    );
    let login = call(
        &fx.app,
        json_req("POST", "/ui/login")
            .body(Body::from(r#"{"token":""}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, 200);
}
