//! The live view: `GET /v1/runs/{id}/live` upgrades to a WebSocket that carries the run's
//! encoded output as fragmented MP4 for Media Source Extensions.
//!
//! Protocol: a text message `{"type":"init","codec":"avc1.…","width":…,"height":…}`, then
//! binary messages — the init segment, then one fragment per access unit. The first
//! fragment is a keyframe: the viewer gets the current group of pictures at once (the
//! run's [`LiveFeed`] keeps it) and then every access unit as it leaves the encoder. A
//! viewer too slow for the stream skips ahead to the next keyframe (counted in a text
//! message `{"type":"skipped","frames":n}`); a change of resolution sends a new `init`.
//! The encode is the run's own: viewers cost a copy and a few boxes each, no encoder.
//!
//! [`LiveFeed`]: sightline_engine::LiveFeed

use crate::fmp4;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sightline_api::{ApiError, ApiResult, ApiState};
use sightline_core::RunId;
use sightline_engine::{EncodedUnit, LiveFeed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// `GET /v1/runs/{id}/live` (WebSocket).
pub async fn live(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let run = RunId::parse(&id).map_err(|m| ApiError::not_found(format!("run {id:?}: {m}")))?;
    let Some(view) = state.engine().run_view(&run) else {
        // Tell "no such run" from "not executing here".
        let rec = state.store().get_run(&run).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_not_live",
            format!(
                "run {run} is {} and not executing on this server",
                rec.state
            ),
        ));
    };
    let stop = state.stopping();
    Ok(ws.on_upgrade(move |socket| async move {
        tokio::select! {
            r = stream(socket, view.live) => {
                if let Err(e) = r {
                    tracing::debug!(run_id = %run, error = %e, "live viewer left");
                }
            }
            _ = stop => {}
        }
    }))
}

#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed")
    }
}

async fn send(ws: &mut WebSocket, m: Message) -> Result<(), Closed> {
    // A viewer that does not read for this long is gone.
    match tokio::time::timeout(Duration::from_secs(10), ws.send(m)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Closed),
    }
}

/// The state of one viewer's stream.
struct Viewer {
    sps: Vec<u8>,
    frag: fmp4::Fragmenter,
}

impl Viewer {
    /// Starts (or restarts, on new parameter sets) at keyframe `u`: `init` message and
    /// init segment.
    async fn start(
        ws: &mut WebSocket,
        feed: &LiveFeed,
        u: &EncodedUnit,
    ) -> Result<Option<Viewer>, Closed> {
        let Some((sps, pps)) = fmp4::parameter_sets(&u.data) else {
            return Ok(None);
        };
        let (w, h) = feed.size();
        let msg = serde_json::json!({
            "type": "init",
            "codec": fmp4::codec_string(&sps),
            "width": w,
            "height": h,
        });
        send(ws, Message::Text(msg.to_string().into())).await?;
        send(
            ws,
            Message::Binary(fmp4::init_segment(&sps, &pps, w, h).into()),
        )
        .await?;
        Ok(Some(Viewer {
            sps,
            frag: fmp4::Fragmenter::new(),
        }))
    }
}

async fn stream(mut ws: WebSocket, feed: Arc<LiveFeed>) -> Result<(), Closed> {
    let (gop, mut rx) = feed.subscribe();
    let mut viewer: Option<Viewer> = None;
    // After falling behind, nothing is sent until the next keyframe.
    let mut resync = false;
    let mut skipped = 0u64;
    let mut queue: std::collections::VecDeque<Arc<EncodedUnit>> = gop.into();
    // The run stopped (or restarted with a new feed): close, the page reconnects.
    let ended = feed.ended();
    tokio::pin!(ended);
    loop {
        let u = match queue.pop_front() {
            Some(u) => u,
            None => tokio::select! {
                r = rx.recv() => match r {
                    Ok(u) => u,
                    Err(RecvError::Lagged(n)) => {
                        skipped += n;
                        resync = true;
                        continue;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = &mut ended => {
                    let _ = ws.send(Message::Close(None)).await;
                    return Ok(());
                }
                m = ws.recv() => match m {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => continue,
                },
            },
        };
        if u.keyframe {
            if resync {
                resync = false;
                let msg = serde_json::json!({"type": "skipped", "frames": skipped});
                send(&mut ws, Message::Text(msg.to_string().into())).await?;
                skipped = 0;
            }
            let new_sps = fmp4::parameter_sets(&u.data).map(|p| p.0);
            let restart = match (&viewer, &new_sps) {
                (None, _) => true,
                (Some(v), Some(s)) => v.sps != *s,
                (Some(_), None) => false,
            };
            if restart {
                viewer = Viewer::start(&mut ws, &feed, &u).await?;
            }
        } else if resync {
            skipped += 1;
            continue;
        }
        let Some(v) = viewer.as_mut() else {
            continue; // waiting for the first keyframe
        };
        let f = v
            .frag
            .push(&u.data, u.pts_ns, u.duration_ns.max(1), u.keyframe);
        send(&mut ws, Message::Binary(f.into())).await?;
    }
}
