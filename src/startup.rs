//! Builds the application: pool, migrations, start-up clearing, hub, HTTP server. Binds before
//! it returns, so `port()` is known (tests bind port 0).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use std::path::PathBuf;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::chat::hub::{self, HubHandle};
use crate::chat::ids::ConnIds;
use crate::chat::limits::ConnsPerIp;
use crate::chat::session::SessionConfig;
use crate::config::Settings;
use crate::db::{self, queries, DbPool};
use crate::routes::assets::ASSET_MAX_AGE_SECS;
use crate::routes::{self, security::OriginPolicy};

/// What every request handler shares.
pub struct AppState {
    pub hub: HubHandle,
    pub pool: DbPool,
    pub session: Arc<SessionConfig>,
    pub conns_per_ip: Arc<ConnsPerIp>,
    pub trust_forwarded_for: bool,
    pub origins: OriginPolicy,
    pub assets_dir: PathBuf,
}

pub struct Application {
    address: SocketAddr,
    server: Server,
    hub: HubHandle,
    settings: Settings,
}

impl Application {
    /// Prepares the database and binds; the server runs once `run_until_stopped` is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::build_pool(&settings.database_url, settings.db_pool_size)?;
        let prep_pool = pool.clone();
        let removed = tokio::task::spawn_blocking(move || prepare_database(&prep_pool))
            .await
            .context("database preparation panicked")??;
        tracing::info!(removed, "cleared stale chat rows");

        let listener = listen(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let address = listener.local_addr()?;

        let hub = hub::spawn(pool.clone(), ConnIds::new(), settings.rematch_cooldown);
        let state = web::Data::new(AppState {
            hub: hub.clone(),
            pool,
            session: Arc::new(settings.session.clone()),
            conns_per_ip: ConnsPerIp::new(settings.max_conns_per_ip),
            trust_forwarded_for: settings.trust_forwarded_for,
            origins: OriginPolicy::new(&settings.allowed_origins),
            assets_dir: settings.assets_dir.clone(),
        });
        let assets_dir = settings.assets_dir.clone();
        let mut server = HttpServer::new(move || {
            let policy = state.origins.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, srv| {
                    let is_asset = req.path().starts_with("/assets/") || req.path() == "/embed.js";
                    let request_headers = is_asset.then(|| req.headers().clone());
                    let policy = policy.clone();
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        let headers = response.headers_mut();
                        policy.add_security_headers(headers);
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
                .service(routes::assets_service(assets_dir.clone()))
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
            hub,
            settings,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn hub(&self) -> HubHandle {
        self.hub.clone()
    }

    /// A handle that stops the server the same way a signal does.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            hub: self.hub.clone(),
            server: self.server.handle(),
            within: self.settings.shutdown_timeout,
        }
    }

    /// Serves until SIGTERM or Ctrl-C (or a `Stopper`), then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stopper = self.stopper();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            stopper.stop().await;
        });
        self.server.await.context("server error")
    }
}

/// Stops accepting, closes every WebSocket with 1001 and lets the server finish.
#[derive(Clone)]
pub struct Stopper {
    hub: HubHandle,
    server: ServerHandle,
    within: std::time::Duration,
}

impl Stopper {
    pub async fn stop(&self) {
        let server = self.server.clone();
        // Stop accepting first; the graceful stop waits for the sessions we close next.
        let stopping = actix_web::rt::spawn(async move { server.stop(true).await });
        self.hub.shutdown(self.within).await;
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

fn prepare_database(pool: &DbPool) -> anyhow::Result<usize> {
    let mut conn = db::get(pool)?;
    db::run_migrations(&mut conn).context("cannot migrate the database")?;
    queries::clear_all(&mut conn).context("cannot clear stale chat rows")
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
