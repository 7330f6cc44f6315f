//! One live server per database: `serve` holds a lease on the database for as long as it runs,
//! and `serve` and `reset` refuse to clear the tables of a database another process holds,
//! unless told `--force`. The lease dies with its process, however it dies, so a crashed
//! server never blocks its own restart:
//! - SQLite: an exclusive `flock` on the database file (SQLite's own locks are POSIX record
//!   locks, which on Linux are independent of `flock`).
//! - MySQL/MariaDB: the named lock `GET_LOCK('pairchat.serve.<database>')` on a connection of
//!   its own; the server frees it when that connection closes.

use anyhow::Context;

use super::{backend_of, redacted, sqlite_path, Backend};

/// Held for as long as the server runs (or `reset` clears).
pub struct ServerLease {
    _held: Held,
}

enum Held {
    Sqlite(#[allow(dead_code)] std::fs::File),
    #[cfg(feature = "mysql")]
    Mysql(#[allow(dead_code)] diesel::mysql::MysqlConnection),
    /// `--force` while another process holds the lease.
    Nothing,
}

const IN_USE: &str = "another pairchat server is using this database";

impl ServerLease {
    /// Whether this process holds the lease: no other server writes the rows (`--force`
    /// going ahead without it says no).
    pub fn is_held(&self) -> bool {
        !matches!(self._held, Held::Nothing)
    }

    /// Takes the lease on the database at `url`. When another process holds it: an error, or
    /// with `force` a warning and no lease.
    pub fn take(url: &str, force: bool) -> anyhow::Result<ServerLease> {
        let held = match backend_of(url)? {
            Backend::Sqlite => lock_sqlite(sqlite_path(url))?.map(Held::Sqlite),
            Backend::Mysql => lock_mysql(url)?,
        };
        match held {
            Some(held) => Ok(ServerLease { _held: held }),
            None if force => {
                tracing::warn!("{IN_USE}; going ahead (--force)");
                Ok(ServerLease {
                    _held: Held::Nothing,
                })
            }
            None => anyhow::bail!(
                "{IN_USE} ({}); stop it first, or pass --force to clear its rows anyway",
                redacted(url)
            ),
        }
    }
}

fn lock_sqlite(path: &str) -> anyhow::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the SQLite database {path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock the SQLite database {path}"))
        }
    }
}

#[cfg(feature = "mysql")]
fn lock_mysql(url: &str) -> anyhow::Result<Option<Held>> {
    use diesel::sql_types::{Integer, Nullable};
    use diesel::{Connection, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = Nullable<Integer>)]
        got: Option<i32>,
    }
    let mut conn = diesel::mysql::MysqlConnection::establish(url)
        .with_context(|| format!("cannot connect to {}", redacted(url)))?;
    // The lease lasts as long as this connection: keep the server from closing it as idle.
    diesel::sql_query("SET SESSION wait_timeout = 31536000")
        .execute(&mut conn)
        .context("cannot set up the lease connection")?;
    let got: Got =
        diesel::sql_query("SELECT GET_LOCK(CONCAT('pairchat.serve.', DATABASE()), 0) AS got")
            .get_result(&mut conn)
            .context("cannot take the database lease")?;
    Ok((got.got == Some(1)).then_some(Held::Mysql(conn)))
}

#[cfg(not(feature = "mysql"))]
fn lock_mysql(_url: &str) -> anyhow::Result<Option<Held>> {
    unreachable!("backend_of refuses mysql:// without the mysql feature")
}
