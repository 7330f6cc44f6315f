//! Who else serves this database. `serve` registers its process for as long as it runs, and
//! `serve` and `reset` look at who else is registered before they clear anything:
//! - SQLite: one process per file, an exclusive `flock` on it (SQLite's own locks are POSIX
//!   record locks, which on Linux are independent of `flock`).
//! - MySQL/MariaDB: a row per process in `node`, and the named lock
//!   `pairchat.node.<database>.<id>` held on a connection of its own. The server frees the lock
//!   when that connection closes, however the process dies; a row whose lock is free is a
//!   stopped process, and is removed. Processes with `--redis-url` may share a database; one
//!   without it may not (it could not reach the others' visitors).
//!
//! Either way the lease dies with its process, so a crashed server never blocks its own restart.

use anyhow::Context;

use super::{backend_of, redacted, sqlite_path, Backend};

/// Held for as long as the server runs (or `reset` clears).
pub struct ServerLease {
    held: Held,
    /// The other live processes on the database (MySQL).
    others: Vec<Peer>,
    /// The id this database's processes share (MySQL; names their keys in Redis).
    cluster: Option<String>,
}

/// Another live process, as its row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub node: i64,
    /// Runs with `--redis-url`.
    pub clustered: bool,
}

enum Held {
    Sqlite(#[allow(dead_code)] std::fs::File),
    #[cfg(feature = "mysql")]
    Mysql(#[allow(dead_code)] diesel::mysql::MysqlConnection),
    /// `--force` while another process holds the SQLite file.
    Nothing,
}

const IN_USE: &str = "another pairchat server is using this database";
/// The name of the named lock a process holds (MySQL), for the node id bound at `?`.
#[cfg(feature = "mysql")]
const NODE_LOCK: &str = "CONCAT('pairchat.node.', DATABASE(), '.', ?)";

impl ServerLease {
    /// Registers process `node` (`clustered`: with `--redis-url`) on the database at `url`.
    /// Refuses when the others it finds cannot share the database with it, unless `force`.
    pub fn serve(url: &str, node: u32, clustered: bool, force: bool) -> anyhow::Result<Self> {
        match backend_of(url)? {
            Backend::Sqlite => lock_sqlite(url, force),
            Backend::Mysql => {
                let lease = register_mysql(url, Some((node, clustered)))?;
                let unclustered = lease.others.iter().filter(|p| !p.clustered).count();
                let problem = match (clustered, lease.others.len(), unclustered) {
                    (_, 0, _) => None,
                    (false, n, _) => Some(format!(
                        "{IN_USE} ({}: {n} running); to run several servers on one database, \
                         start each of them with --redis-url",
                        redacted(url)
                    )),
                    (true, _, 0) => None,
                    (true, _, n) => Some(format!(
                        "{IN_USE} without --redis-url ({}: {n} running); restart it with \
                         --redis-url to run several",
                        redacted(url)
                    )),
                };
                match problem {
                    None => Ok(lease),
                    Some(why) if force => {
                        tracing::warn!("{why}; going ahead (--force)");
                        Ok(lease)
                    }
                    Some(why) => anyhow::bail!("{why} (or pass --force to go ahead anyway)"),
                }
            }
        }
    }

    /// For `reset`: refuses while any server is alive on the database, unless `force`.
    pub fn reset(url: &str, force: bool) -> anyhow::Result<Self> {
        let lease = match backend_of(url)? {
            Backend::Sqlite => lock_sqlite(url, force)?,
            Backend::Mysql => register_mysql(url, None)?,
        };
        let n = lease.others.len();
        if n > 0 {
            if !force {
                anyhow::bail!(
                    "{IN_USE} ({}: {n} running); stop it first, or pass --force to empty the \
                     tables anyway",
                    redacted(url)
                );
            }
            tracing::warn!("{IN_USE} ({n} running); emptying the tables anyway (--force)");
        }
        Ok(lease)
    }

    /// Whether this process serves the database alone: nobody else writes its rows.
    pub fn is_alone(&self) -> bool {
        !matches!(self.held, Held::Nothing) && self.others.is_empty()
    }

    /// The other live processes (MySQL; none on SQLite).
    pub fn others(&self) -> &[Peer] {
        &self.others
    }

    /// The id this database's processes share (MySQL).
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// Those of `nodes` whose process no longer holds its lock on the database: stopped, not just
/// cut off from Redis. Their rows may be swept; a live process keeps its own.
pub fn stopped(conn: &mut super::DbConn, nodes: &[i64]) -> diesel::QueryResult<Vec<i64>> {
    #[cfg(feature = "mysql")]
    if let super::DbConn::Mysql(c) = conn {
        use diesel::sql_types::{BigInt, Bool};
        use diesel::{QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Free {
            #[diesel(sql_type = Bool)]
            free: bool,
        }
        let mut out = Vec::new();
        for &node in nodes {
            let lock: Free =
                diesel::sql_query(format!("SELECT IS_USED_LOCK({NODE_LOCK}) IS NULL AS free"))
                    .bind::<BigInt, _>(node)
                    .get_result(c)?;
            if lock.free {
                out.push(node);
            }
        }
        return Ok(out);
    }
    let _ = conn;
    Ok(nodes.to_vec())
}

fn lock_sqlite(url: &str, force: bool) -> anyhow::Result<ServerLease> {
    let path = sqlite_path(url);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the SQLite database {path}"))?;
    let held = match file.try_lock() {
        Ok(()) => Held::Sqlite(file),
        Err(std::fs::TryLockError::WouldBlock) if force => {
            tracing::warn!("{IN_USE}; going ahead (--force)");
            Held::Nothing
        }
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{IN_USE} ({}); stop it first, or pass --force to clear its rows anyway",
            redacted(url)
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock the SQLite database {path}"))
        }
    };
    Ok(ServerLease {
        held,
        others: Vec::new(),
        cluster: None,
    })
}

/// Takes the node lock and writes the row of `me` (none for `reset`), removes the rows of
/// stopped processes, and reads who else is alive and the cluster id.
#[cfg(feature = "mysql")]
fn register_mysql(url: &str, me: Option<(u32, bool)>) -> anyhow::Result<ServerLease> {
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};
    use diesel::{Connection, QueryableByName, RunQueryDsl};

    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = Nullable<BigInt>)]
        got: Option<i64>,
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Bool)]
        clustered: bool,
        #[diesel(sql_type = Bool)]
        alive: bool,
    }
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }

    let mut conn = diesel::mysql::MysqlConnection::establish(url)
        .with_context(|| format!("cannot connect to {}", redacted(url)))?;
    let fail = || format!("cannot register this server on {}", redacted(url));
    // The lock lasts as long as this connection: keep the server from closing it as idle.
    diesel::sql_query("SET SESSION wait_timeout = 31536000")
        .execute(&mut conn)
        .with_context(fail)?;
    let me_id = me.map(|(node, _)| i64::from(node));
    if let Some((node, clustered)) = me {
        let got: Got = diesel::sql_query(format!("SELECT GET_LOCK({NODE_LOCK}, 0) AS got"))
            .bind::<BigInt, _>(i64::from(node))
            .get_result(&mut conn)
            .with_context(fail)?;
        if got.got != Some(1) {
            anyhow::bail!("node id {node} is taken on this database; start again");
        }
        diesel::sql_query("REPLACE INTO node (id, clustered) VALUES (?, ?)")
            .bind::<BigInt, _>(i64::from(node))
            .bind::<Bool, _>(clustered)
            .execute(&mut conn)
            .with_context(fail)?;
    }
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT id, clustered, IS_USED_LOCK({}) IS NOT NULL AS alive FROM node",
        NODE_LOCK.replace('?', "id")
    ))
    .load(&mut conn)
    .with_context(fail)?;
    for row in rows.iter().filter(|r| !r.alive) {
        diesel::sql_query("DELETE FROM node WHERE id = ?")
            .bind::<BigInt, _>(row.id)
            .execute(&mut conn)
            .with_context(fail)?;
    }
    let others = rows
        .iter()
        .filter(|r| r.alive && Some(r.id) != me_id)
        .map(|r| Peer {
            node: r.id,
            clustered: r.clustered,
        })
        .collect();
    let fresh = format!("{:016x}", fastrand::u64(..));
    diesel::sql_query("INSERT IGNORE INTO setting (name, value) VALUES ('cluster', ?)")
        .bind::<Text, _>(fresh)
        .execute(&mut conn)
        .with_context(fail)?;
    let cluster: Setting = diesel::sql_query("SELECT value FROM setting WHERE name = 'cluster'")
        .get_result(&mut conn)
        .with_context(fail)?;
    Ok(ServerLease {
        held: Held::Mysql(conn),
        others,
        cluster: Some(cluster.value),
    })
}

#[cfg(not(feature = "mysql"))]
fn register_mysql(_url: &str, _me: Option<(u32, bool)>) -> anyhow::Result<ServerLease> {
    unreachable!("backend_of refuses mysql:// without the mysql feature")
}
