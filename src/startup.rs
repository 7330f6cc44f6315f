//! Builds the application (the handlers' shared state is `state::AppState`): pool, migrations,
//! the listening sockets, the database lease, start-up clearing, the cluster (with
//! `--redis-url`), hub, HTTP server (and the metrics listener's, when asked for). Binds before it clears anything (a second server on a
//! taken port fails without touching the live one's rows), and returns bound, so `port()` is
//! known (tests bind port 0).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::admin::figures::Sampler;
use crate::chat::hub::{self, HubHandle};
use crate::chat::ids::ConnIds;
use crate::chat::limits::{ConnectRate, ConnsPerIp};
use crate::chat::matchmaker::Sharing;
use crate::cluster::Cluster;
use crate::config::{Settings, CONNECT_BURST_SECONDS};
use crate::db::{self, lease::ServerLease, queries};
use crate::memory;
use crate::metrics::Metrics;
use crate::moderation::challenge::Gate;
use crate::moderation::Moderation;

use crate::routes::assets::{Assets, ASSET_MAX_AGE_SECS};
use crate::routes::client::Forwarding;
use crate::routes::{self, security::OriginPolicy};
use crate::secret::SecretKey;
use crate::state::AppState;

pub struct Application {
    address: SocketAddr,
    server: Server,
    /// The metrics listener (`--metrics-bind`), when there is one.
    metrics: Option<(SocketAddr, Server)>,
    hub: HubHandle,
    cluster: Option<Cluster>,
    settings: Settings,
    /// Held while the server runs: no other server clears these tables meanwhile.
    _lease: ServerLease,
}

/// Database connections of the admin pages.
const ADMIN_POOL_SIZE: u32 = 2;
/// Database connections for reports and bans.
const MODERATION_POOL_SIZE: u32 = 2;
/// Open files kept free for the listener, the database and logs when `--max-connections` is
/// left to the open-files limit.
const SPARE_FILES: u64 = 64;
/// `--max-connections` where the open-files limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 10_000;

impl Application {
    /// Prepares the database and binds; the server runs once `run_until_stopped` is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Everything that can be refused is checked before anything is touched.
        settings.validate()?;
        let origins =
            OriginPolicy::new(&settings.allowed_origins, settings.public_origin.as_deref())
                .map_err(anyhow::Error::msg)?;
        let assets = Assets::new(settings.assets_dir.as_deref())?;
        let secret = match &settings.secret_key_file {
            Some(path) => SecretKey::load_or_create(path)?,
            None => SecretKey::random()?,
        };
        let pool = db::build_pool(&settings.database_url, settings.db_pool_size)?;
        let health_pool = db::build_health_pool(&settings.database_url)?;
        let admin_pool = db::build_pool(&settings.database_url, ADMIN_POOL_SIZE)?;
        let prep_pool = pool.clone();
        let url = settings.database_url.clone();
        tokio::task::spawn_blocking(move || {
            db::check_connect(&url)?;
            db::run_migrations(&mut *db::get(&prep_pool)?).context("cannot migrate the database")
        })
        .await
        .context("database preparation panicked")??;

