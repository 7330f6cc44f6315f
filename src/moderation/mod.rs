//! Moderation: reports, bans and the automatic ban, over the `report` and `ban` tables
//! (`db::moderation`). `Moderation` is what the rest of the server holds: an in-memory copy of
//! the bans in force (checked without the database) and blocking methods for everything else.

pub mod bans;
pub mod reports;
pub mod seal;

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;

use crate::chat::ids::VisitorKey;
use crate::chat::ids::Who;
use crate::db::{self, moderation as rows, queries::write_transaction, DbPool};
use crate::metrics::Metrics;
use crate::secret::SecretKey;
use bans::{Ban, BanKind, BanList, NewBan};
use reports::{Line, NewReport, Report};
use seal::{Sealed, Sealer};

/// How often each process reloads the bans in force.
pub const BAN_REFRESH: Duration = Duration::from_secs(2);
/// How often old reports and ended bans are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The moderation settings (flags: `cli`; defaults: `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationConfig {
    /// Different reporters within `auto_ban_window` that ban a visitor; 0: never.
    pub auto_ban_reports: u32,
    pub auto_ban_window: Duration,
    /// How long an automatic ban lasts; zero: no automatic bans.
    pub auto_ban_duration: Duration,
    /// How long reports are kept (and ended bans, past their expiry).
    pub report_retention: Duration,
    /// Shown to banned visitors: how to appeal (text or a link).
    pub ban_appeal: Option<String>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Reports and bans for one process. Every method but `banned` and `appeal` blocks on the
/// database: call it from a blocking thread (`web::block`, `spawn_blocking`).
#[derive(Debug)]
pub struct Moderation {
    pool: DbPool,
    node: u32,
    config: ModerationConfig,
    bans: BanList,
    /// `None`: reports after a chat are not offered (see `new`).
    sealer: Option<Sealer>,
    /// The process's metrics (reports and bans counted); `None` outside a server.
    metrics: Option<Arc<Metrics>>,
}

/// Why a report made after the chat (`Moderation::file_sealed`) was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SealedRefused {
    #[error(
        "this report is not valid or has expired; reports can be made for 10 minutes after a chat"
    )]
    BadToken,
    #[error(transparent)]
    BadReport(#[from] reports::BadReport),
    #[error("this chat has been reported already")]
    AlreadyReported,
    #[error(transparent)]
    Database(anyhow::Error),
}

impl Moderation {
    /// `pool`: connections of moderation's own, so that it never queues behind the matchmaker.
    /// Without the deployment's key it seals nothing for reports after a chat (tools and
    /// tests that only read and ban); the server uses `with_secret`.
    pub fn new(pool: DbPool, node: u32, config: ModerationConfig) -> Arc<Self> {
        Self::build(pool, node, config, None, None)
    }

    /// The server's: `new`, sealing reports under a key derived from the deployment's
    /// `secret` (so that every process sharing the key file opens them), counting reports and
    /// bans in `metrics`.
    pub fn for_server(
        pool: DbPool,
        node: u32,
        config: ModerationConfig,
        secret: &SecretKey,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let sealer = Some(Sealer::new(secret));
        Self::build(pool, node, config, sealer, Some(metrics))
    }

