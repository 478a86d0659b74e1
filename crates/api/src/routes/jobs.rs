//! Batch jobs over uploaded (or server-side) video. `POST /v1/jobs` streams the upload to a
//! temporary file in the upload folder — never into memory — with the size checked from
//! `Content-Length` before anything is read and counted while it streams; the file is only
//! renamed into place once the whole form was read and checked, so a refused, aborted or
//! failed upload (disk full: 507) leaves nothing behind (the temporary file is deleted when
//! the handler returns or is dropped). The job itself is a run of that file played once at
//! full speed (`pacing = fast`, no RTSP, no encode unless an annotated video is asked for),
//! so it is queued, claimed, renewed and taken over like any run; its events are the run's.

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::routes::runs::{RunErrorDto, parse_run_id};
use crate::state::{ApiState, JobUploads};
use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sightline_config::PipelineConfig;
use sightline_core::{FieldErrors, JobState, RunId};
use sightline_store::{JobFilter, JobRecord, NewJob, NewRun, SourceUri};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

/// Largest text field of the form.
const MAX_TEXT_FIELD: usize = 4096;
/// Room for the form's boundaries and text fields on top of the file.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// The job form (documentation only; parsed as a stream). Give `file` (an upload) or
/// `source` (a file the server can read, inside `[api].file_roots`, or an `http(s)://` URL).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct JobForm {
    /// The video to process.
    #[schema(format = Binary, value_type = Option<String>)]
    file: Option<Vec<u8>>,
    /// Instead of `file`: `file:///path/clip.mp4`, a path under the file roots, or a URL.
    source: Option<String>,
    /// Pipeline config name.
    config: String,
    /// Config version (default: latest).
    config_version: Option<i64>,
    /// Write an annotated MP4 (default false: no encode, fastest).
    annotated: Option<bool>,
    /// Store event pictures (crops, snapshots) as the config says (default true); false
    /// stores events only.
    pictures: Option<bool>,
}

/// How far a job got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressDto {
    /// Frames decoded and processed so far (by the current attempt).
    pub frames_done: u64,
    /// The file's frame count (length × frame rate; the processed count once completed).
    pub total_frames: Option<u64>,
    /// 0..1 (1 once completed).
    pub fraction: Option<f64>,
    /// Frames per second now.
    pub fps: f64,
    /// Seconds left at the current speed.
    pub eta_s: Option<f64>,
    /// Stream time reached, seconds.
    pub position_s: f64,
    /// The file's length, seconds.
    pub duration_s: Option<f64>,
    /// Stream seconds processed per wall-clock second.
    pub x_realtime: Option<f64>,
}

/// Events of one kind a job produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventCountDto {
    #[serde(rename = "type")]
    pub kind: String,
    pub rule: String,
    pub class: Option<String>,
    pub count: u64,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDto {
    pub id: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub state: String,
    /// The name the file was uploaded under (or the source's file name).
    pub file_name: String,
    pub size_bytes: u64,
    /// Masked source (the stored upload, or the server-side file).
    pub source: String,
    pub config: String,
    pub config_version: i64,
    /// An annotated MP4 is written.
    pub annotated: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attempts (more than one: a worker died and another took it over).
    pub attempts: u32,
    /// The worker processing it.
    pub owner: Option<String>,
    pub progress: ProgressDto,
    /// Why it failed.
    pub error: Option<RunErrorDto>,
    /// Completed, but not everything went well (e.g. the file ended early: truncated).
    pub warnings: Vec<String>,
    /// `GET` it for the annotated MP4 (completed jobs asked to write one).
    pub video_url: Option<String>,
    /// Its events: `GET /v1/events?job={id}`.
    pub events_url: String,
}

/// A job with its result summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobDto,
    pub summary: JobSummary,
}

