//! Versioned configs. Every write creates a new version (numbered from 1 per name, inside a
//! write transaction so concurrent writers get distinct numbers); runs pin the version they
//! started with. Bodies are the validated config as JSON, opaque to the store.

use crate::codec::{DbJson, ts};
use crate::error::{CorruptRow, Result, StoreError};
use crate::runs::check_name;
use crate::store::{Store, on_pool, on_tx};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

/// One version of a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigVersion {
    pub name: String,
    pub version: i64,
    pub body: Value,
    pub created_at: DateTime<Utc>,
}

/// A config name with its latest version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigSummary {
    pub name: String,
    pub latest_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    name: String,
    version: i64,
    body: DbJson,
    created_at: i64,
}

impl VersionRow {
    fn decode(self) -> Result<ConfigVersion, CorruptRow> {
        const T: &str = "config_versions";
        let k = format!("{}@{}", self.name, self.version);
        Ok(ConfigVersion {
            body: self.body.value(T, &k, "body")?,
            created_at: ts(self.created_at, T, &k, "created_at")?,
            name: self.name,
            version: self.version,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    name: String,
    latest_version: i64,
    created_at: i64,
    updated_at: i64,
}

impl Store {
    /// Stores `body` as the next version of config `name` (creating the config at version
    /// 1) and returns it.
    pub async fn put_config_version(&self, name: &str, body: &Value) -> Result<ConfigVersion> {
        check_name("config name", name)?;
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO configs (name, latest_version, created_at, updated_at) \
             VALUES ($1, 0, $2, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected());
        let version: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "UPDATE configs SET latest_version = latest_version + 1, updated_at = $2 \
             WHERE name = $1 RETURNING latest_version")
            .bind(name)
            .bind(now)
            .fetch_one(&mut *c)
            .await?);
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO config_versions (name, version, body, created_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(version)
            .bind(Json(body))
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected());
        tx.commit().await?;
        tracing::info!(config = name, version, "config version stored");
        Ok(ConfigVersion {
            name: name.to_owned(),
            version,
            body: body.clone(),
            created_at: DateTime::from_timestamp_millis(now).unwrap_or_default(),
        })
    }

    /// A version of config `name`; the latest when `version` is `None`.
    pub async fn get_config(&self, name: &str, version: Option<i64>) -> Result<ConfigVersion> {
        let row: Option<VersionRow> = on_pool!(self, p => match version {
            Some(v) => sqlx::query_as(
                "SELECT name, version, body, created_at FROM config_versions \
                 WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(v)
                .fetch_optional(p)
                .await?,
            None => sqlx::query_as(
                "SELECT name, version, body, created_at FROM config_versions \
                 WHERE name = $1 ORDER BY version DESC LIMIT 1")
                .bind(name)
                .fetch_optional(p)
                .await?,
        });
        match row {
            Some(r) => Ok(r.decode()?),
            None => Err(StoreError::not_found(
                "config",
                match version {
                    Some(v) => format!("{name}@{v}"),
                    None => name.to_owned(),
                },
            )),
        }
    }

    /// Every config with its latest version, by name.
    pub async fn list_configs(&self) -> Result<Vec<ConfigSummary>> {
        let rows: Vec<SummaryRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, latest_version, created_at, updated_at FROM configs ORDER BY name")
            .fetch_all(p)
            .await?);
        rows.into_iter()
            .map(|r| {
                const T: &str = "configs";
                Ok(ConfigSummary {
                    latest_version: r.latest_version,
                    created_at: ts(r.created_at, T, &r.name, "created_at")?,
                    updated_at: ts(r.updated_at, T, &r.name, "updated_at")?,
                    name: r.name,
                })
            })
            .collect()
    }

    /// Every version of config `name`, oldest first.
    pub async fn list_config_versions(&self, name: &str) -> Result<Vec<ConfigVersion>> {
        let rows: Vec<VersionRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, version, body, created_at FROM config_versions \
             WHERE name = $1 ORDER BY version")
            .bind(name)
            .fetch_all(p)
            .await?);
        if rows.is_empty() {
            return Err(StoreError::not_found("config", name));
        }
        rows.into_iter()
            .map(|r| r.decode().map_err(StoreError::from))
            .collect()
    }
}
