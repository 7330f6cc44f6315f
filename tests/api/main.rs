//! The integration suite: the real server on port 0, a fresh database per test (SQLite, or
//! MariaDB when `TEST_MYSQL_URL` is set and the `mysql` feature is on), real WebSocket clients.

mod browser;
mod browser_ui;
mod cli;
mod daemon;
mod errors;
mod flags;
mod hardening;
mod health;
mod helpers;
mod limits;
mod model;
mod mysql;
mod pairing;
mod process;
mod proxy;
mod storage;
