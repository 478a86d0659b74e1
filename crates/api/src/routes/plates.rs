//! Plate search (issue 13): stored plate and plate-match events found by their read text,
//! the folded key (OCR confusions) or the vote's other candidates, with the same filters
//! and cursor pages as the event list. Each item is the event's JSON plus what matched.

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::ApiState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_anpr::search::{MAX_QUERY_DISTANCE, parse_query};
use sightline_core::{FieldErrors, RunId};
use sightline_store::PlateSearch;
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/plates` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlateSearchQuery {
    /// Plate to find: `KA01AB1234` (exact; separators and case ignored), `KA01*` (prefix),
    /// `*AB12*` (wildcards). Matched against the read text and, folded, its confusion key
    /// (O/Q/D→0, I/L→1, S→5, B→8, Z→2, G→6). At most 16 characters.
    #[param(pattern = r"^\*?[A-Za-z0-9][A-Za-z0-9* -]{0,14}$")]
    pub q: String,
    /// Edit distance: also find reads at most this many edits from `q` (fuzzy search;
    /// ignored for a query with `*`).
    #[param(minimum = 0, maximum = 3)]
    pub distance: Option<u32>,
    /// Run id.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub run: Option<String>,
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
    /// Also match the vote's other candidate texts (default true).
    pub candidates: Option<bool>,
}

/// A page of plate hits, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlateHitPage {
    /// Events as in `GET /v1/events`, each with `matched_text` (the stored text that
    /// matched), `matched_on` (`text`, `key` or `candidate`) and `distance` (edits from the
    /// query; 0 unless fuzzy).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// Parses an optional query field, or records why not under its name.
fn field<T>(
    errs: &mut FieldErrors,
    name: &'static str,
    v: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    parse(v?).map_err(|m| errs.push(name, m)).ok()
}

/// The published shape of `q` (`^\*?[A-Za-z0-9][A-Za-z0-9* -]{0,14}$`): letters, digits,
/// `*`, spaces and dashes, at most 16, a letter or digit first (after an optional `*`).
fn query_shape(v: &str) -> Result<(), String> {
    let body = v.strip_prefix('*').unwrap_or(v);
    let first_ok = body
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | ' ' | '-'));
    if !first_ok || !chars_ok || v.len() > 16 {
        return Err(format!(
            "{v:?}: letters, digits, `*`, spaces and dashes (at most 16), starting with a letter or digit (or `*` and one)"
        ));
    }
    Ok(())
}

fn rfc3339(v: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{v:?} is not an RFC 3339 time: {e}"))
}

/// Stored plate events matching a plate query.
#[utoipa::path(get, path = "/v1/plates", tag = "plates", params(PlateSearchQuery),
    responses((status = 200, body = PlateHitPage), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn search_plates(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<PlateSearchQuery>,
) -> ApiResult<Json<PlateHitPage>> {
    let mut errs = FieldErrors::new();
    let name = match q.distance {
        Some(d) if d > MAX_QUERY_DISTANCE => "distance",
        _ => "q",
    };
    let query = field(&mut errs, name, Some(&q.q), |v| {
        query_shape(v)?;
        parse_query(v, q.distance)
    });
    let run = field(&mut errs, "run", q.run.as_deref(), RunId::parse);
    let since = field(&mut errs, "since", q.since.as_deref(), rfc3339);
    let until = field(&mut errs, "until", q.until.as_deref(), rfc3339);
    let limit = super::page_limit(q.limit, &mut errs);
    let Some(query) = query.filter(|_| errs.is_empty()) else {
        return Err(ApiError::fields("invalid_query", &errs));
    };
    let search = PlateSearch {
        run,
        since,
        until,
        cursor: q.cursor,
        limit,
        candidates: q.candidates.unwrap_or(true),
        ..PlateSearch::new(query)
    };
    let page = state.inner.store.search_plates(&search).await?;
    let items = page
        .items
        .iter()
        .map(sightline_store::PlateHit::to_json)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("plate hit to JSON", &e))?;
    Ok(Json(PlateHitPage {
        items,
        next_cursor: page.next_cursor,
    }))
}
