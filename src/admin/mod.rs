//! The admin view's domain: accounts with argon2id passwords (`accounts`), the audit log of
//! what admins did (`audit`), the cap on failed sign-ins shared by every process (`login`), and
//! the live figures of every process (`figures`). The pages are `routes::admin`.

pub mod accounts;
pub mod audit;
pub mod login;

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
