//! Column codecs shared by the repositories: timestamps as integer milliseconds, and JSON
//! columns read without failing the whole row.
//!
//! A JSON column is TEXT on SQLite, so a hand-edited or half-written row can hold invalid
//! JSON. Decoding it through `sqlx::types::Json` would fail the row with a driver error that
//! names neither table nor key; [`DbJson`] instead keeps the parse error so the repository can
//! report a [`CorruptRow`] for exactly that record.

use crate::error::CorruptRow;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};
use sqlx::types::Json;
use sqlx::{Decode, Postgres, Sqlite, Type};

/// A JSON column value, or the reason it is not valid JSON.
#[derive(Debug, Clone)]
pub(crate) struct DbJson(pub std::result::Result<Value, String>);

impl DbJson {
    /// The value, or a [`CorruptRow`] naming the row and column.
    pub(crate) fn value(
        self,
        table: &'static str,
        key: &str,
        column: &str,
    ) -> Result<Value, CorruptRow> {
        self.0.map_err(|e| CorruptRow {
            table,
            key: key.to_owned(),
            detail: format!("column {column}: invalid JSON: {e}"),
        })
    }
}

impl Type<Sqlite> for DbJson {
    fn type_info() -> SqliteTypeInfo {
        <&str as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <&str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for DbJson {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(DbJson(serde_json::from_str(s).map_err(|e| e.to_string())))
    }
}

impl Type<Postgres> for DbJson {
    fn type_info() -> PgTypeInfo {
        <Json<Value> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Json<Value> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for DbJson {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let Json(v) = <Json<Value> as Decode<'r, Postgres>>::decode(value)?;
        Ok(DbJson(Ok(v)))
    }
}

/// Milliseconds since the epoch as a UTC timestamp, or a [`CorruptRow`].
pub(crate) fn ts(
    ms: i64,
    table: &'static str,
    key: &str,
    column: &str,
) -> Result<DateTime<Utc>, CorruptRow> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| CorruptRow {
        table,
        key: key.to_owned(),
        detail: format!("column {column}: timestamp {ms} out of range"),
    })
}

/// Optional variant of [`ts`].
pub(crate) fn ts_opt(
    ms: Option<i64>,
    table: &'static str,
    key: &str,
    column: &str,
) -> Result<Option<DateTime<Utc>>, CorruptRow> {
    ms.map(|ms| ts(ms, table, key, column)).transpose()
}

/// A non-negative integer column as `u32`, or a [`CorruptRow`].
pub(crate) fn count_u32(
    v: i64,
    table: &'static str,
    key: &str,
    column: &str,
) -> Result<u32, CorruptRow> {
    u32::try_from(v).map_err(|_| CorruptRow {
        table,
        key: key.to_owned(),
        detail: format!("column {column}: {v} is not a valid count"),
    })
}

/// Builds a [`CorruptRow`] for a value that does not parse.
pub(crate) fn corrupt(table: &'static str, key: &str, detail: impl Into<String>) -> CorruptRow {
    CorruptRow {
        table,
        key: key.to_owned(),
        detail: detail.into(),
    }
}

/// Milliseconds since the epoch of a timestamp.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Milliseconds of a duration, saturating.
pub(crate) fn dur_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
