//! Bot resistance: an address (an IPv4 address or an IPv6 /64, known only by its keyed hash)
//! that starts chats faster than `--challenge-after` a minute, or that an operator flagged,
//! must send a solved ALTCHA proof of work with each further request. With `--redis-url` the
//! count and the single use of a solution are the cluster's (Redis); otherwise this process's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use altcha_lib_rs::algorithm::AltchaAlgorithm;
use altcha_lib_rs::{create_challenge, verify_solution, Challenge, ChallengeOptions, Payload};
use base64::Engine;
use diesel::prelude::*;
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::chat::hub::unavailable_frame;
use crate::chat::protocol::challenge_frame;
use crate::cluster::wire::Keys;
use crate::db::schema::challenge_flag;
use crate::db::{self, DbConn, DbPool};
use crate::metrics::Metrics;
use crate::secret::SecretKey;

/// How long a challenge may be solved in (and a solution is remembered, so it is used once).
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a Redis call of the gate may take before this process decides alone.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the operators' flags are read again from the database.
const FLAG_REFRESH: Duration = Duration::from_secs(2);
/// Expired flags are deleted every this many refreshes (about once a minute).
const FLAG_SWEEP_EVERY: u32 = 30;
/// Longest `altcha` field read; ours are about 400 characters.
const MAX_PAYLOAD_CHARS: usize = 2_048;
/// Random bytes in a challenge's salt.
const SALT_BYTES: usize = 12;
/// Addresses (or used salts) remembered locally before the stale ones are dropped.
const PRUNE_AT: usize = 4_096;

pub const REQUIRED: &str = "challenge_required";
pub const FAILED: &str = "challenge_failed";
const REQUIRED_DETAIL: &str =
    "Many chats were started from your address: solve the challenge to start another.";
const FAILED_DETAIL: &str = "That challenge solution was not accepted (wrong, expired or used \
                             already): solve this new one.";

/// Counts a chat start unless the address is at its limit (`ARGV[1]`) and the request carries
/// no solution (`ARGV[2]` = 0): -1 when refused, else the count. The key lives for two
/// minutes, past its own minute.
const COUNT_START: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[2] == '0' and n >= tonumber(ARGV[1]) then return -1 end
n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
return n
";

static COUNT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT_START));

/// `--challenge-after` and `--challenge-difficulty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeConfig {
    /// New chats an address may start in one clock minute without a challenge; 0: never
    /// challenged (the gate is off, flags included).
    pub after: u32,
    /// The challenge's largest number: a solver tries on average half as many SHA-256 hashes.
    pub difficulty: u64,
}

/// What the gate says of a request.
#[derive(Debug)]
enum Verdict {
    Admit,
    /// Refused: `code` is `challenge_required` or `challenge_failed`; solve `challenge`.
    Challenge {
        code: &'static str,
        detail: &'static str,
        challenge: Challenge,
    },
    /// Refused, and no challenge could be made (cannot happen with a valid difficulty).
    Unavailable,
}

/// The gate every connection's first request passes. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    config: ChallengeConfig,
    hmac_key: String,
    metrics: Arc<Metrics>,
    /// Where the flags are kept (blocking calls, on blocking threads only).
    pool: DbPool,
    /// Flagged addresses (keyed hashes), read from the database every `FLAG_REFRESH`.
    flags: RwLock<HashSet<i64>>,
    local: Mutex<Local>,
    /// The cluster's Redis and keys, with `--redis-url`.
    shared: Option<(ConnectionManager, Keys)>,
}

