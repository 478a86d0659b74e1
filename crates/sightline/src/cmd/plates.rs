//! `sightline plates search`: stored plate events found by plate text, like
//! `GET /v1/plates` (exact, `KA01*` prefix, `*AB12*` wildcards, `--distance` for OCR errors;
//! the folded key finds O/0, I/1, B/8 confusions). A table by default, JSON lines with
//! `--json`.

use super::serve::{open_store, runtime};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use sightline_anpr::search::parse_query;
use sightline_config::ServerConfig;
use sightline_core::RunId;
use sightline_store::{PlateHit, PlateSearch};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PlatesCmd {
    /// Find plate events by plate text, newest first.
    Search(SearchArgs),
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// `KA01AB1234` (exact; separators and case ignored), `KA01*` (prefix) or `*AB12*`.
    pub query: String,
    /// Also reads at most this many edits away.
    #[arg(long)]
    pub distance: Option<u32>,
    /// Only this run's events.
    #[arg(long)]
    pub run: Option<String>,
    /// From this time (RFC 3339, inclusive).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339, exclusive).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many hits.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Only the voted texts, not the vote's other candidates.
    #[arg(long)]
    pub no_candidates: bool,
    /// JSON lines (the event with `matched_text`, `matched_on`, `distance`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(server: &ServerConfig, c: PlatesCmd) -> anyhow::Result<ExitCode> {
    let PlatesCmd::Search(a) = c;
    let query = parse_query(&a.query, a.distance)
        .map_err(|e| anyhow::anyhow!("query {:?}: {e}", a.query))?;
    let run = a
        .run
        .as_deref()
        .map(|r| RunId::parse(r).map_err(anyhow::Error::msg))
        .transpose()?;
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let mut q = PlateSearch {
            run,
            since: a.since,
            until: a.until,
            limit: u32::try_from(a.limit.min(1000)).unwrap_or(1000),
            candidates: !a.no_candidates,
            ..PlateSearch::new(query)
        };
        if !a.json {
            super::say(&format!(
                "{:<24} {:<16} {:<12} {:>5} {:>8}  MATCHED",
                "TIME", "RUN", "TEXT", "CONF", "READINGS"
            ));
        }
        let mut n = 0;
        'pages: loop {
            let page = store.search_plates(&q).await?;
            for h in &page.items {
                if n >= a.limit {
                    break 'pages;
                }
                super::say(&if a.json { json_line(h)? } else { row(h) });
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

fn json_line(h: &PlateHit) -> anyhow::Result<String> {
    Ok(serde_json::to_string(&h.to_json()?)?)
}

fn row(h: &PlateHit) -> String {
    let time = DateTime::from_timestamp_millis(h.event.wall_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default();
    let plate = h.event.body.plate.as_ref();
    let text = plate.map_or("", |p| p.text.as_str());
    let conf = plate.map_or(0.0, |p| p.confidence);
    let readings = plate.map_or(0, |p| p.readings);
    let matched = match h.distance {
        0 => format!("{} {}", h.matched_on.as_str(), h.matched_text),
        d => format!(
            "{} {} (distance {d})",
            h.matched_on.as_str(),
            h.matched_text
        ),
    };
    format!(
        "{time:<24} {:<16} {text:<12} {conf:>5.2} {readings:>8}  {matched}",
        h.event.run_id.as_str()
    )
}
