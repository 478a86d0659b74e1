//! The store's error type. Every failure is classified (STYLE pattern 1) so the engine knows
//! whether to retry (database unreachable) or not (illegal transition, lost lease), and the
//! API maps it to a status in one place. Database driver errors are sorted into those kinds
//! here, once, instead of at every call site.

use sightline_core::error::Classify;
use sightline_core::{ErrorKind, RunId, RunState};
use std::time::Duration;

/// A stored row that cannot be turned into its typed record (an unknown state string, invalid
/// JSON, an out-of-range timestamp). It is reported for that row only; the process goes on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("corrupt {table} row {key}: {detail}")]
pub struct CorruptRow {
    /// Table the row lives in.
    pub table: &'static str,
    /// Its primary key, as text.
    pub key: String,
    /// What could not be decoded.
    pub detail: String,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("unsupported database URL {url:?}: use sqlite://PATH or postgres://HOST/DB")]
    UnsupportedUrl { url: String },
    /// The backend could not be reached or refused the connection.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL with its password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The backend did not answer within the connect timeout.
    #[error("cannot connect to the database at {url}: no answer within {after:?}")]
    ConnectTimeout { url: String, after: Duration },
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The record does not exist.
    #[error("{entity} {key:?} not found")]
    NotFound { entity: &'static str, key: String },
    /// The record exists but the operation conflicts with its current state.
    #[error("{entity} {key:?}: {reason}")]
    Conflict {
        entity: &'static str,
        key: String,
        reason: String,
    },
    /// The run lifecycle forbids this transition.
    #[error("run {run}: illegal transition {from} -> {to}")]
    IllegalTransition {
        run: RunId,
        from: RunState,
        to: RunState,
    },
    /// The worker no longer owns the run (its lease expired and another worker took it over,
    /// or it was released). The worker must stop driving the run.
    #[error("run {run}: worker {worker:?} does not own it (owner: {owner:?})")]
    LeaseLost {
        run: RunId,
        worker: String,
        owner: Option<String>,
    },
    /// The run is not in the state the caller expected (someone else moved it).
    #[error("run {run}: expected state {expected}, found {actual}")]
    StateMismatch {
        run: RunId,
        expected: RunState,
        actual: String,
    },
    /// The caller passed a value the store cannot accept.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// A stored row cannot be decoded.
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    /// The database is unreachable, busy or shutting down; retrying may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure (a bug: bad SQL, a type mismatch).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub(crate) fn not_found(entity: &'static str, key: impl Into<String>) -> Self {
        StoreError::NotFound {
            entity,
            key: key.into(),
        }
    }

    pub(crate) fn conflict(
        entity: &'static str,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Conflict {
            entity,
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// True for a unique-key violation (used to turn a duplicate insert into a typed
    /// [`StoreError::Conflict`] with the entity named).
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                StoreError::Unavailable(e)
            }
            E::RowNotFound => StoreError::NotFound {
                entity: "row",
                key: String::new(),
            },
            E::Database(db)
                if is_transient_code(
                    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some(),
                    db.code().as_deref(),
                ) =>
            {
                StoreError::Unavailable(e)
            }
            E::Database(db) if matches!(db.kind(), sqlx::error::ErrorKind::ForeignKeyViolation) => {
                StoreError::InvalidInput {
                    field: "reference",
                    reason: "refers to a record that does not exist".into(),
                }
            }
            _ => StoreError::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => match StoreError::from(inner) {
                StoreError::Unavailable(inner) => StoreError::Unavailable(inner),
                StoreError::Database(inner) => {
                    StoreError::Migrate(sqlx::migrate::MigrateError::Execute(inner))
                }
                other => other,
            },
            other => StoreError::Migrate(other),
        }
    }
}

/// Error codes that mean "try again": SQLite busy/locked (5, 6 and their extended codes),
/// PostgreSQL serialization failure, deadlock, shutdown and connection exhaustion.
fn is_transient_code(sqlite: bool, code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if sqlite {
        // The primary result code is the low byte of the extended code.
        return code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    }
    matches!(
        code,
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "08000" | "08003" | "08006"
    )
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::UnsupportedUrl { .. } | StoreError::InvalidInput { .. } => {
                ErrorKind::InvalidInput
            }
            StoreError::Connect { .. }
            | StoreError::ConnectTimeout { .. }
            | StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Conflict { .. }
            | StoreError::IllegalTransition { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::StateMismatch { .. } => ErrorKind::Conflict,
            StoreError::Migrate(_) | StoreError::Corrupt(_) | StoreError::Database(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::RetryHint;

    #[test]
    fn transient_codes_are_retryable() {
        assert!(is_transient_code(true, Some("5")));
        assert!(is_transient_code(true, Some("517"))); // SQLITE_BUSY_SNAPSHOT
        assert!(is_transient_code(true, Some("6")));
        assert!(!is_transient_code(true, Some("19"))); // SQLITE_CONSTRAINT
        assert!(is_transient_code(false, Some("40001")));
        assert!(is_transient_code(false, Some("40P01")));
        assert!(!is_transient_code(false, Some("23505")));
        assert!(!is_transient_code(false, None));
    }

    #[test]
    fn kinds_and_hints() {
        let lost = StoreError::LeaseLost {
            run: RunId::parse("r1").unwrap(),
            worker: "w1".into(),
            owner: Some("w2".into()),
        };
        assert_eq!(lost.kind(), ErrorKind::Conflict);
        assert_eq!(lost.retry(), RetryHint::DoNotRetry);
        let down = StoreError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert_eq!(down.retry(), RetryHint::Retry);
        let corrupt = StoreError::from(CorruptRow {
            table: "runs",
            key: "r1".into(),
            detail: "unknown state \"paused\"".into(),
        });
        assert_eq!(corrupt.kind(), ErrorKind::Internal);
        assert!(corrupt.to_string().contains("paused"));
    }
}