/// What this process counts itself (alone, or while Redis does not answer).
#[derive(Default)]
struct Local {
    /// Address → (minute, chats started in it).
    starts: HashMap<i64, (u64, u32)>,
    /// Salts of solved challenges → when they expire (Unix seconds).
    used: HashMap<String, u64>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Gate {
    /// `pool`: where the flags are; `shared`: the cluster's Redis (`Cluster::redis`). The HMAC key of the challenges is
    /// derived from the deployment's key, so every process that shares it accepts them.
    pub fn new(
        config: ChallengeConfig,
        secret: &SecretKey,
        metrics: Arc<Metrics>,
        pool: DbPool,
        shared: Option<(ConnectionManager, Keys)>,
    ) -> Gate {
        Gate {
            inner: Arc::new(Inner {
                config,
                hmac_key: secret.derive_hex(b"altcha"),
                metrics,
                pool,
                flags: RwLock::new(HashSet::new()),
                local: Mutex::new(Local::default()),
                shared,
            }),
        }
    }

    /// Whether requests are looked at at all (`--challenge-after` above 0).
    pub fn is_on(&self) -> bool {
        self.inner.config.after > 0
    }

    /// The way through the gate of one connection from `address` (its keyed hash).
    pub fn ticket(&self, address: i64) -> Arc<Ticket> {
        Arc::new(Ticket {
            gate: self.clone(),
            address,
            passed: AtomicBool::new(false),
        })
    }

    async fn decide(&self, address: i64, altcha: Option<&str>) -> Verdict {
        let metrics = &self.inner.metrics;
        if let Some(payload) = altcha {
            let solved = match self.verify(payload) {
                Some(salt) => self.use_once(&salt).await,
                None => false,
            };
            if !solved {
                metrics.challenge_failed();
                return self.challenge(FAILED, FAILED_DETAIL);
            }
            metrics.challenge_solved();
            self.count(address, true).await;
            return Verdict::Admit;
        }
        if self.is_flagged(address) || !self.count(address, false).await {
            return self.challenge(REQUIRED, REQUIRED_DETAIL);
        }
        Verdict::Admit
    }

    fn challenge(&self, code: &'static str, detail: &'static str) -> Verdict {
        match self.new_challenge(unix_now()) {
            Some(challenge) => {
                self.inner.metrics.challenge_issued();
                Verdict::Challenge {
                    code,
                    detail,
                    challenge,
                }
            }
            None => Verdict::Unavailable,
        }
    }

    /// A fresh challenge, expiring `CHALLENGE_TTL` after `now`. Its salt names the difficulty
    /// it was made for (`<random hex>-<difficulty>`), so a solution of an easier one is
    /// refused; the expiry is the salt's own `expires` parameter (ALTCHA's).
    fn new_challenge(&self, now: u64) -> Option<Challenge> {
        let mut random = [0u8; SALT_BYTES];
        getrandom::fill(&mut random).ok()?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let difficulty = self.inner.config.difficulty;
        let expires = i64::try_from(now + CHALLENGE_TTL.as_secs()).ok()?;
        create_challenge(ChallengeOptions {
            algorithm: Some(AltchaAlgorithm::Sha256),
            max_number: Some(difficulty),
            hmac_key: &self.inner.hmac_key,
            salt: Some(format!("{hex}-{difficulty}")),
            expires: chrono::DateTime::from_timestamp(expires, 0),
            ..ChallengeOptions::default()
        })
        .ok()
    }

    /// The salt of a valid solution: signed by this deployment, not expired, SHA-256, made
    /// for at least today's difficulty. `None` for anything else.
    fn verify(&self, altcha: &str) -> Option<String> {
        if altcha.len() > MAX_PAYLOAD_CHARS {
            return None;
        }
        let json = base64::engine::general_purpose::STANDARD
            .decode(altcha.trim())
            .ok()?;
        let payload: Payload = serde_json::from_slice(&json).ok()?;
        if !matches!(payload.algorithm, AltchaAlgorithm::Sha256) {
            return None;
        }
        // The library checks the expiry only when the salt names one; ours always do.
        let (base, params) = payload.salt.split_once('?')?;
        if !params.contains("expires=") {
            return None;
        }
        let made_for: u64 = base.rsplit_once('-')?.1.parse().ok()?;
        if made_for < self.inner.config.difficulty {
            return None;
        }
        verify_solution(&payload, &self.inner.hmac_key, true).ok()?;
        Some(payload.salt)
    }

    /// Marks a solved challenge used; false when it was already. In a cluster, Redis decides
    /// (SET NX, so every process refuses a replay); alone, or while Redis does not answer,
    /// this process.
    async fn use_once(&self, salt: &str) -> bool {
        let now = unix_now();
        let local_first = {
            let mut local = self.local();
            if local.used.len() >= PRUNE_AT {
                local.used.retain(|_, expires| *expires > now);
            }
            local
                .used
                .insert(salt.to_owned(), now + CHALLENGE_TTL.as_secs())
                .is_none()
        };
        let Some((redis, keys)) = &self.inner.shared else {
            return local_first;
        };
        let mut redis = redis.clone();
        let mut set = redis::cmd("SET");
        set.arg(keys.challenge_used(salt))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(CHALLENGE_TTL.as_secs());
        let set = set.query_async::<Option<String>>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT, set).await {
            Ok(Ok(set)) => set.is_some() && local_first,
            _ => {
                self.inner.metrics.redis_error();
                local_first
            }
        }
    }

