//! Storage: one connection type over SQLite and (with the `mysql` feature) MySQL/MariaDB,
//! an r2d2 pool, the embedded per-backend migrations, and the plain queries in `queries`.
//! Every function here blocks: call it from a blocking thread, never from an async worker.

pub mod queries;
pub mod schema;

use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// How long a caller waits for a free pooled connection (or a reconnect) before giving up.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long SQLite waits on a lock held by another connection before answering SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// One connection to whichever backend the URL names.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    #[cfg(feature = "mysql")]
    Mysql(MysqlConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConn>>;
pub type PooledConn = PooledConnection<ConnectionManager<DbConn>>;

/// The backend named by a database URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

/// Picks the backend from the scheme ourselves: diesel's derive would try each variant in turn,
/// and SQLite accepts almost any string as a file name.
pub fn backend_of(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("mysql://") {
        if cfg!(feature = "mysql") {
            Ok(Backend::Mysql)
        } else {
            anyhow::bail!(
                "{url:?} needs MySQL support: rebuild with `--features mysql` \
                 (Debian package default-libmysqlclient-dev)"
            )
        }
    } else if url.starts_with("sqlite://") || !url.contains("://") {
        Ok(Backend::Sqlite)
    } else {
        anyhow::bail!("unsupported database URL {url:?}: use sqlite://FILE or mysql://USER@HOST/DB")
    }
}

/// `sqlite://pairchat.db` → `pairchat.db`; a bare path is taken as it is.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Connection settings applied to every pooled SQLite connection.
#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SqlitePragmas {
    #[allow(irrefutable_let_patterns)] // refutable once the mysql feature adds a variant
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(c) = conn {
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Builds the pool. Does not fail when the database is unreachable (MySQL down at start-up):
/// connections are made on demand, so the server starts and reports 503 until it answers.
pub fn build_pool(url: &str, max_size: u32) -> anyhow::Result<DbPool> {
    let backend = backend_of(url)?;
    let conn_url = match backend {
        Backend::Sqlite => sqlite_path(url).to_owned(),
        Backend::Mysql => url.to_owned(),
    };
    let manager = ConnectionManager::<DbConn>::new(conn_url);
    let pool = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(POOL_TIMEOUT)
        .connection_customizer(Box::new(SqlitePragmas))
        .build_unchecked(manager);
    Ok(pool)
}

/// Runs the embedded migrations for the connection's backend; returns how many were applied.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len(),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => c
            .run_pending_migrations(MYSQL_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len(),
    };
    Ok(applied)
}

/// Gets a connection, with the error an operator can act on.
pub fn get(pool: &DbPool) -> anyhow::Result<PooledConn> {
    pool.get().context("cannot connect to the database")
}
