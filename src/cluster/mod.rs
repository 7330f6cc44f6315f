//! Several server processes on one database and one Redis (`--redis-url`), as if they were one.
//! The database's rows say who waits and who talks, as on one process; what crosses between
//! processes goes through Redis:
//! - `relay`: what this process sends to others, appended to their streams in order;
//! - `inbox`: its own stream, read from its last id and handed to the hub in order;
//! - `liveness`: who is alive, the cluster's online count, and sweeping the dead (adopting
//!   their chats whose two visitors were both on them, recorded by `held`);
//! - `wire`: the envelopes and the keys.
//!
//! The hub meets this module in two places only: a partner on another process is a
//! `RemoteLink` (behind `chat::link::PartnerLink`), and what arrives is an `Event`. Without
//! `--redis-url` none of it runs.

mod held;
mod inbox;
mod liveness;
pub mod relay;
pub mod wire;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use crate::chat::ids::ConnId;
use crate::chat::link::{Delivery, OutboxSender};
use crate::db::DbPool;
use crate::metrics::Metrics;
use relay::{Queued, Receipt, RelaySender};
use wire::{Envelope, Keys};

/// Events queued from Redis to the hub.
const EVENT_CAPACITY: usize = 1_024;

/// How a process takes part in the cluster (flags: `--redis-url`, `--node-heartbeat-ms`, …).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    /// How often this process says it is alive.
    pub heartbeat: Duration,
    /// A process silent this long is dead.
    pub node_timeout: Duration,
    /// How long a message may wait for Redis before it is refused `undelivered`.
    pub relay_timeout: Duration,
}

/// What the cluster tells the hub, in order.
#[derive(Debug)]
pub enum Event {
    /// Entries of this process's stream, in order.
    Inbound(Vec<Envelope>),
    /// These processes are dead: their visitors' partners here are lost.
    Down(Vec<u32>),
    /// The others took this process for dead (its link was down too long) and swept its rows.
    Rejoined,
    /// Visitors on other processes may be reachable that were not: Redis answers again, or a
    /// process taken for dead was heard from. Those waiting look again.
    Reachable,
}

/// What this process knows of the others, shared by the hub, the matchmaker and liveness.
#[derive(Debug, Default)]
pub struct View {
    alive: RwLock<HashSet<u32>>,
    /// Processes taken for dead, until they are heard from again (one only cut off from
    /// Redis for a while comes back with the same id).
    dead: RwLock<HashSet<u32>>,
    pub redis_ok: AtomicBool,
    /// This process's connections (the hub sets it) and the other live processes' (liveness).
    pub local_online: AtomicUsize,
    others_online: AtomicUsize,
}

