//! `sightline events`: stored events as JSON lines, filtered like `GET /v1/events`.

use super::serve::{open_store, runtime};
use clap::Args;
use sightline_config::ServerConfig;
use sightline_core::{EventKind, RunId};
use sightline_store::EventQuery;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this run's events.
    #[arg(long)]
    pub run: Option<String>,
    /// Only this type (zone_enter, zone_exit, line_cross, dwell, count, detected, plate,
    /// plate_match).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only this class.
    #[arg(long)]
    pub class: Option<String>,
    /// Only this zone.
    #[arg(long)]
    pub zone: Option<String>,
    /// At most this many (newest last).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

pub fn main(server: &ServerConfig, a: EventsArgs) -> anyhow::Result<ExitCode> {
    let kind = a
        .kind
        .as_deref()
        .map(|k| {
            serde_json::from_value::<EventKind>(serde_json::Value::String(k.to_owned()))
                .map_err(|_| anyhow::anyhow!("--type {k:?}: not an event type"))
        })
        .transpose()?;
    let run = a
        .run
        .as_deref()
        .map(|r| RunId::parse(r).map_err(anyhow::Error::msg))
        .transpose()?;
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let mut q = EventQuery {
            run,
            kind,
            class: a.class,
            zone: a.zone,
            ..Default::default()
        };
        let mut n = 0;
        'pages: loop {
            let page = store.query_events(&q).await?;
            for e in &page.items {
                if n >= a.limit {
                    break 'pages;
                }
                super::say(&serde_json::to_string(e)?);
                n += 1;
            }
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
