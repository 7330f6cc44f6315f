//! The integration suite: the real server on port 0, a fresh database per test (SQLite, or
//! MariaDB when `TEST_MYSQL_URL` is set and the `mysql` feature is on), real WebSocket clients.

// The package denies these outside tests (Cargo.toml's [lints]); clippy counts only
// `#[cfg(test)]` code and `#[test]` functions as tests, not this crate's helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bans;
mod batch;
mod browser;
mod browser_admin;
mod browser_i18n;
mod browser_interests;
mod browser_report;
mod browser_resume;
mod browser_ui;
mod challenge;
mod cli;
mod cluster;
mod cluster_resume;
mod daemon;
mod errors;
mod flags;
mod hardening;
mod health;
mod helpers;
mod i18n;
mod installed;
mod interests;
mod limits;
mod logs;
mod matchmakers;
mod metrics;
mod model;
mod model_cluster;
mod mysql;
mod nginx;
mod nginx_resume;
mod pairing;
mod process;
mod proxy;
mod reports;
mod resume;
mod schema;
mod storage;