        let listener = listen(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let address = listener.local_addr()?;
        let metrics_listener = match &settings.metrics_bind {
            Some(bind) => {
                let listener =
                    listen(bind).with_context(|| format!("cannot listen on {bind} for metrics"))?;
                Some((listener.local_addr()?, listener))
            }
            None => None,
        };

        let ids = ConnIds::new();
        let node = ids.node();
        let clustered = settings.cluster.is_some();
        let prep_pool = pool.clone();
        let url = settings.database_url.clone();
        let force = settings.force;
        let (lease, removed) = tokio::task::spawn_blocking(move || {
            let lease = ServerLease::serve(&url, node, clustered, force)?;
            let mut conn = db::get(&prep_pool)?;
            // Only the rows of processes that are not alive go.
            let removed = if lease.others().is_empty() {
                queries::clear_all(&mut conn)
            } else {
                let alive: Vec<i64> = lease.others().iter().map(|p| p.node).collect();
                queries::clear_all_but(&mut conn, &[alive, vec![i64::from(node)]].concat())
            }
            .context("cannot clear stale chat rows")?;
            anyhow::Ok((lease, removed))
        })
        .await
        .context("database preparation panicked")??;
        tracing::info!(
            removed,
            node,
            others = lease.others().len(),
            "cleared stale chat rows"
        );

        let sqlite = matches!(
            db::backend_of(&settings.database_url),
            Ok(db::Backend::Sqlite)
        );
        let sharing = if sqlite || (lease.is_alone() && !clustered) {
            Sharing::Alone
        } else {
            Sharing::Shared // other servers write the same rows (a cluster, or --force)
        };
        let metrics = Arc::new(Metrics::new(node));
        let cluster = match &settings.cluster {
            Some(config) => {
                let name = lease.cluster().unwrap_or("pairchat").to_owned();
                Some(
                    Cluster::join(config.clone(), &name, node, pool.clone(), metrics.clone())
                        .await?,
                )
            }
            None => None,
        };
        let member = cluster.as_ref().map(|(c, _)| c.clone());
        // Moderation has connections of its own: a report or the ban reload never waits
        // behind the matchmaker, nor the matchmaker behind them.
        let moderation_pool = db::build_pool(&settings.database_url, MODERATION_POOL_SIZE)?;
        let moderation = Moderation::for_server(
            moderation_pool,
            node,
            settings.moderation.clone(),
            &secret,
            metrics.clone(),
        );
        let starting = moderation.clone();
        tokio::task::spawn_blocking(move || starting.start())
            .await
            .context("moderation start-up panicked")??;
        let challenges = Gate::new(
            settings.challenge,
            &secret,
            metrics.clone(),
            pool.clone(),
            member.as_ref().map(Cluster::redis),
        );
        if challenges.is_on() {
            let gate = challenges.clone();
            tokio::task::spawn_blocking(move || gate.refresh_flags())
                .await
                .context("reading the challenge flags panicked")?
                .context("cannot read the challenge flags")?;
            challenges
                .spawn_flag_refresher()
                .context("cannot start the challenge flags thread")?;
        }
        let hub = hub::spawn_with(
            pool.clone(),
            ids,
            sharing,
            hub::Patience {
                rematch_cooldown: settings.rematch_cooldown,
                interest_fallback: settings.interest_fallback,
            },
            settings.resume_grace,
            metrics,
            cluster,
        );
        memory::spawn_trimmer(hub.clone());
        let metrics = match metrics_listener {
            Some((address, listener)) => {
                Some((address, routes::metrics::server(listener, hub.clone())?))
            }
            None => None,
        };
        let max_connections = match settings.max_connections {
            0 => open_files_room(),
            n => n,
        };
        let connect_rate = settings.connects_per_sec_per_ip;
        let state = web::Data::new(AppState {
            hub: hub.clone(),
            node,
            cluster: member.clone(),
            health_pool,
            session: Arc::new(settings.session.clone()),
            conns_per_ip: ConnsPerIp::new(settings.max_conns_per_ip, max_connections),
            connect_rate: ConnectRate::new(
                connect_rate,
                (connect_rate * CONNECT_BURST_SECONDS)
                    .ceil()
                    .min(f64::from(u32::MAX)) as u32,
            ),
            report_rate: ConnectRate::new(
                routes::report::REPORTS_PER_SEC,
                routes::report::REPORT_BURST,
            ),
            forwarding: Forwarding::new(settings.trust_forwarded_for, &settings.trusted_proxies),
            origins,
            assets: assets.clone(),
            admin: settings.admin.clone(),
            admin_pool,
            cookie_key: secret.cookie_key(),
            figures: Sampler::spawn(hub.clone(), node, member.clone()),
            secret,
            moderation,
            challenges,
        });
        let mut server = HttpServer::new(move || {
            let policy = state.origins.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, srv| {
                    let is_asset = req.path().starts_with("/assets/") || req.path() == "/embed.js";
                    let is_admin = routes::admin::is_admin_path(req.path());
                    let request_headers = is_asset.then(|| req.headers().clone());
                    let policy = policy.clone();
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        let headers = response.headers_mut();
                        if is_admin {
                            policy.add_admin_headers(headers);
                        } else {
                            policy.add_security_headers(headers);
                        }
                        if let Some(request_headers) = request_headers {
                            policy.add_cors_headers(&request_headers, headers);
                            headers.insert(
                                header::CACHE_CONTROL,
                                HeaderValue::from_str(&format!(
                                    "public, max-age={ASSET_MAX_AGE_SECS}"
                                ))
                                .unwrap_or(HeaderValue::from_static("no-cache")),
                            );
                        }
                        Ok(response)
                    }
                })
                .configure(routes::configure)
                .configure(|cfg| routes::admin::configure(cfg, &state))
                .configure(|cfg| assets.configure(cfg))
        })
        .disable_signals()
        // Chat frames are small and latency matters: no Nagle delay (which, against the
        // client's delayed ACK, put a 40 ms stall under load in the tail).
        .tcp_nodelay(true)
        .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1));
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            address,
            server,
            metrics,
            hub,
            cluster: member,
            settings,
            _lease: lease,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Where `GET /metrics` is served; `None` without `--metrics-bind`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(address, _)| *address)
    }

    pub fn hub(&self) -> HubHandle {
        self.hub.clone()
    }

    /// A handle that stops the server the same way a signal does.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            hub: self.hub.clone(),
            cluster: self.cluster.clone(),
            server: self.server.handle(),
            within: self.settings.shutdown_timeout,
        }
    }

    /// Serves until SIGTERM or Ctrl-C (or a `Stopper`), then shuts down gracefully; the
    /// metrics listener stops once the main server has.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stopper = self.stopper();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            stopper.stop().await;
        });
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let served = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        served.context("server error")
    }
}

/// Stops accepting, closes every WebSocket with 1001 and lets the server finish.
#[derive(Clone)]
pub struct Stopper {
    hub: HubHandle,
    cluster: Option<Cluster>,
    server: ServerHandle,
    within: std::time::Duration,
}

impl Stopper {
    pub async fn stop(&self) {
        let server = self.server.clone();
        // Stop accepting first; the graceful stop waits for the sessions we close next.
        let stopping = actix_web::rt::spawn(async move { server.stop(true).await });
        self.hub.shutdown(self.within).await;
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        let _ = stopping.await;
    }
}

/// Connections the kernel queues before `accept`. std's 128 overflowed under bursts of arrivals
/// (1,812 drops in a benchmark: each a SYN retry, a second of delay for that visitor).
const LISTEN_BACKLOG: i32 = 4096;

fn listen(bind: &str) -> anyhow::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let address = bind
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{bind} names no address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Connections the open-files limit leaves room for (one file each).
fn open_files_room() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let room = limit.rlim_cur.saturating_sub(SPARE_FILES).max(1);
            return usize::try_from(room).unwrap_or(usize::MAX);
        }
    }
    FALLBACK_MAX_CONNECTIONS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