impl View {
    fn alive(&self) -> HashSet<u32> {
        self.alive.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Returns whether a process taken for dead is among `alive`.
    fn set_alive(&self, alive: HashSet<u32>, others_online: usize) -> bool {
        let mut back = false;
        if let Ok(mut dead) = self.dead.write() {
            let before = dead.len();
            dead.retain(|n| !alive.contains(n));
            back = dead.len() < before;
        }
        if let Ok(mut a) = self.alive.write() {
            *a = alive;
        }
        self.others_online.store(others_online, Ordering::Relaxed);
        back
    }

    fn reachable(&self, me: u32, node: u32) -> bool {
        node == me || (self.redis_ok.load(Ordering::Relaxed) && !self.is_dead(node))
    }

    fn bury(&self, nodes: &[u32]) {
        if let Ok(mut dead) = self.dead.write() {
            dead.extend(nodes);
        }
    }

    fn is_dead(&self, node: u32) -> bool {
        self.dead.read().is_ok_and(|d| d.contains(&node))
    }
}

/// This process's membership of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node: u32,
    keys: Keys,
    view: Arc<View>,
    relay: RelaySender,
    redis: ConnectionManager,
    held: mpsc::Sender<held::Op>,
    config: ClusterConfig,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster `cluster` (the id its database keeps) as process `node`: connects,
    /// says it is alive, and starts the relay, the reader of its stream and the heartbeat.
    /// Events for the hub come on the receiver.
    pub async fn join(
        config: ClusterConfig,
        cluster: &str,
        node: u32,
        pool: DbPool,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Cluster, mpsc::Receiver<Event>)> {
        let client = redis::Client::open(config.redis_url.as_str())
            .with_context(|| format!("invalid --redis-url {}", config.redis_url))?;
        let manager = |response: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(response))
                .set_max_delay(Duration::from_millis(500))
        };
        let redis =
            ConnectionManager::new_with_config(client.clone(), manager(config.relay_timeout))
                .await
                .with_context(|| {
                    format!("cannot reach Redis at {} (--redis-url)", config.redis_url)
                })?;
        let keys = Keys::new(cluster);
        let view = Arc::new(View::default());
        view.redis_ok.store(true, Ordering::Relaxed);
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);

        // Liveness on its own thread and runtime, with its own connection.
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let live_client = client.clone();
        let (live_keys, live_view, live_events, live_config, live_metrics) = (
            keys.clone(),
            view.clone(),
            events_tx.clone(),
            config.clone(),
            metrics.clone(),
        );
        std::thread::Builder::new()
            .name("liveness".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let heartbeat = live_config.heartbeat;
                    let redis =
                        ConnectionManager::new_with_config(live_client, manager(heartbeat)).await;
                    let mut liveness = match redis {
                        Ok(redis) => liveness::Liveness {
                            redis,
                            keys: live_keys,
                            node,
                            config: live_config,
                            view: live_view,
                            events: live_events,
                            pool,
                            metrics: live_metrics,
                        },
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    if let Err(e) = liveness.first_beat().await {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    liveness.run().await;
                });
            })
            .context("cannot start the liveness thread")?;
        ready
            .await
            .context("the liveness thread stopped")?
            .context("cannot say this process is alive in Redis")?;

        let held_metrics = metrics.clone();
        let (relay, relay_rx) = relay::queue();
        let (acks, acks_rx) = relay::acks();
        tokio::spawn(relay::run(
            relay_rx,
            acks_rx,
            redis.clone(),
            keys.clone(),
            config.relay_timeout,
            metrics.clone(),
        ));
        tokio::spawn(inbox::run(
            client,
            keys.inbox(node),
            events_tx,
            acks,
            metrics,
        ));
        let (held_tx, held_rx) = mpsc::channel(held::CAPACITY);
        tokio::spawn(held::run(
            held_rx,
            redis.clone(),
            keys.held(node),
            held_metrics,
        ));
        let cluster = Cluster {
            inner: Arc::new(Inner {
                node,
                keys,
                view,
                relay,
                redis,
                held: held_tx,
                config,
            }),
        };
        Ok((cluster, events))
    }

    pub fn node(&self) -> u32 {
        self.inner.node
    }

    /// Whether `node`'s waiting visitors may be claimed and its visitors reached: this process
    /// always; another unless it is dead, while the link to Redis is up. (A process that
    /// started a moment ago is not in the view yet, and is reachable all the same.)
    pub fn reachable(&self, node: u32) -> bool {
        self.inner.view.reachable(self.inner.node, node)
    }

    /// The live processes this one knows of, itself included.
    pub fn processes(&self) -> usize {
        self.inner.view.alive().len()
    }

    /// Records (`Some`) or forgets the chat `key` whose two visitors are both here, for the
    /// process that sweeps this one should it die (`held`). Never waits.
    pub fn hold_chat(&self, key: i64, sides: Option<&[wire::AdoptedSide; 2]>) {
        let op = match sides {
            Some(sides) => held::Op::Set(key, serde_json::to_string(sides).unwrap_or_default()),
            None => held::Op::Del(key),
        };
        if self.inner.held.try_send(op).is_err() {
            tracing::debug!("the record of held chats is behind: a change was dropped");
        }
    }

    /// How long after a process dies the others may take to adopt its chats: until it is
    /// found dead (its timeout and a heartbeat of each side), and swept.
    pub fn adoption_within(&self) -> Duration {
        let c = &self.inner.config;
        c.node_timeout + 2 * c.heartbeat + Duration::from_secs(1)
    }

    /// The other live processes this one can reach, in order of node id.
    pub fn others(&self) -> Vec<u32> {
        let mut others: Vec<u32> = self
            .inner
            .view
            .alive()
            .into_iter()
            .filter(|&node| node != self.inner.node && self.reachable(node))
            .collect();
        others.sort_unstable();
        others
    }

    /// A connection to the cluster's Redis (shared, reconnecting by itself) and its keys, for
    /// what else the processes count together (the challenge gate).
    pub fn redis(&self) -> (ConnectionManager, Keys) {
        (self.inner.redis.clone(), self.inner.keys.clone())
    }

    pub fn redis_ok(&self) -> bool {
        self.inner.view.redis_ok.load(Ordering::Relaxed)
    }

    /// The view the matchmaker consults (`reachable`, from its own thread).
    pub fn claimable(&self) -> impl Fn(u32) -> bool + Send + Sync + 'static {
        let (me, view) = (self.inner.node, self.inner.view.clone());
        move |node| view.reachable(me, node)
    }

    /// The hub's count of this process's connections; the cluster's in all, for `online`.
    pub fn online(&self, local: usize) -> usize {
        let view = &self.inner.view;
        view.local_online.store(local, Ordering::Relaxed);
        local + view.others_online.load(Ordering::Relaxed)
    }

    /// Shares this process's figures (JSON) with the others' admin views.
    pub async fn publish_figures(&self, figures: String) -> redis::RedisResult<()> {
        let mut redis = self.inner.redis.clone();
        redis::cmd("HSET")
            .arg(self.inner.keys.figures())
            .arg(self.inner.node)
            .arg(figures)
            .query_async(&mut redis)
            .await
    }

    /// The figures the live processes other than this one last shared, by node id.
    pub async fn others_figures(&self) -> redis::RedisResult<Vec<(u32, String)>> {
        let mut redis = self.inner.redis.clone();
        let all: std::collections::HashMap<u32, String> = redis::cmd("HGETALL")
            .arg(self.inner.keys.figures())
            .query_async(&mut redis)
            .await?;
        let alive = self.inner.view.alive();
        Ok(all
            .into_iter()
            .filter(|(node, _)| *node != self.inner.node && alive.contains(node))
            .collect())
    }

    /// Queues `envelope` for `node`'s stream; false when the queue is full.
    pub fn send(&self, node: u32, envelope: Envelope) -> bool {
        self.queue(node, envelope, None)
    }

    fn queue(&self, node: u32, envelope: Envelope, receipt: Option<Receipt>) -> bool {
        let queued = Queued {
            node,
            envelope,
            receipt,
            at: Instant::now(),
        };
        self.inner.relay.try_send(queued).is_ok()
    }

    /// Queues `envelope` for every other live process.
    pub fn broadcast(&self, envelope: &Envelope) {
        for node in self.inner.view.alive() {
            if node != self.inner.node {
                self.send(node, envelope.clone());
            }
        }
    }

    /// The link from `me` (whose outbox takes its receipts) to `partner` on another process.
    pub fn link(&self, me: ConnId, outbox: OutboxSender, partner: ConnId) -> RemoteLink {
        RemoteLink {
            cluster: self.clone(),
            node: wire::node_of(partner.rid()),
            to: partner.rid(),
            from: me.rid(),
            seq: AtomicU64::new(0),
            outbox,
        }
    }

    /// On a clean stop, once the sessions are closed: tells the others at once and takes this
    /// process out of the sorted set (its rows went with its sessions).
    pub async fn leave(&self) {
        let down = Envelope::Down {
            node: self.inner.node,
        };
        self.broadcast(&down);
        let mut pipe = redis::pipe();
        self.inner.keys.forget(&mut pipe, self.inner.node);
        // Its chats were handed over or ended: nothing is left here to adopt.
        pipe.cmd("DEL")
            .arg(self.inner.keys.held(self.inner.node))
            .ignore();
        let mut redis = self.inner.redis.clone();
        // Give the relay a moment to send the goodbyes queued before this.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.inner.relay.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(1), pipe.query_async::<()>(&mut redis)).await;
    }
}