    /// Counts one chat started by `address` in this minute, unless it has started
    /// `--challenge-after` already and `solved` is false; returns whether it was counted.
    async fn count(&self, address: i64, solved: bool) -> bool {
        let after = self.inner.config.after;
        let minute = unix_now() / 60;
        let local = self.count_locally(address, minute, solved);
        let Some((redis, keys)) = &self.inner.shared else {
            return local;
        };
        let mut redis = redis.clone();
        let mut script = COUNT_SCRIPT.prepare_invoke();
        script
            .key(keys.chat_starts(address, minute))
            .arg(after)
            .arg(u8::from(solved));
        let counted = script.invoke_async::<i64>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT, counted).await {
            Ok(Ok(n)) => n >= 0,
            _ => {
                self.inner.metrics.redis_error();
                local
            }
        }
    }

    /// This process's own count (alone, the count; in a cluster, what it falls back on).
    fn count_locally(&self, address: i64, minute: u64, solved: bool) -> bool {
        let mut local = self.local();
        if local.starts.len() >= PRUNE_AT {
            local.starts.retain(|_, (m, _)| *m == minute);
        }
        let entry = local.starts.entry(address).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if !solved && entry.1 >= self.inner.config.after {
            return false;
        }
        entry.1 = entry.1.saturating_add(1);
        true
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        // Poisoned only if a thread panicked mid-update of a counter.
        self.inner.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_flagged(&self, address: i64) -> bool {
        self.inner
            .flags
            .read()
            .map(|flags| flags.contains(&address))
            .unwrap_or(false)
    }

    /// Reads the flags from the database now (blocking: a blocking thread only).
    pub fn refresh_flags(&self) -> anyhow::Result<()> {
        let mut conn = db::get(&self.inner.pool)?;
        let flags = flagged(&mut conn, unix_now())?;
        if let Ok(mut set) = self.inner.flags.write() {
            *set = flags.into_iter().map(|(address, _)| address).collect();
        }
        Ok(())
    }

    /// Flags `address` until `until` (Unix seconds) in the database, and in this process at
    /// once (the others read it within `FLAG_REFRESH`). Blocking.
    pub fn flag(&self, address: i64, until: u64) -> anyhow::Result<()> {
        flag_address(&mut *db::get(&self.inner.pool)?, address, until)?;
        if let Ok(mut set) = self.inner.flags.write() {
            set.insert(address);
        }
        Ok(())
    }

    /// Lifts the flag on `address`, in the database and in this process at once; whether
    /// there was one in the database. Blocking.
    pub fn unflag(&self, address: i64) -> anyhow::Result<bool> {
        let lifted = unflag_address(&mut *db::get(&self.inner.pool)?, address)?;
        if let Ok(mut set) = self.inner.flags.write() {
            set.remove(&address);
        }
        Ok(lifted)
    }

    /// Keeps the flags fresh from the database on a thread of its own, for as long as the
    /// gate exists. A failed read keeps the last flags and is counted as a database error.
    pub fn spawn_flag_refresher(&self) -> std::io::Result<()> {
        let gate: Weak<Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("challenge-flags".into())
            .spawn(move || {
                let mut round = 0u32;
                loop {
                    std::thread::sleep(FLAG_REFRESH);
                    let Some(inner) = gate.upgrade() else { return };
                    let gate = Gate { inner };
                    round = round.wrapping_add(1);
                    let swept = round.is_multiple_of(FLAG_SWEEP_EVERY);
                    let read = gate.refresh_flags().and_then(|()| {
                        if swept {
                            sweep_expired(&mut *db::get(&gate.inner.pool)?, unix_now())?;
                        }
                        Ok(())
                    });
                    if let Err(e) = read {
                        gate.inner.metrics.database_error();
                        tracing::warn!(error = format!("{e:#}"), "cannot read challenge flags");
                    }
                }
            })
            .map(|_| ())
    }
}

/// One connection's way through the gate: its address, and whether a request of it has
/// passed (one connection starts one chat: later requests go straight on).
#[derive(Debug)]
pub struct Ticket {
    gate: Gate,
    address: i64,
    passed: AtomicBool,
}

impl Ticket {
    pub fn passed(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }

    /// Decides on a request carrying the solution `altcha` (or none). When it passes, `then`
    /// runs (it queues the request) and the future gives what `then` gives; when it does not,
    /// the error frame with the challenge to solve, to write to the client. Boxed: a session
    /// awaits it once or twice in its life, and keeps only the pointer.
    pub fn admit(
        self: &Arc<Self>,
        altcha: Option<String>,
        then: impl FnOnce() -> Option<String> + Send + 'static,
    ) -> BoxFuture<'static, Option<String>> {
        let ticket = self.clone();
        Box::pin(async move {
            let gate = &ticket.gate;
            let metrics = &gate.inner.metrics;
            match gate.decide(ticket.address, altcha.as_deref()).await {
                Verdict::Admit => {
                    ticket.passed.store(true, Ordering::Relaxed);
                    then()
                }
                Verdict::Challenge {
                    code,
                    detail,
                    challenge,
                } => {
                    metrics.error_sent(code);
                    Some(challenge_frame(code, detail, &challenge))
                }
                Verdict::Unavailable => Some(unavailable_frame(metrics)),
            }
        })
    }
}