/// What a job found.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    pub job: String,
    pub state: String,
    pub events_total: u64,
    /// Events by type, rule and class.
    pub counts: Vec<EventCountDto>,
    pub frames: u64,
    /// Wall-clock seconds of the last attempt.
    pub seconds: Option<f64>,
    pub x_realtime: Option<f64>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobDto>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// `queued`, `running`, `completed`, `failed`, `cancelled`.
    #[param(pattern = "^(queued|running|completed|failed|cancelled)$")]
    pub state: Option<String>,
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000; 0 means the default).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn progress(p: sightline_store::JobProgress) -> ProgressDto {
    ProgressDto {
        frames_done: p.frames_done,
        total_frames: p.total_frames,
        fraction: p.fraction,
        fps: p.fps,
        eta_s: p.eta_s,
        position_s: p.position_s,
        duration_s: p.duration_s,
        x_realtime: p.x_realtime,
    }
}

fn dto(state: &ApiState, j: JobRecord) -> JobDto {
    let id = j.run.id.to_string();
    let stats = state
        .inner
        .engine
        .status(&j.run.id)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| j.run.stats.clone());
    let p = sightline_store::JobProgress::of(j.state, &stats);
    let warnings = p.warnings(j.state);
    let progress = progress(p);
    let annotated = j.run.output.get("mp4").is_some_and(Value::is_string);
    JobDto {
        video_url: (annotated && j.state == JobState::Completed)
            .then(|| format!("/v1/jobs/{id}/video.mp4")),
        events_url: format!("/v1/events?job={id}"),
        id,
        state: j.state.as_str().to_owned(),
        file_name: j.file_name,
        size_bytes: j.size_bytes,
        source: j.run.source.masked(),
        config: j.run.config_name,
        config_version: j.run.config_version,
        annotated,
        created_at: j.created_at,
        started_at: j.run.started_at,
        ended_at: j.run.ended_at,
        attempts: j.run.attempts,
        owner: j.run.owner,
        progress,
        error: j
            .run
            .last_error
            .filter(|_| j.state == JobState::Failed)
            .map(|e| RunErrorDto {
                code: e.code,
                message: e.message,
            }),
        warnings,
    }
}

fn parse_job_id(s: &str) -> ApiResult<RunId> {
    parse_run_id(s).map_err(|_| ApiError::not_found(format!("job {s:?}: no such job")))
}

/// The upload's file name as shown: its last path component, control characters dropped.
fn display_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// The stored file's extension: the upload's, when short and plain (GStreamer finds the
/// format from the content; the extension only helps people reading the folder).
fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, e))
            if (1..=8).contains(&e.len()) && e.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            format!(".{}", e.to_ascii_lowercase())
        }
        _ => String::new(),
    }
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_job", m)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("the upload is over the limit of {max} bytes ([api.jobs].max_upload_bytes)"),
    )
}

fn write_error(e: &std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        tracing::error!(error = %e, "job upload refused: the disk is full");
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "the server's disk is full; the upload was not stored",
        )
    } else {
        ApiError::internal("writing the upload", e)
    }
}

async fn text_field(field: &mut axum::extract::multipart::Field<'_>) -> ApiResult<String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(bad(format!(
                "form field {:?} over {MAX_TEXT_FIELD} bytes",
                field.name().unwrap_or("")
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| bad("form fields must be UTF-8 text"))
}

/// A received upload, deleted when dropped unless kept.
struct Upload {
    tmp: tempfile::TempPath,
    name: String,
    size: u64,
}

