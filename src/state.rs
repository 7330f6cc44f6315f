//! What every request handler shares, built by `startup` and read by `routes`.

use std::sync::Arc;

use crate::admin::figures::Sampler;
use crate::admin::AdminSettings;
use crate::chat::hub::HubHandle;
use crate::chat::limits::{ConnectRate, ConnsPerIp};
use crate::chat::session::SessionConfig;
use crate::cluster::Cluster;
use crate::db::DbPool;
use crate::moderation::Moderation;
use crate::routes::assets::Assets;
use crate::routes::client::Forwarding;
use crate::routes::security::OriginPolicy;
use crate::secret::SecretKey;

/// What every request handler shares.
pub struct AppState {
    pub hub: HubHandle,
    /// This process's node id (the high half of its connection ids).
    pub node: u32,
    /// The other processes, with `--redis-url`.
    pub cluster: Option<Cluster>,
    /// For health checks alone: one connection with a short wait, never queued behind the
    /// matchmaker.
    pub health_pool: DbPool,
    pub session: Arc<SessionConfig>,
    pub conns_per_ip: Arc<ConnsPerIp>,
    pub connect_rate: ConnectRate,
    /// `POST /report`s per address.
    pub report_rate: ConnectRate,
    pub forwarding: Forwarding,
    pub origins: OriginPolicy,
    pub assets: Assets,
    pub secret: SecretKey,
    /// The admin view's sessions and sign-in limits.
    pub admin: AdminSettings,
    /// For the admin pages: a small pool of their own, never queued behind the matchmaker.
    pub admin_pool: DbPool,
    /// Signs and encrypts the admin session cookie (derived from `secret`).
    pub cookie_key: actix_web::cookie::Key,
    /// This process's live figures (and, through `cluster`, the others').
    pub figures: Sampler,
    /// Reports and bans (the bans in force are held in memory).
    pub moderation: Arc<Moderation>,
}
