//! The model registry's index: name → content hash, manifest and file path. The files
//! themselves are written and validated by the inference side; this table only records what
//! was accepted, and refuses to forget a model that a live run still uses.

use crate::codec::{DbJson, corrupt, ts};
use crate::error::{CorruptRow, Result, StoreError};
use crate::runs::check_name;
use crate::store::{Store, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

/// A model to register.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: String,
    /// Lower-case hex SHA-256 of the ONNX file.
    pub sha256: String,
    pub manifest: Value,
    /// Where the file lives in the media/model store.
    pub path: String,
    pub size_bytes: u64,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    pub name: String,
    pub sha256: String,
    pub manifest: Value,
    pub path: String,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    name: String,
    sha256: String,
    manifest: DbJson,
    path: String,
    size_bytes: i64,
    created_at: i64,
    updated_at: i64,
}

impl ModelRow {
    fn decode(self) -> Result<ModelRecord, CorruptRow> {
        const T: &str = "models";
        let k = self.name.as_str();
        Ok(ModelRecord {
            sha256: self.sha256,
            manifest: self.manifest.value(T, k, "manifest")?,
            path: self.path,
            size_bytes: u64::try_from(self.size_bytes)
                .map_err(|_| corrupt(T, k, format!("negative size {}", self.size_bytes)))?,
            created_at: ts(self.created_at, T, k, "created_at")?,
            updated_at: ts(self.updated_at, T, k, "updated_at")?,
            name: self.name,
        })
    }
}

/// Checks a lower-case hex SHA-256.
pub(crate) fn check_sha256(field: &'static str, s: &str) -> Result<()> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            field,
            "expected 64 lower-case hex digits (SHA-256)",
        ))
    }
}

impl Store {
    /// Registers a model, or replaces the entry of that name (new file, new hash).
    pub async fn upsert_model(&self, m: &NewModel) -> Result<ModelRecord> {
        check_name("model name", &m.name)?;
        check_sha256("sha256", &m.sha256)?;
        let size = i64::try_from(m.size_bytes)
            .map_err(|_| StoreError::invalid("size_bytes", "too large"))?;
        let now = self.now_ms();
        let row: ModelRow = on_pool!(self, p => sqlx::query_as(
            "INSERT INTO models (name, sha256, manifest, path, size_bytes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, \
             manifest = excluded.manifest, path = excluded.path, \
             size_bytes = excluded.size_bytes, updated_at = excluded.updated_at \
             RETURNING name, sha256, manifest, path, size_bytes, created_at, updated_at")
            .bind(&m.name)
            .bind(&m.sha256)
            .bind(Json(&m.manifest))
            .bind(&m.path)
            .bind(size)
            .bind(now)
            .fetch_one(p)
            .await?);
        tracing::info!(model = %m.name, sha256 = %m.sha256, "model registered");
        Ok(row.decode()?)
    }

    /// One model.
    pub async fn get_model(&self, name: &str) -> Result<ModelRecord> {
        let row: Option<ModelRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, sha256, manifest, path, size_bytes, created_at, updated_at \
             FROM models WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await?);
        match row {
            Some(r) => Ok(r.decode()?),
            None => Err(StoreError::not_found("model", name)),
        }
    }

    /// Every model, by name. Corrupt rows are skipped and logged.
    pub async fn list_models(&self) -> Result<Vec<ModelRecord>> {
        let rows: Vec<ModelRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, sha256, manifest, path, size_bytes, created_at, updated_at \
             FROM models ORDER BY name")
            .fetch_all(p)
            .await?);
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.decode() {
                Ok(m) => Some(m),
                Err(c) => {
                    tracing::error!(key = %c.key, detail = %c.detail, "corrupt model row skipped");
                    None
                }
            })
            .collect())
    }

    /// Ids of the unfinished runs (pending or active) whose config uses model `name`.
    pub async fn runs_using_model(&self, name: &str) -> Result<Vec<String>> {
        let rows: Vec<(String, DbJson)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, models FROM runs \
             WHERE state NOT IN ('stopped', 'completed', 'failed') ORDER BY id")
            .fetch_all(p)
            .await?);
        Ok(uses(rows, name))
    }

    /// Unregisters a model and returns its record (so the caller can delete the file).
    /// Refused with [`StoreError::Conflict`] while an unfinished run uses it.
    pub async fn delete_model(&self, name: &str) -> Result<ModelRecord> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, DbJson)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT id, models FROM runs \
             WHERE state NOT IN ('stopped', 'completed', 'failed') ORDER BY id")
            .fetch_all(&mut *c)
            .await?);
        let users = uses(rows, name);
        if !users.is_empty() {
            return Err(StoreError::conflict(
                "model",
                name,
                format!("in use by run(s) {}", users.join(", ")),
            ));
        }
        let row: Option<ModelRow> = on_tx!(&mut tx, c => sqlx::query_as(
            "DELETE FROM models WHERE name = $1 \
             RETURNING name, sha256, manifest, path, size_bytes, created_at, updated_at")
            .bind(name)
            .fetch_optional(&mut *c)
            .await?);
        let Some(row) = row else {
            return Err(StoreError::not_found("model", name));
        };
        tx.commit().await?;
        tracing::info!(model = name, "model unregistered");
        Ok(row.decode()?)
    }
}

/// Runs among `rows` whose model list contains `name` (rows whose list is unreadable are
/// counted as users: refusing a delete is the safe side).
fn uses(rows: Vec<(String, DbJson)>, name: &str) -> Vec<String> {
    rows.into_iter()
        .filter(|(_, models)| match &models.0 {
            Ok(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(name)),
            _ => true,
        })
        .map(|(id, _)| id)
        .collect()
}