/// A partner on another process: frames go to its process's stream, numbered.
#[derive(Debug)]
pub struct RemoteLink {
    cluster: Cluster,
    node: u32,
    to: i64,
    from: i64,
    seq: AtomicU64,
    /// The sender's own outbox: its receipts, or `undelivered`.
    outbox: OutboxSender,
}

impl RemoteLink {
    fn envelope(&self, frame: String) -> Envelope {
        Envelope::Frame {
            to: self.to,
            from: self.from,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            frame,
        }
    }

    /// A frame without a receipt (typing). To a process taken for dead: nothing (its chats
    /// are ending).
    pub fn deliver(&self, frame: String) -> Delivery {
        if self.cluster.inner.view.is_dead(self.node) {
            return Delivery::Gone;
        }
        let envelope = self.envelope(frame);
        if self.cluster.queue(self.node, envelope, None) {
            Delivery::Delivered
        } else {
            Delivery::Full
        }
    }

    /// A message: `receipt` (the sender's `me` copy) goes to the sender's outbox once the
    /// partner's process has taken the message, or `undelivered` if it does not in time.
    /// False when it is refused at once (the partner's process is dead, or the queue to
    /// Redis is full).
    pub fn send_message(&self, frame: String, receipt: String, received: Instant) -> bool {
        if self.cluster.inner.view.is_dead(self.node) {
            return false;
        }
        let envelope = self.envelope(frame);
        let receipt = Receipt {
            outbox: self.outbox.clone(),
            frame: receipt,
            received,
        };
        self.cluster.queue(self.node, envelope, Some(receipt))
    }
}
