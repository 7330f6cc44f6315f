//! The admin view's domain: accounts with argon2id passwords (`accounts`), the audit log of
//! what admins did (`audit`), the cap on failed sign-ins shared by every process (`login`), and
//! the live figures of every process (`figures`). The pages are `routes::admin`.

pub mod accounts;
pub mod audit;
pub mod figures;
pub mod login;

use std::time::Duration;

use login::LoginLimits;

pub const DEFAULT_SESSION_SECS: u64 = 8 * 60 * 60;
pub const DEFAULT_IDLE_SECS: u64 = 30 * 60;

/// How admin sessions last and how sign-ins are capped.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// A session ends this long after sign-in, whatever happens.
    pub session_ttl: Duration,
    /// A session ends after this long without a request.
    pub idle_ttl: Duration,
    pub login: LoginLimits,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            session_ttl: Duration::from_secs(DEFAULT_SESSION_SECS),
            idle_ttl: Duration::from_secs(DEFAULT_IDLE_SECS),
            login: LoginLimits::default(),
        }
    }
}

/// Milliseconds since the Unix epoch, as the admin and moderation tables keep times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (days to a civil date after Howard
/// Hinnant's `civil_from_days`).
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::format_utc(1_796_644_799_000),
            "2026-12-07 11:59:59 UTC"
        );
        assert_eq!(
            super::format_utc(951_782_400_000),
            "2000-02-29 00:00:00 UTC"
        );
    }
}
