//! The media store against real components, one binary: the S3 backend against a real
//! S3-compatible server (moto's standalone server from PyPI, in `.venv-test`), the picture
//! writer through an outage, the recording index's uploads, retention on SQLite and
//! PostgreSQL, and disk survival mode on a byte budget and on a real, small filesystem.

mod common;
mod janitor;
mod s3;