async fn receive_file(
    field: &mut axum::extract::multipart::Field<'_>,
    up: &JobUploads,
) -> ApiResult<Upload> {
    tokio::fs::create_dir_all(&up.dir)
        .await
        .map_err(|e| write_error(&e))?;
    let name = display_name(field.file_name().unwrap_or("upload"));
    let tmp = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(&up.dir)
        .map_err(|e| write_error(&e))?;
    let (std_file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut size = 0u64;
    // Written in the order it arrives; memory stays at one chunk whatever the file's size.
    while let Some(chunk) = field.chunk().await.map_err(|e| {
        tracing::warn!(error = %e, "job upload interrupted; partial file removed");
        bad(format!("the upload was interrupted: {}", e.body_text()))
    })? {
        size += chunk.len() as u64;
        if size > up.max_bytes {
            return Err(too_large(up.max_bytes));
        }
        file.write_all(&chunk).await.map_err(|e| write_error(&e))?;
    }
    file.flush().await.map_err(|e| write_error(&e))?;
    file.sync_all().await.map_err(|e| write_error(&e))?;
    drop(file);
    if size == 0 {
        return Err(bad("the uploaded file is empty"));
    }
    Ok(Upload {
        tmp: path,
        name,
        size,
    })
}

/// Queue a job: upload a video (multipart `file`) or name one the server can read
/// (`source`), with the pipeline config to run on it.
///
/// The upload is streamed to disk (never held in memory). Over `[api.jobs].max_upload_bytes`
/// → 413, from `Content-Length` before anything is stored or while it streams; disk full →
/// 507. A refused or interrupted upload leaves nothing behind. Whether the file is a video is
/// found out by the worker: a file that is not fails the job with the reason (and the upload
/// is deleted); a truncated one is processed up to the damage and completes with a warning.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content = JobForm, content_type = "multipart/form-data"),
    responses((status = 201, body = JobDto),
    (status = 413, description = "upload over the size limit", body = crate::error::ErrorBody),
    (status = 415, description = "not multipart/form-data", body = crate::error::ErrorBody),
    (status = 422, description = "invalid field (with paths), or `source_not_allowed`", body = crate::error::ErrorBody),
    (status = 507, description = "the server's disk is full", body = crate::error::ErrorBody)))]
