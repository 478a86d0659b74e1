//! `sightline runs add|list|show|stop|delete` and `sightline configs put|list`: manage runs
//! and pipeline configs by talking to the store directly, so the engine is usable without the
//! HTTP API. A worker (`sightline serve` / `worker`) on the same database picks the runs up.

use super::serve::{open_store, runtime};
use anyhow::{Context, bail};
use clap::Subcommand;
use sightline_config::{PipelineConfig, ServerConfig};
use sightline_core::{RunId, RunState};
use sightline_store::{NewRun, RunFilter, SourceUri, Store};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// Create a run; a worker picks it up.
    Add {
        /// Source URI or file path.
        source: String,
        /// Pipeline config name in the store (see `sightline configs put`).
        #[arg(long, short = 'c', conflicts_with = "config_file")]
        config: Option<String>,
        /// Or a pipeline config file: stored under `--config-name` (default: file stem) first.
        #[arg(long)]
        config_file: Option<PathBuf>,
        /// Name to store `--config-file` under.
        #[arg(long)]
        config_name: Option<String>,
        /// Pin this config version (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        /// Run id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Restart a file source at its end.
        #[arg(long = "loop")]
        loop_file: bool,
        /// Source pacing: realtime, fast or live (default: by source kind).
        #[arg(long)]
        pacing: Option<String>,
        /// Also record to this MP4 path.
        #[arg(long)]
        mp4: Option<String>,
    },
    /// List runs (JSON lines), optionally by state.
    List {
        #[arg(long)]
        state: Option<String>,
    },
    /// A run with its transitions (JSON).
    Show { id: String },
    /// Ask a run to stop (its worker stops it at a frame boundary).
    Stop { id: String },
    /// Delete a run that is not active.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigsCmd {
    /// Store a pipeline config file as a new version of NAME (validated first).
    Put { name: String, file: PathBuf },
    /// List configs with their latest version.
    List,
}

pub fn main(server: &ServerConfig, cmd: RunsCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let r = runs(&store, cmd).await;
        store.close().await;
        r
    })
}

pub fn configs_main(server: &ServerConfig, cmd: ConfigsCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let r = match cmd {
            ConfigsCmd::Put { name, file } => {
                let v = put_config_file(&store, &name, &file).await?;
                super::say(&format!("{name} version {v}"));
                Ok(ExitCode::SUCCESS)
            }
            ConfigsCmd::List => {
                for c in store.list_configs().await? {
                    super::say(&serde_json::to_string(&c)?);
                }
                Ok(ExitCode::SUCCESS)
            }
        };
        store.close().await;
        r
    })
}

/// Validates a config file and stores it as a new version of `name`, unless the latest
/// version already has the same content. Returns the version.
pub async fn put_config_file(store: &Store, name: &str, file: &Path) -> anyhow::Result<i64> {
    let cfg =
        PipelineConfig::from_file(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if let Err(errs) = cfg.validate(None) {
        bail!("{}: invalid pipeline config:\n{errs}", file.display());
    }
    let body = serde_json::to_value(&cfg)?;
    if let Ok(latest) = store.get_config(name, None).await
        && latest.body == body
    {
        return Ok(latest.version);
    }
    Ok(store.put_config_version(name, &body).await?.version)
}

/// The config a new run or job uses: `--config NAME` as stored, or `--config-file FILE`
/// validated and stored (under `name`, else the file's stem) first.
pub async fn config_to_use(
    store: &Store,
    config: Option<String>,
    config_file: Option<PathBuf>,
    name: Option<String>,
) -> anyhow::Result<String> {
    match (config, config_file) {
        (Some(n), None) => Ok(n),
        (None, Some(f)) => {
            let n = name.unwrap_or_else(|| {
                f.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "default".into())
            });
            put_config_file(store, &n, &f).await?;
            Ok(n)
        }
        (None, None) => bail!("--config NAME or --config-file FILE is required"),
        (Some(_), Some(_)) => bail!("--config and --config-file: give one of them"),
    }
}

async fn runs(store: &Store, cmd: RunsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCmd::Add {
            source,
            config,
            config_file,
            config_name,
            version,
            id,
            loop_file,
            pacing,
            mp4,
        } => {
            let name = config_to_use(store, config, config_file, config_name).await?;
            if let Some(p) = &pacing
                && !matches!(p.as_str(), "realtime" | "fast" | "live")
            {
                bail!("--pacing {p:?}: use realtime, fast or live");
            }
            let source = source_uri(&source)?;
            let id = id
                .map(|s| RunId::parse(&s).map_err(anyhow::Error::msg))
                .transpose()?;
            let rec = store
                .create_run(NewRun {
                    id,
                    source: SourceUri::new(source)?,
                    config_name: name,
                    config_version: version,
                    models: Vec::new(),
                    output: serde_json::json!({ "loop": loop_file, "pacing": pacing, "mp4": mp4 }),
                })
                .await?;
            super::say(&serde_json::to_string(&rec)?);
        }
        RunsCmd::List { state } => {
            let state = state
                .map(|s| {
                    RunState::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--state {s:?}: not a run state"))
                })
                .transpose()?;
            let mut cursor = None;
            loop {
                let page = store
                    .list_runs(&RunFilter {
                        state,
                        limit: 0,
                        cursor: cursor.take(),
                    })
                    .await?;
                for r in &page.items {
                    super::say(&serde_json::to_string(r)?);
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        RunsCmd::Show { id } => {
            let id = RunId::parse(&id).map_err(anyhow::Error::msg)?;
            let rec = store.get_run(&id).await?;
            let tr = store.transitions(&id).await?;
            let mut v = serde_json::to_value(&rec)?;
            v["transitions"] = serde_json::to_value(&tr)?;
            return super::print_json(&v);
        }
        RunsCmd::Stop { id } => {
            let id = RunId::parse(&id).map_err(anyhow::Error::msg)?;
            let rec = store.request_stop(&id).await?;
            super::say(&serde_json::to_string(&rec)?);
        }
        RunsCmd::Delete { id } => {
            let id = RunId::parse(&id).map_err(anyhow::Error::msg)?;
            store.delete_run(&id).await?;
            super::say(&format!("deleted {id}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A plain path becomes an absolute `file://` URI (a worker may run elsewhere, but at least
/// not in another directory).
pub fn source_uri(s: &str) -> anyhow::Result<String> {
    if s.contains("://") {
        return Ok(s.to_owned());
    }
    let p = std::path::absolute(s).with_context(|| format!("source path {s}"))?;
    if !p.exists() {
        bail!("source {s}: no such file");
    }
    Ok(format!("file://{}", p.display()))
}
