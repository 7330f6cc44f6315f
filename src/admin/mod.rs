//! The admin view's domain: accounts with argon2id passwords (`accounts`), the audit log of
//! what admins did (`audit`), the cap on failed sign-ins shared by every process (`login`), the
//! live figures of every process (`figures`), and what admins do to reports and bans
//! (`moderate`) and to the challenge gate (`flags`). The pages are `routes::admin`.

pub mod accounts;
pub mod audit;
pub mod figures;
pub mod flags;
pub mod login;
pub mod moderate;

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

/// Times as the admin and moderation tables keep them (milliseconds since the Unix epoch),
/// and as the pages show them.
pub use crate::moderation::bans::rfc3339;
pub use crate::moderation::now_ms;