    fn build(
        pool: DbPool,
        node: u32,
        config: ModerationConfig,
        sealer: Option<Sealer>,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Self> {
        Arc::new(Moderation {
            pool,
            node,
            config,
            bans: BanList::default(),
            sealer,
            metrics,
        })
    }

    fn count_ban(&self, ban: &Ban) {
        if let Some(metrics) = &self.metrics {
            metrics.banned(ban.kind.as_str(), ban.created_by == bans::AUTO);
        }
    }

    pub fn config(&self) -> &ModerationConfig {
        &self.config
    }

    /// The appeal text the operator configured (`--ban-appeal`).
    pub fn appeal(&self) -> Option<&str> {
        self.config.ban_appeal.as_deref()
    }

    /// Starts the thread that reloads the bans every `BAN_REFRESH` and sweeps old rows every
    /// `SWEEP_EVERY`; it ends once the `Moderation` is dropped. Loads the bans once first, so
    /// that a ban holds from the first connection after a restart (a database that does not
    /// answer then is tried again by the thread, like any reload).
    pub fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %format!("{e:#}"), "cannot load the bans yet");
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("moderation".into())
            .spawn(move || background(weak))
            .context("cannot start the moderation thread")?;
        Ok(())
    }

    /// The ban that holds this visitor (by its visitor key or its address key) now, if any.
    /// Reads memory only: never waits on the database.
    pub fn banned(&self, visitor: VisitorKey, address: VisitorKey) -> Option<Arc<Ban>> {
        self.bans.find(visitor, address, now_ms())
    }

    /// Reloads the bans in force from the database.
    pub fn refresh(&self) -> anyhow::Result<()> {
        let mut conn = db::get(&self.pool)?;
        let active = rows::active_bans(&mut conn, now_ms()).context("cannot read the bans")?;
        self.bans
            .replace(active.into_iter().filter_map(Ban::from_row));
        Ok(())
    }

    /// Bans a visitor key or an address key (`new.kind`, `new.target`; a report carries both
    /// of the reported visitor) for `new.duration_ms` from now, with a reason the visitor is
    /// shown, made by `new.created_by` (an admin's name, or `bans::AUTO`). It holds in this
    /// process at once and in the others within `BAN_REFRESH`. Refused (`bans::BadBan`) with
    /// an empty or too long reason or name, or a duration of 0.
    pub fn add_ban(&self, new: NewBan) -> anyhow::Result<Ban> {
        new.check()?;
        let ban = new.made(now_ms());
        let mut conn = db::get(&self.pool)?;
        rows::insert_ban(&mut conn, &ban.to_row()).context("cannot store the ban")?;
        self.bans.add(ban.clone());
        self.count_ban(&ban);
        Ok(ban)
    }

    /// The bans in force now, the latest expiry first.
    pub fn active_bans(&self) -> anyhow::Result<Vec<Ban>> {
        let mut conn = db::get(&self.pool)?;
        let active = rows::active_bans(&mut conn, now_ms()).context("cannot read the bans")?;
        Ok(active.into_iter().filter_map(Ban::from_row).collect())
    }

    /// Lifts a ban (at once here, within `BAN_REFRESH` elsewhere); returns whether a ban in
    /// force had that id.
    pub fn lift_ban(&self, id: i64) -> anyhow::Result<bool> {
        let mut conn = db::get(&self.pool)?;
        let lifted = rows::lift_ban(&mut conn, id).context("cannot lift the ban")?;
        self.bans.remove(id);
        Ok(lifted)
    }

    /// Reports not dismissed, newest first, at most `limit`, each with its evidence.
    pub fn open_reports(&self, limit: i64) -> anyhow::Result<Vec<Report>> {
        let mut conn = db::get(&self.pool)?;
        let open = rows::open_reports(&mut conn, limit).context("cannot read the reports")?;
        Ok(open.into_iter().map(Report::from).collect())
    }

    /// One report, dismissed or not.
    pub fn report(&self, id: i64) -> anyhow::Result<Option<Report>> {
        let mut conn = db::get(&self.pool)?;
        let row = rows::report_by_id(&mut conn, id).context("cannot read the report")?;
        Ok(row.map(Report::from))
    }

    /// Dismisses a report: it leaves the queue and no longer counts towards an automatic ban.
    /// Returns whether there was such a report.
    pub fn dismiss_report(&self, id: i64) -> anyhow::Result<bool> {
        let mut conn = db::get(&self.pool)?;
        rows::dismiss_report(&mut conn, id).context("cannot dismiss the report")
    }

    /// Seals what a visitor needs to report its partner after the chat has closed (the page
    /// posts it back to `POST /report` within `seal::REPORT_AFTER_CHAT_MS`).
    pub fn seal_for_later(
        &self,
        reported: Who,
        reporter: VisitorKey,
        evidence: Vec<Line>,
    ) -> Option<String> {
        self.sealer.as_ref()?.seal(&Sealed {
            reported: reported.visitor.as_i64(),
            reported_address: reported.address.as_i64(),
            reporter: reporter.as_i64(),
            evidence,
            until_ms: now_ms().saturating_add(seal::REPORT_AFTER_CHAT_MS),
        })
    }

    /// Files a report made after the chat, from the sealed `token` the chat's end gave the
    /// page, with the visitor's reason and note. One chat is reported once.
    pub fn file_sealed(
        &self,
        token: &str,
        reason: &str,
        note: Option<&str>,
    ) -> Result<Option<Ban>, SealedRefused> {
        let (id, sealed) = (self.sealer.as_ref())
            .and_then(|sealer| sealer.open(token))
            .ok_or(SealedRefused::BadToken)?;
        if sealed.until_ms <= now_ms() {
            return Err(SealedRefused::BadToken);
        }
        let (reason, note) = reports::check(reason, note)?;
        let report = NewReport {
            reason,
            note,
            reported: sealed.reported,
            reported_address: sealed.reported_address,
            reporter: sealed.reporter,
            evidence: sealed.evidence,
        };
        self.file(Some(id), &report).map_err(|e| {
            let duplicate = e.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<diesel::result::Error>(),
                    Some(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _
                    ))
                )
            });
            if duplicate {
                SealedRefused::AlreadyReported
            } else {
                SealedRefused::Database(e)
            }
        })
    }

    /// Stores a report; then, when the reported visitor has now been reported by
    /// `auto_ban_reports` different visitors within `auto_ban_window` and is not banned
    /// already, bans its visitor key for `auto_ban_duration` (returned). Decided from the rows,
    /// so reports taken by different processes count together.
    pub fn file_report(&self, report: &NewReport) -> anyhow::Result<Option<Ban>> {
        self.file(None, report)
    }

    /// `file_report` with the row's id given (a sealed report's), or a fresh one.
    fn file(&self, id: Option<i64>, report: &NewReport) -> anyhow::Result<Option<Ban>> {
        let now = now_ms();
        let mut row = report.row(self.node, now);
        if let Some(id) = id {
            row.id = id;
        }
        let config = &self.config;
        let auto = config.auto_ban_reports > 0 && !config.auto_ban_duration.is_zero();
        let mut conn = db::get(&self.pool)?;
        let ban = write_transaction(&mut conn, |conn| {
            rows::insert_report(conn, &row)?;
            if !auto {
                return Ok(None);
            }
            let since = now.saturating_sub(ms(config.auto_ban_window));
            let reporters = rows::reporters_since(conn, row.reported, since)?;
            if reporters < i64::from(config.auto_ban_reports)
                || rows::is_banned(conn, BanKind::Visitor.as_str(), row.reported, now)?
            {
                return Ok(None);
            }
            let ban = NewBan {
                kind: BanKind::Visitor,
                target: row.reported,
                reason: format!(
                    "reported by {reporters} visitors within {} minutes",
                    config.auto_ban_window.as_secs() / 60
                ),
                duration_ms: ms(config.auto_ban_duration),
                created_by: bans::AUTO.into(),
            }
            .made(now);
            rows::insert_ban(conn, &ban.to_row())?;
            Ok(Some(ban))
        })
        .context("cannot store the report")?;
        if let Some(metrics) = &self.metrics {
            metrics.reported(report.reason.as_str());
        }
        if let Some(ban) = &ban {
            self.bans.add(ban.clone());
            self.count_ban(ban);
        }
        Ok(ban)
    }

    /// Deletes reports older than the retention, and bans that expired longer ago than it;
    /// returns `(reports, bans)` deleted.
    pub fn sweep(&self) -> anyhow::Result<(usize, usize)> {
        let before = now_ms().saturating_sub(ms(self.config.report_retention));
        let mut conn = db::get(&self.pool)?;
        let reports = rows::sweep_reports(&mut conn, before).context("cannot sweep reports")?;
        let bans = rows::sweep_bans(&mut conn, before).context("cannot sweep bans")?;
        Ok((reports, bans))
    }
}

/// The moderation thread: reloads bans, sweeps now and then, until its `Moderation` is gone.
fn background(moderation: Weak<Moderation>) {
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        std::thread::sleep(BAN_REFRESH);
        let Some(moderation) = moderation.upgrade() else {
            return;
        };
        if let Err(e) = moderation.refresh() {
            tracing::warn!(error = %format!("{e:#}"), "cannot reload the bans");
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(std::time::Instant::now());
            match moderation.sweep() {
                Ok((0, 0)) => {}
                Ok((reports, bans)) => tracing::info!(reports, bans, "swept old reports and bans"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot sweep old reports"),
            }
        }
    }
}