pub(crate) async fn create_job(
    State(state): State<ApiState>,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
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
    let uploads = state.inner.opts.jobs.clone();
    if let (Some(up), Some(len)) = (
        &uploads,
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
    ) && len > up.max_bytes.saturating_add(FORM_OVERHEAD)
    {
        return Err(too_large(up.max_bytes));
    }
    let mut upload: Option<Upload> = None;
    let (mut source, mut config, mut version) = (None, None, None);
    let (mut annotated, mut pictures) = (false, true);
    let mut errs = FieldErrors::new();
    while let Some(mut field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => {
                let Some(up) = &uploads else {
                    return Err(bad("this server takes no uploads; give `source`"));
                };
                if upload.is_some() {
                    return Err(bad("one `file` per job"));
                }
                upload = Some(receive_file(&mut field, up).await?);
            }
            "source" => source = Some(text_field(&mut field).await?),
            "config" => config = Some(text_field(&mut field).await?),
            "config_version" => {
                let t = text_field(&mut field).await?;
                match t.trim().parse::<i64>() {
                    Ok(v) if v >= 1 => version = Some(v),
                    _ => errs.push(
                        "config_version",
                        format!("{t:?} is not a version (1, 2, …)"),
                    ),
                }
            }
            "annotated" | "pictures" => {
                let t = text_field(&mut field).await?;
                let v = match t.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    _ => {
                        errs.push(name.clone(), format!("{t:?} is not true or false"));
                        continue;
                    }
                };
                if name == "annotated" {
                    annotated = v;
                } else {
                    pictures = v;
                }
            }
            other => errs.push(other.to_owned(), "unknown form field"),
        }
    }
    let store = &state.inner.store;
    let mut source_refused = None;
    let admitted = match (&upload, &source) {
        (Some(_), Some(_)) => {
            errs.push("source", "give `file` or `source`, not both");
            None
        }
        (None, None) => {
            errs.push("file", "required (or `source`)");
            None
        }
        (Some(_), None) => None,
        (None, Some(s)) => {
            if s.trim_start().to_ascii_lowercase().starts_with("rtsp") {
                errs.push("source", "a job plays a file; use a run for a live stream");
                None
            } else {
                match crate::sources::admit(&state, s).await? {
                    Ok(a) => match SourceUri::new(a) {
                        Ok(u) => Some(u),
                        Err(e) => {
                            errs.push("source", e.to_string());
                            None
                        }
                    },
                    Err(public) => {
                        errs.push("source", public.clone());
                        source_refused = Some(public);
                        None
                    }
                }
            }
        }
    };
    let cfg = match config.as_deref() {
        None => {
            errs.push("config", "required");
            None
        }
        Some(name) => match store.get_config(name, version).await {
            Ok(c) => Some(c),
            Err(sightline_store::StoreError::NotFound { .. }) => {
                errs.push(
                    if version.is_some() {
                        "config_version"
                    } else {
                        "config"
                    },
                    "no such config (version)",
                );
                None
            }
            Err(sightline_store::StoreError::InvalidInput { reason, .. }) => {
                errs.push("config", reason);
                None
            }
            Err(e) => return Err(e.into()),
        },
    };
    let Some(cfg) = cfg.filter(|_| errs.is_empty()) else {
        // The upload (if any) is deleted as `upload` drops.
        return Err(match source_refused {
            Some(public) if errs.len() == 1 => {
                ApiError::fields("source_not_allowed", &errs).with_message(public)
            }
            _ => ApiError::fields("invalid_job", &errs),
        });
    };
    let models = PipelineConfig::models_of(&cfg.body);
    let id = RunId::generate();
    let video = match (&uploads, annotated) {
        (Some(up), true) => Some(up.video_dir.join(format!("{id}.mp4"))),
        (None, true) => {
            return Err(bad(
                "this server writes no annotated videos (no job folder)",
            ));
        }
        _ => None,
    };
    if let Some(v) = video.as_ref().and_then(|v| v.parent()) {
        tokio::fs::create_dir_all(v)
            .await
            .map_err(|e| write_error(&e))?;
    }
    // Where the job's file lives now: the upload moves into place under the job's id.
    let (source, job, stored) = match (upload, admitted) {
        (Some(u), _) => {
            let Some(up) = &uploads else {
                return Err(bad("this server takes no uploads"));
            };
            let path = up.dir.join(format!("{id}{}", extension(&u.name)));
            u.tmp
                .persist(&path)
                .map_err(|e| ApiError::internal("storing the upload", &e.error))?;
            let uri = format!("file://{}", path.display());
            let source = SourceUri::new(uri).map_err(|e| ApiError::internal("upload path", &e))?;
            (
                source,
                NewJob {
                    file_name: u.name,
                    upload_path: Some(path.display().to_string()),
                    size_bytes: u.size,
                },
                Some(path),
            )
        }
        (None, Some(src)) => {
            let path = sightline_engine::run::file_path_of(src.expose());
            let size = match &path {
                Some(p) => tokio::fs::metadata(p).await.map(|m| m.len()).unwrap_or(0),
                None => 0,
            };
            let name = display_name(
                path.as_ref()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .unwrap_or(src.masked().as_str()),
            );
            (
                src,
                NewJob {
                    file_name: name,
                    upload_path: None,
                    size_bytes: size,
                },
                None,
            )
        }
        (None, None) => return Err(bad("file or source required")),
    };
    let keep = uploads.as_ref().is_some_and(|u| u.keep_uploads);
    let output = json!({
        "rtsp": false,
        "pacing": "fast",
        "job": true,
        "delete_source": stored.is_some() && !keep,
        // A server-side source stays confined like a run's; an upload is the server's own.
        "confined": stored.is_none(),
        "mp4": video.map(|v| v.display().to_string()),
        "pictures": pictures,
    });
    let created = store
        .create_job(
            NewRun {
                id: Some(id),
                source,
                config_name: cfg.name.clone(),
                config_version: Some(cfg.version),
                models,
                output,
            },
            job,
        )
        .await;
    let rec = match created {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = stored {
                let _ = tokio::fs::remove_file(p).await;
            }
            return Err(e.into());
        }
    };
    state.inner.engine.nudge();
    Ok((StatusCode::CREATED, Json(dto(&state, rec))))
}

