//! Who is alive. Every process says so every heartbeat in one script (its time in a sorted
//! set, by Redis's clock, with its connection count beside it) and gets back, in the same
//! round trip, everyone's times and counts, and whether the others took it for dead meanwhile.
//! A process silent for longer than the node timeout is dead: the hub closes its visitors'
//! partners with `partner lost`, and one sweeper at a time (a lock in Redis) removes its stream,
//! and its rows once it has let go of its database lock too (a process cut off from Redis alone
//! keeps its rows). The sweeper also adopts the stopped process's chats whose two visitors
//! were both on it (`held`): each goes to its own hub as an `Adopt`, and the visitors resume
//! as after a stop. A process never takes the others for dead while its own link has not been
//! up for a whole timeout: a Redis outage silences everyone at once, and nobody is to blame.
//!
//! It runs on a thread of its own, so a busy server never misses its own heartbeat.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::mpsc;

use super::relay::MAX_STREAM_LEN;
use super::wire::{AdoptedSide, Envelope, Keys};
use super::{ClusterConfig, Event, View};
use crate::db::{self, lease, queries, DbPool};
use crate::metrics::Metrics;

/// How long a dead process's flag stays, for it to learn it was taken for dead if it returns.
const DEAD_FLAG: Duration = Duration::from_secs(120);
/// How long the sweeper's lock lasts if its holder dies mid-sweep.
const SWEEP_LOCK: Duration = Duration::from_secs(10);

const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = now - tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local was_dead = redis.call('DEL', KEYS[3])
local alive = redis.call('ZRANGEBYSCORE', KEYS[1], oldest, '+inf')
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest)
local counts = {}
for i, node in ipairs(alive) do
  counts[i] = tonumber(redis.call('HGET', KEYS[2], node) or '0')
end
return {was_dead, alive, counts, stale}
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

type Beat = (i64, Vec<u32>, Vec<i64>, Vec<u32>);

pub struct Liveness {
    pub redis: ConnectionManager,
    pub keys: Keys,
    pub node: u32,
    pub config: ClusterConfig,
    pub view: Arc<View>,
    pub events: mpsc::Sender<Event>,
    pub pool: DbPool,
    pub metrics: Arc<Metrics>,
}

impl Liveness {
    /// One heartbeat now: the view is filled before the process serves anyone.
    pub async fn first_beat(&mut self) -> redis::RedisResult<()> {
        let beat = self.beat().await?;
        let alive: HashSet<u32> = beat.1.iter().copied().collect();
        let _ = self.view.set_alive(alive, others(self.node, &beat));
        Ok(())
    }

    /// One heartbeat; a failure is counted.
    async fn beat(&mut self) -> redis::RedisResult<Beat> {
        let beat = self.beat_once().await;
        if beat.is_err() {
            self.metrics.redis_error();
        }
        beat
    }

