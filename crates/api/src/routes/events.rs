//! Events: the stored history with filters and cursor pagination, and the live stream as
//! Server-Sent Events fed by the engine's broadcast of events as they are written. A slow
//! SSE client that falls behind the broadcast is told how many events it missed (an
//! `event: lagged` message) rather than silently losing them or blocking the writer.

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::ApiState;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_core::{EventKind, FieldErrors, RunId};
use sightline_store::EventQuery;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/events` filters (all optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// Run id.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub run: Option<String>,
    /// Job id (a job's events are its run's: the same id; give `run` or `job`, or both equal).
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub job: Option<String>,
    /// `zone_enter`, `zone_exit`, `line_cross`, `dwell`, `count`, `detected`, `plate`,
    /// `plate_match`.
    #[serde(rename = "type")]
    #[param(
        pattern = r"^(zone_enter|zone_exit|line_cross|dwell|count|detected|plate|plate_match)$"
    )]
    pub kind: Option<String>,
    pub class: Option<String>,
    pub zone: Option<String>,
    pub line: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// `next_cursor` of the previous page (an event id).
    #[param(format = Uuid)]
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000; 0 means the default).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events: `{id, run_id, wall_ms, kind, rule, pts, track_id, class, ...}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/events/stream` filter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only this run's events.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub run: Option<String>,
}

fn time(field: &'static str, v: Option<&str>, errs: &mut FieldErrors) -> Option<DateTime<Utc>> {
    let v = v?;
    match DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            errs.push(field, format!("{v:?} is not an RFC 3339 time: {e}"));
            None
        }
    }
}

fn run_id(v: Option<&str>, errs: &mut FieldErrors) -> Option<RunId> {
    match RunId::parse(v?) {
        Ok(r) => Some(r),
        Err(m) => {
            errs.push("run", m);
            None
        }
    }
}

/// Stored events.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventListQuery),
    responses((status = 200, body = EventPage), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn list_events(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<EventListQuery>,
) -> ApiResult<Json<EventPage>> {
    let mut errs = FieldErrors::new();
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => {
            let parsed = EventKind::parse(k);
            if parsed.is_none() {
                errs.push("type", format!("unknown event type {k:?}"));
            }
            parsed
        }
    };
    let order = match q.order.as_deref() {
        None | Some("asc") => sightline_store::SortOrder::Asc,
        Some("desc") => sightline_store::SortOrder::Desc,
        Some(o) => {
            errs.push("order", format!("{o:?} is not asc or desc"));
            sightline_store::SortOrder::Asc
        }
    };
    // A job's events are its run's (same id); both filters apply, so two different ids
    // match nothing.
    let by_run = run_id(q.run.as_deref(), &mut errs);
    let by_job = match q.job.as_deref().map(RunId::parse) {
        None => None,
        Some(Ok(j)) => Some(j),
        Some(Err(m)) => {
            errs.push("job", m);
            None
        }
    };
    let contradictory = matches!((&by_run, &by_job), (Some(r), Some(j)) if r != j);
    let run = by_run.or(by_job);
    let query = EventQuery {
        run,
        kind,
        class: q.class,
        zone: q.zone,
        line: q.line,
        since: time("since", q.since.as_deref(), &mut errs),
        until: time("until", q.until.as_deref(), &mut errs),
        cursor: q.cursor,
        limit: super::page_limit(q.limit, &mut errs),
        order,
    };
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_query", &errs));
    }
    if contradictory {
        return Ok(Json(EventPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    let page = state.inner.store.query_events(&query).await?;
    let items = page
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("event to JSON", &e))?;
    Ok(Json(EventPage {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Live events as Server-Sent Events (`event: rule`, data: the event JSON).
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, content_type = "text/event-stream", body = String),
    (status = 404, description = "no such run", body = crate::error::ErrorBody)))]
pub(crate) async fn stream_events(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let mut errs = FieldErrors::new();
    let run = run_id(q.run.as_deref(), &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_query", &errs));
    }
    if let Some(r) = &run {
        // A typo in the run id is an error, not a stream that stays silent forever.
        state.inner.store.get_run(r).await?;
    }
    let rx = state.inner.engine.subscribe_events();
    let stream = BroadcastStream::new(rx).filter_map(move |item| {
        let out = match item {
            Ok(ev) if run.as_ref().is_none_or(|r| *r == ev.run_id) => {
                let data = serde_json::to_string(&ev).unwrap_or_default();
                Some(Ok(SseEvent::default()
                    .event("rule")
                    .id(ev.id.to_string())
                    .data(data)))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(Ok(SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")))),
        };
        std::future::ready(out)
    });
    let stream = futures_util::StreamExt::take_until(stream, state.shutting_down());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