/// List jobs (oldest first).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, body = JobPage), (status = 422, body = crate::error::ErrorBody)))]
pub(crate) async fn list_jobs(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<JobListQuery>,
) -> ApiResult<Json<JobPage>> {
    let mut errs = FieldErrors::new();
    let job_state = match q.state.as_deref() {
        None => None,
        Some(s) => {
            let parsed = JobState::parse(s);
            if parsed.is_none() {
                errs.push("state", format!("unknown job state {s:?}"));
            }
            parsed
        }
    };
    let limit = super::page_limit(q.limit, &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::fields("invalid_query", &errs));
    }
    let page = state
        .inner
        .store
        .list_jobs(&JobFilter {
            state: job_state,
            limit,
            cursor: q.cursor,
        })
        .await?;
    Ok(Json(JobPage {
        items: page.items.into_iter().map(|j| dto(&state, j)).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn summary_of(state: &ApiState, job: &JobDto, id: &RunId) -> ApiResult<JobSummary> {
    let counts = state.inner.store.event_counts(id).await?;
    let stats = state
        .inner
        .store
        .get_run(id)
        .await
        .map(|r| r.stats)
        .unwrap_or(Value::Null);
    Ok(JobSummary {
        job: job.id.clone(),
        state: job.state.clone(),
        events_total: counts.iter().map(|c| c.count).sum(),
        counts: counts
            .into_iter()
            .map(|c| EventCountDto {
                kind: c.kind,
                rule: c.rule,
                class: c.class,
                count: c.count,
            })
            .collect(),
        frames: job.progress.frames_done,
        seconds: f(&stats, "uptime_s"),
        x_realtime: job.progress.x_realtime,
    })
}

/// One job: state, progress (frames, fps, ETA), errors and its result summary.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobDetail), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn get_job(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobDetail>> {
    let id = parse_job_id(&id)?;
    let rec = state.inner.store.get_job(&id).await?;
    let job = dto(&state, rec);
    let summary = summary_of(&state, &job, &id).await?;
    Ok(Json(JobDetail { job, summary }))
}

/// A job's result summary: events by type, rule and class, frames, speed.
#[utoipa::path(get, path = "/v1/jobs/{id}/summary", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobSummary), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn job_summary(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobSummary>> {
    let id = parse_job_id(&id)?;
    let rec = state.inner.store.get_job(&id).await?;
    let job = dto(&state, rec);
    Ok(Json(summary_of(&state, &job, &id).await?))
}

/// Cancel a job (a queued one at once; a running one at its next frame). Its upload is
/// deleted by a worker (this server's at once, any other within 30 s); the events it already
/// stored stay.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 202, body = JobDto), (status = 404, body = crate::error::ErrorBody)))]
pub(crate) async fn cancel_job(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let id = parse_job_id(&id)?;
    state.inner.store.get_job(&id).await?;
    state.inner.store.request_stop(&id).await?;
    state.inner.engine.nudge();
    let rec = state.inner.store.get_job(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(dto(&state, rec))))
}

/// Delete a job that is not running, with its events, its upload and its annotated video.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody),
    (status = 409, description = "job is running; cancel it first", body = crate::error::ErrorBody)))]
pub(crate) async fn delete_job(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_job_id(&id)?;
    let job = state.inner.store.delete_job(&id).await?;
    if let Some(p) = job.upload_path.as_deref() {
        let _ = tokio::fs::remove_file(p).await;
    }
    if let Some(v) = job.run.output.get("mp4").and_then(Value::as_str) {
        let _ = tokio::fs::remove_file(v).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The annotated MP4 of a completed job that asked for one.
#[utoipa::path(get, path = "/v1/jobs/{id}/video.mp4", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, content_type = "video/mp4", body = Vec<u8>),
    (status = 404, description = "no such job, or no annotated video (yet)", body = crate::error::ErrorBody)))]
pub(crate) async fn job_video(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_job_id(&id)?;
    let job = state.inner.store.get_job(&id).await?;
    let Some(path) = job.run.output.get("mp4").and_then(Value::as_str) else {
        return Err(ApiError::not_found(format!(
            "job {id} was not asked for an annotated video"
        )));
    };
    if job.state != JobState::Completed {
        return Err(ApiError::not_found(format!(
            "job {id} is {}; its video is served once it completed",
            job.state
        )));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|_| ApiError::not_found(format!("job {id}: the annotated video is gone")))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal("job video", &e))?
        .len();
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"job-{id}.mp4\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extensions() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\clips\\a.mp4"), "a.mp4");
        assert_eq!(display_name("/"), "upload");
        assert_eq!(extension("clip.MP4"), ".mp4");
        assert_eq!(extension("clip.tar.gz"), ".gz");
        assert_eq!(extension("noext"), "");
        assert_eq!(extension("x.a/b"), "");
    }
}
