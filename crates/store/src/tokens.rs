//! API bearer tokens. Only a hash of each token is stored (the API hashes the presented token
//! and looks the hash up), so a leaked database does not leak usable credentials.

use crate::codec::{corrupt, ts, ts_opt};
use crate::error::{CorruptRow, Result, StoreError};
use crate::models::check_sha256;
use crate::store::{Store, on_pool};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Everything.
    Admin,
    /// Runs, configs, inference.
    Operator,
    /// Read-only.
    Viewer,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Operator => "operator",
            TokenRole::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(TokenRole::Admin),
            "operator" => Some(TokenRole::Operator),
            "viewer" => Some(TokenRole::Viewer),
            _ => None,
        }
    }
}

/// A stored token (without its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: TokenRole,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TokenRow {
    fn decode(self) -> Result<TokenRecord, CorruptRow> {
        const T: &str = "api_tokens";
        let k = self.id.as_str();
        Ok(TokenRecord {
            name: self.name,
            role: TokenRole::parse(&self.role)
                .ok_or_else(|| corrupt(T, k, format!("unknown role {:?}", self.role)))?,
            created_at: ts(self.created_at, T, k, "created_at")?,
            last_used_at: ts_opt(self.last_used_at, T, k, "last_used_at")?,
            revoked_at: ts_opt(self.revoked_at, T, k, "revoked_at")?,
            id: self.id,
        })
    }
}

impl Store {
    /// Stores a token by the lower-case hex SHA-256 of its secret. Fails with
    /// [`StoreError::Conflict`] if that hash is already stored.
    pub async fn create_token(
        &self,
        name: &str,
        role: TokenRole,
        hash: &str,
    ) -> Result<TokenRecord> {
        check_sha256("token hash", hash)?;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(StoreError::invalid(
                "token name",
                "1-128 printable characters",
            ));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.now_ms();
        let res = on_pool!(self, p => sqlx::query_as::<_, TokenRow>(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, name, role, created_at, last_used_at, revoked_at")
            .bind(&id)
            .bind(name)
            .bind(role.as_str())
            .bind(hash)
            .bind(now)
            .fetch_one(p)
            .await);
        match res.map_err(StoreError::from) {
            Ok(row) => {
                tracing::info!(token_id = %id, name, role = role.as_str(), "API token created");
                Ok(row.decode()?)
            }
            Err(e) if e.is_unique_violation() => Err(StoreError::conflict(
                "token",
                name,
                "a token with this secret already exists",
            )),
            Err(e) => Err(e),
        }
    }

    /// The unrevoked token with this hash, if any.
    pub async fn find_token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let row: Option<TokenRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(p)
            .await?);
        Ok(row.map(TokenRow::decode).transpose()?)
    }

    /// Records that the token was used now.
    pub async fn touch_token(&self, id: &str) -> Result<()> {
        let now = self.now_ms();
        on_pool!(self, p => sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens \
             ORDER BY created_at, id")
            .fetch_all(p)
            .await?);
        rows.into_iter()
            .map(|r| r.decode().map_err(StoreError::from))
            .collect()
    }

    /// Revokes a token (idempotent) and returns it.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
        let now = self.now_ms();
        let row: Option<TokenRow> = on_pool!(self, p => sqlx::query_as(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING id, name, role, created_at, last_used_at, revoked_at")
            .bind(id)
            .bind(now)
            .fetch_optional(p)
            .await?);
        match row {
            Some(r) => {
                tracing::info!(token_id = id, "API token revoked");
                Ok(r.decode()?)
            }
            None => Err(StoreError::not_found("token", id)),
        }
    }
}