    async fn beat_once(&mut self) -> redis::RedisResult<Beat> {
        let count = self.view.local_online.load(Ordering::Relaxed);
        let script = Script::new(HEARTBEAT);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys.nodes())
            .key(self.keys.online())
            .key(self.keys.dead(self.node))
            .arg(self.node)
            .arg(count)
            .arg(self.config.node_timeout.as_millis() as u64);
        let call = invocation.invoke_async::<Beat>(&mut self.redis);
        match tokio::time::timeout(self.config.heartbeat.max(Duration::from_millis(500)), call)
            .await
        {
            Ok(beat) => beat,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "heartbeat timed out",
            ))),
        }
    }

    /// Beats until the hub is gone.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when the link has been up without a break (None: down now).
        let mut up_since = Some(Instant::now());
        let mut alive: HashSet<u32> = self.view.alive();
        loop {
            tick.tick().await;
            if self.events.is_closed() {
                return;
            }
            let beat = match self.beat().await {
                Ok(beat) => beat,
                Err(e) => {
                    if up_since.take().is_some() {
                        tracing::warn!(error = %e, "Redis unreachable: cross-process chats wait");
                    }
                    self.view.redis_ok.store(false, Ordering::Relaxed);
                    continue;
                }
            };
            let now = Instant::now();
            let reconnected = up_since.is_none();
            let since = *up_since.get_or_insert_with(|| {
                tracing::info!("Redis reachable again");
                now
            });
            self.view.redis_ok.store(true, Ordering::Relaxed);
            let (was_dead, listed, _, stale) = &beat;
            if *was_dead == 1 {
                tracing::warn!("the other processes took this one for dead; rejoining");
                if self.events.send(Event::Rejoined).await.is_err() {
                    return;
                }
            }
            let listed: HashSet<u32> = listed.iter().copied().collect();
            // Only a link up for a whole timeout may judge who has fallen silent.
            let trusted = now.duration_since(since) >= self.config.node_timeout;
            // Those this process counted alive that the others no longer hear from.
            let gone: Vec<u32> = if trusted {
                let me = self.node;
                alive
                    .iter()
                    .copied()
                    .filter(|n| *n != me && !listed.contains(n))
                    .collect()
            } else {
                Vec::new()
            };
            // Until then, whoever was alive stays so, and newcomers join.
            alive = if trusted {
                listed
            } else {
                alive.union(&listed).copied().collect()
            };
            for n in &gone {
                alive.remove(n);
            }
            self.view.bury(&gone);
            let back = self.view.set_alive(alive.clone(), others(self.node, &beat));
            if (back || reconnected) && self.events.send(Event::Reachable).await.is_err() {
                return;
            }
            if !gone.is_empty() {
                tracing::warn!(nodes = ?gone, "processes stopped answering: their chats end");
                if self.events.send(Event::Down(gone.clone())).await.is_err() {
                    return;
                }
            }
            if trusted && !stale.is_empty() {
                self.sweep(stale).await;
            }
        }
    }

    /// Marks `dead` as dead and, if no other process is sweeping, removes their rows, their
    /// place in the sorted set and their streams.
    async fn sweep(&mut self, dead: &[u32]) {
        let mut flags = redis::pipe();
        for n in dead {
            flags
                .cmd("SET")
                .arg(self.keys.dead(*n))
                .arg(1)
                .arg("PX")
                .arg(DEAD_FLAG.as_millis() as u64)
                .ignore();
        }
        let got: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.keys.sweeper())
            .arg(self.node)
            .arg("NX")
            .arg("PX")
            .arg(SWEEP_LOCK.as_millis() as u64)
            .query_async(&mut self.redis)
            .await;
        let flagged = flags.query_async::<()>(&mut self.redis).await;
        if flagged.is_err() || got.is_err() {
            self.metrics.redis_error();
        }
        if flagged.is_err() || !matches!(got, Ok(Some(_))) {
            return; // another process sweeps, or Redis went away: the next beat tries again
        }
        let pool = self.pool.clone();
        let nodes: Vec<i64> = dead.iter().map(|n| i64::from(*n)).collect();
        // A process cut off from Redis alone still holds its lock on the database, and keeps
        // its rows (its own visitors go on meeting each other); only stopped ones are swept.
        let swept = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<i64>, usize)> {
            let mut conn = db::get(&pool)?;
            let stopped = lease::stopped(&mut conn, &nodes)?;
            let removed = queries::sweep_nodes(&mut conn, &stopped)?;
            Ok((stopped, removed))
        })
        .await;
        match swept {
            Ok(Ok((stopped, removed))) => {
                tracing::info!(nodes = ?dead, ?stopped, removed, "swept the rows of dead processes");
                let mut gone = redis::pipe();
                for n in dead {
                    self.keys.forget(&mut gone, *n);
                }
                if gone.query_async::<()>(&mut self.redis).await.is_err() {
                    self.metrics.redis_error();
                }
                self.adopt_held(&stopped).await;
            }
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "cannot sweep dead rows yet"),
            Err(e) => tracing::warn!(error = %e, "sweep panicked"),
        }
        let released = Script::new(RELEASE)
            .key(self.keys.sweeper())
            .arg(self.node)
            .invoke_async::<i64>(&mut self.redis)
            .await;
        if released.is_err() {
            self.metrics.redis_error();
        }
    }
}

impl Liveness {
    /// The chats whose two visitors were both on these stopped processes go to this process's
    /// hub (through its own stream, behind what is already there), taken out of Redis at once
    /// so that no other sweeper adopts them too.
    async fn adopt_held(&mut self, stopped: &[i64]) {
        for node in stopped {
            let Ok(node) = u32::try_from(*node) else {
                continue;
            };
            let key = self.keys.held(node);
            let taken: redis::RedisResult<(std::collections::HashMap<String, String>,)> =
                redis::pipe()
                    .atomic()
                    .cmd("HGETALL")
                    .arg(&key)
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .query_async(&mut self.redis)
                    .await;
            let Ok((chats,)) = taken else {
                self.metrics.redis_error();
                continue;
            };
            if chats.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            let mut adopted = 0;
            for sides in chats.values() {
                let Ok(sides) = serde_json::from_str::<[AdoptedSide; 2]>(sides) else {
                    continue;
                };
                pipe.cmd("XADD")
                    .arg(self.keys.inbox(self.node))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(MAX_STREAM_LEN)
                    .arg("*")
                    .arg("e")
                    .arg(Envelope::Adopt { sides }.to_json())
                    .ignore();
                adopted += 1;
            }
            if pipe.query_async::<()>(&mut self.redis).await.is_err() {
                self.metrics.redis_error();
                continue;
            }
            tracing::info!(node, chats = adopted, "adopted the chats of a dead process");
        }
    }
}

/// The other live processes' connections, in all.
fn others(me: u32, beat: &Beat) -> usize {
    beat.1
        .iter()
        .zip(&beat.2)
        .filter(|(n, _)| **n != me)
        .map(|(_, c)| usize::try_from(*c).unwrap_or(0))
        .sum()
}
