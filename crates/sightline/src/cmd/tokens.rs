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
        /// Take the secret from this environment variable instead of generating one (for
        /// orchestrators that keep it in a secret: Kubernetes, compose). At least 32
        /// characters; idempotent: an existing live token with this secret is kept and
        /// nothing is printed.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
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
        TokenCmd::Create {
            role: r,
            name,
            secret_env,
        } => {
            let name = name.unwrap_or_else(|| format!("{}-{}", r.as_str(), epoch_seconds()));
            let secret = match &secret_env {
                None => new_secret(),
                Some(var) => secret_from_env(var)?,
            };
            let hash = sightline_api::hash_token(&secret);
            if secret_env.is_some()
                && let Some(t) = store.find_token_by_hash(&hash).await?
            {
                anyhow::ensure!(
                    t.role == r,
                    "a token with this secret exists with role {} (not {}); revoke it first",
                    t.role.as_str(),
                    r.as_str()
                );
                tell(&t, "already has this secret: kept");
                return Ok(ExitCode::SUCCESS);
            }
            let rec = store.create_token(&name, r, &hash).await?;
            if secret_env.is_some() {
                tell(&rec, "created with the secret of the environment");
            } else {
                tell(&rec, "keep the secret below; it is not shown again");
                super::say(&secret);
            }
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

/// One line about a token on stderr (stdout carries only a new secret).
fn tell(t: &sightline_store::TokenRecord, what: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "token {} ({}, role {}): {what}",
        t.id,
        t.name,
        t.role.as_str()
    );
}

/// A secret given through the environment (`--secret-env`): present, and long enough to be
/// one (the generated ones have 68 characters).
fn secret_from_env(var: &str) -> anyhow::Result<String> {
    let s = std::env::var(var)
        .map_err(|_| anyhow::anyhow!("--secret-env: environment variable {var} is not set"))?;
    let s = s.trim().to_owned();
    anyhow::ensure!(
        s.chars().count() >= 32 && !s.chars().any(char::is_whitespace),
        "--secret-env: {var} must hold at least 32 characters without spaces (e.g. the output of `openssl rand -hex 32`)"
    );
    Ok(s)
}

/// Seconds since the epoch, for default names.
fn epoch_seconds() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}
