//! `GET /v1/plates`: hits with what matched, 422 naming the field of a bad query.

use super::common::*;
use axum::http::StatusCode;
use serde_json::json;
use sightline_core::{Event, EventId, EventKind, PlateRead, Pts, RuleEvent, RunId};

fn plate(text: &str) -> Event {
    let mut body = RuleEvent::new(EventKind::Plate, "plates", Pts::ZERO);
    body.plate = Some(PlateRead {
        text: text.into(),
        key: sightline_anpr::fold(text),
        confidence: 0.9,
        readings: 3,
        candidates: Vec::new(),
        plate_bbox: None,
        label: None,
        distance: None,
    });
    Event {
        id: EventId::generate(),
        run_id: RunId::parse("r1").unwrap(),
        wall_ms: chrono::Utc::now().timestamp_millis(),
        body,
        media: None,
    }
}

#[tokio::test]
async fn plate_search() {
    let fx = fixture().await;
    let app = fx.open_app();
    post_json(&app, "/v1/configs/c", None, &config_json()).await;
    post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "r1", "source": "test://ball", "config": "c"}),
    )
    .await;
    fx.store
        .insert_events(&[
            plate("KA01AB1234"),
            plate("KA0IAB1234"),
            plate("MH12XY9876"),
        ])
        .await
        .unwrap();

    let r = get(&app, "/v1/plates?q=ka-01-ab-1234&run=r1", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let items = r.json()["items"].as_array().unwrap().clone();
    let on: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["matched_on"].as_str().unwrap(),
                i["plate"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(on, [("key", "KA0IAB1234"), ("text", "KA01AB1234")]);
    assert_eq!(items[0]["type"], "plate");
    assert_eq!(items[0]["distance"], 0);

    let r = get(&app, "/v1/plates?q=KA01AB1235&distance=1&limit=1", None).await;
    assert_eq!(r.json()["items"][0]["distance"], 1);
    let cursor = r.json()["next_cursor"].as_str().unwrap().to_owned();
    let r = get(
        &app,
        &format!("/v1/plates?q=KA01AB1235&distance=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    assert!(r.json()["next_cursor"].is_null());

    for (uri, field) in [
        ("/v1/plates?q=--", "q"),
        ("/v1/plates?q=KA.01", "q"),
        ("/v1/plates?q=ABCDEFGHIJ1234567", "q"),
        ("/v1/plates?q=KA01&distance=9", "distance"),
        ("/v1/plates?q=KA01&since=yesterday", "since"),
        ("/v1/plates?q=KA01&limit=5000", "limit"),
    ] {
        let r = get(&app, uri, None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert_eq!(
            r.json()["error"]["details"][0]["path"],
            field,
            "{uri}: {}",
            r.json()
        );
    }
    // A distance does not apply to a pattern with `*`.
    let r = get(&app, "/v1/plates?q=*AB*&distance=1", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let doc = get(&app, "/openapi.json", None).await.json();
    let op = &doc["paths"]["/v1/plates"]["get"];
    assert!(op["responses"]["422"].is_object() && op["responses"]["401"].is_object());
}
