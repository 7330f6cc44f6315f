//! Storage: one connection type over SQLite and (with the `mysql` feature) MySQL/MariaDB,
//! an r2d2 pool, the embedded per-backend migrations, and the plain queries in `queries`.
//! Every function here blocks: call it from a blocking thread, never from an async worker.

pub mod admin;
pub mod lease;
pub mod moderation;
#[cfg(feature = "mysql")]
pub mod mysql_batch;
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

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redacted("mysql://app:S3cretPass@db.example:3306/chat"),
            "mysql://app:***@db.example:3306/chat"
        );
        assert_eq!(
            redacted("mysql://app:p%40ss@db/chat"),
            "mysql://app:***@db/chat"
        );
        assert_eq!(
            redacted("mysql://root@127.0.0.1/x"),
            "mysql://root@127.0.0.1/x"
        );
        assert_eq!(redacted("sqlite://pairchat.db"), "sqlite://pairchat.db");
        assert_eq!(redacted("mysql://a:b:c@h/d?x=@"), "mysql://a:***@h/d?x=@");
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// How long a caller waits for a free pooled connection (or a reconnect) before giving up.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long SQLite waits on a lock held by another connection before answering SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// How long a MySQL statement waits for a row lock another transaction holds.
#[cfg(feature = "mysql")]
const MYSQL_LOCK_WAIT_SECS: u32 = 5;

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
                "{:?} needs MySQL support: rebuild with `--features mysql` \
                 (Debian package default-libmysqlclient-dev)",
                redacted(url)
            )
        }
    } else if url.starts_with("sqlite://") || !url.contains("://") {
        Ok(Backend::Sqlite)
    } else {
        anyhow::bail!(
            "unsupported database URL {:?}: use sqlite://FILE or mysql://USER@HOST/DB",
            redacted(url)
        )
    }
}

/// A database URL fit for a log line or an error: any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `sqlite://pairchat.db` → `pairchat.db`; a bare path is taken as it is.
pub(crate) fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").unwrap_or(url)
}

/// Session settings applied to every pooled connection.
///
/// On MySQL, READ COMMITTED: a locking read takes no gap locks, so matchmakers on other
/// processes inserting waiting chats do not deadlock on them, and a plain read sees what others
/// have committed (the re-check after a batch relies on it). A lock wait gives up after a few
/// seconds (error 1205, retried), not InnoDB's default 50.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        let settings = match conn {
            DbConn::Sqlite(_) => format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
            ),
            #[cfg(feature = "mysql")]
            DbConn::Mysql(_) => format!(
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                 SET SESSION innodb_lock_wait_timeout = {MYSQL_LOCK_WAIT_SECS};"
            ),
        };
        conn.batch_execute(&settings)
            .map_err(diesel::r2d2::Error::QueryError)
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
        .connection_customizer(Box::new(SessionSettings))
        .build_unchecked(manager);
    Ok(pool)
}

/// How long a health check waits for its connection (or a reconnect).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// A pool of one connection for health checks alone, so that a check is never queued behind
/// the matchmaker and answers 503 within a second of the database going quiet.
pub fn build_health_pool(url: &str) -> anyhow::Result<DbPool> {
    let backend = backend_of(url)?;
    let conn_url = match backend {
        Backend::Sqlite => sqlite_path(url).to_owned(),
        Backend::Mysql => url.to_owned(),
    };
    Ok(Pool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(HEALTH_TIMEOUT)
        .connection_customizer(Box::new(SessionSettings))
        .build_unchecked(ConnectionManager::<DbConn>::new(conn_url)))
}

/// Runs the embedded migrations for the connection's backend; returns how many were applied.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .len(),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => {
            // Servers started together must not run the same migration twice: one at a time,
            // under a named lock (freed with the connection if the process dies).
            use diesel::RunQueryDsl;
            diesel::sql_query("DO GET_LOCK(CONCAT('pairchat.migrate.', DATABASE()), 60)")
                .execute(c)
                .context("cannot take the migration lock")?;
            let applied = c
                .run_pending_migrations(MYSQL_MIGRATIONS)
                .map(|done| done.len())
                .map_err(|e| anyhow::anyhow!("{e}"));
            let _ = diesel::sql_query("DO RELEASE_LOCK(CONCAT('pairchat.migrate.', DATABASE()))")
                .execute(c);
            applied?
        }
    };
    Ok(applied)
}

/// Connects once, straight to the backend, so that start-up reports why a database cannot be
/// reached (SQLite's or MySQL's own reason, the URL without its password) at once: the pool
/// would wait its timeout and then say only "invalid connection url".
pub fn check_connect(url: &str) -> anyhow::Result<()> {
    use diesel::Connection;
    match backend_of(url)? {
        Backend::Sqlite => {
            let path = sqlite_path(url);
            SqliteConnection::establish(path)
                .map(drop)
                .with_context(|| format!("cannot open the SQLite database {path:?}"))
        }
        #[cfg(feature = "mysql")]
        Backend::Mysql => MysqlConnection::establish(url)
            .map(drop)
            .with_context(|| format!("cannot connect to {}", redacted(url))),
        #[cfg(not(feature = "mysql"))]
        Backend::Mysql => unreachable!("backend_of refuses mysql:// without the mysql feature"),
    }
}

/// Gets a connection, with the error an operator can act on.
pub fn get(pool: &DbPool) -> anyhow::Result<PooledConn> {
    pool.get().context("cannot connect to the database")
}
