//! `sightline token create|list|revoke`: API bearer tokens. The secret is printed once, at
//! creation; the store keeps only its SHA-256 (what the API compares against).

use super::serve::{open_store, runtime};
use clap::Subcommand;
use rand::RngCore;
use sightline_config::ServerConfig;
use sightline_store::{Store, TokenRole};
use std::io::Write as _;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token and print its secret (shown only this once).
    Create {
        /// admin (everything), operator (runs, configs, infer) or viewer (read-only).
        #[arg(long, value_parser = parse_role)]
        role: TokenRole,
        /// A name to recognise it by in `token list` (default: the role and the time).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (JSON lines; never the secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

pub fn main(server: &ServerConfig, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(server).await?;
        let r = run(&store, cmd).await;
        store.close().await;
        r
    })
}

/// `--role`, checked by the argument parser (before anything is opened).
fn parse_role(s: &str) -> Result<TokenRole, String> {
    TokenRole::parse(s).ok_or_else(|| format!("unknown role {s:?} (admin, operator or viewer)"))
}

/// A new secret: `slt_` and 32 random bytes in hex (the thread RNG is a CSPRNG).
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("slt_{}", hex::encode(b))
}

async fn run(store: &Store, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Create { role: r, name } => {
            let name = name.unwrap_or_else(|| format!("{}-{}", r.as_str(), epoch_seconds()));
            let secret = new_secret();
            let rec = store
                .create_token(&name, r, &sightline_api::hash_token(&secret))
                .await?;
            let _ = writeln!(
                std::io::stderr(),
                "token {} ({}, role {}): keep the secret below; it is not shown again",
                rec.id,
                rec.name,
                r.as_str()
            );
            super::say(&secret);
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::List => {
            for t in store.list_tokens().await? {
                super::say(&serde_json::to_string(&t)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Revoke { id } => {
            let t = store.revoke_token(&id).await?;
            super::say(&serde_json::to_string(&t)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Seconds since the epoch, for default names.
fn epoch_seconds() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}