/// What an address is flagged by (an IPv6 address by its /64): its address key, as a ban
/// and a report name it (`Who::address`), and the visitor key of a visitor from it who sends
/// no page token.
pub fn address_hash(ip: IpAddr, key: &SecretKey) -> i64 {
    crate::routes::client::address_of(ip, key).as_i64()
}

/// Flags `address` (see `address_hash`) until `until` (Unix seconds): its chats need a solved
/// challenge from then on. Flagging again moves the expiry.
pub fn flag_address(conn: &mut DbConn, address: i64, until: u64) -> QueryResult<()> {
    let until = i64::try_from(until).unwrap_or(i64::MAX);
    conn.transaction(|conn| {
        diesel::delete(challenge_flag::table.find(address)).execute(conn)?;
        diesel::insert_into(challenge_flag::table)
            .values((
                challenge_flag::address.eq(address),
                challenge_flag::expires_at.eq(until),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Lifts the flag on `address`; returns whether there was one.
pub fn unflag_address(conn: &mut DbConn, address: i64) -> QueryResult<bool> {
    Ok(diesel::delete(challenge_flag::table.find(address)).execute(conn)? > 0)
}

/// The flags in force at `now` (Unix seconds): `(address, expires_at)`, soonest to expire
/// first.
pub fn flagged(conn: &mut DbConn, now: u64) -> QueryResult<Vec<(i64, i64)>> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    challenge_flag::table
        .filter(challenge_flag::expires_at.gt(now))
        .order(challenge_flag::expires_at)
        .select((challenge_flag::address, challenge_flag::expires_at))
        .load(conn)
}

fn sweep_expired(conn: &mut DbConn, now: u64) -> QueryResult<usize> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    diesel::delete(challenge_flag::table.filter(challenge_flag::expires_at.le(now))).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(after: u32, difficulty: u64, secret: &SecretKey) -> Gate {
        let config = ChallengeConfig { after, difficulty };
        // Never connected to: these tests read no flags.
        let pool = db::build_pool("sqlite://never-opened.db", 1).expect("pool");
        Gate::new(config, secret, Arc::new(Metrics::new(1)), pool, None)
    }

    fn solve(challenge: &Challenge) -> String {
        let number = altcha_lib_rs::solve_challenge(
            &challenge.challenge,
            &challenge.salt,
            None,
            Some(challenge.maxnumber),
            0,
        )
        .expect("solvable");
        let payload = serde_json::json!({
            "algorithm": "SHA-256",
            "challenge": challenge.challenge,
            "number": number,
            "salt": challenge.salt,
            "signature": challenge.signature,
        });
        base64::engine::general_purpose::STANDARD.encode(payload.to_string())
    }

    #[test]
    fn a_solution_is_valid_once_under_its_key_and_difficulty() {
        let secret = SecretKey::random().expect("key");
        let g = gate(1, 50, &secret);
        let challenge = g.new_challenge(unix_now()).expect("challenge");
        let solution = solve(&challenge);
        assert!(g.verify(&solution).is_some());
        let other_key = gate(1, 50, &SecretKey::random().expect("key"));
        assert!(other_key.verify(&solution).is_none(), "another deployment");
        let harder = gate(1, 5_000, &secret);
        assert!(harder.verify(&solution).is_none(), "an easier challenge");
        let old = g.new_challenge(unix_now() - 2 * CHALLENGE_TTL.as_secs());
        let expired = solve(&old.expect("challenge"));
        assert!(g.verify(&expired).is_none(), "expired");
        assert!(g.verify("not base64!").is_none());
        assert!(g.verify(&"A".repeat(MAX_PAYLOAD_CHARS + 4)).is_none());
    }

    #[test]
    fn an_address_is_counted_per_minute_up_to_its_limit() {
        let g = gate(2, 10, &SecretKey::random().expect("key"));
        assert!(g.count_locally(7, 100, false));
        assert!(g.count_locally(7, 100, false));
        assert!(!g.count_locally(7, 100, false));
        assert!(g.count_locally(8, 100, false), "another address");
        assert!(g.count_locally(7, 100, true), "a solved one always counts");
        assert!(g.count_locally(7, 101, false), "the next minute");
    }
}
