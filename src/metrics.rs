//! What the server counts, for Prometheus to read on the metrics listener (`--metrics-bind`,
//! `routes/metrics.rs`). Everything is made once at start-up and counted through atomics; the
//! gauges are the hub's own counts, set when a scrape asks. Every series carries the process's
//! `node` label (the high half of its connection ids).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry, Unit};

/// The `Content-Type` of what `Metrics::render` writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One relayed message in this many has its latency observed: the histogram takes a lock,
/// which the relay path must not take for every message.
pub const RELAY_LATENCY_SAMPLE: u64 = 16;

/// Every error code the server sends a client: in error frames (the protocol's), and in the
/// body of a refused upgrade.
pub const ERROR_CODES: [&str; 23] = [
    "bad_json",
    "unknown_type",
    "bad_frame",
    "binary_not_supported",
    "not_paired",
    "already_waiting",
    "already_paired",
    "empty_message",
    "message_too_long",
    "rate_limited",
    "unavailable",
    "undelivered",
    "challenge_required",
    "challenge_failed",
    "origin_not_allowed",
    "too_many_connections",
    "too_many_connects",
    "server_full",
    "bad_request",
    "banned",
    "bad_report",
    "bad_token",
    "already_reported",
];

/// Why sessions end: the reason of the close frame the server sends, or, when it sends none
/// of its own, what the client did.
pub const CLOSE_REASONS: [&str; 16] = [
    "client closed",
    "connection lost",
    "no heartbeat",
    "protocol error",
    "invalid UTF-8",
    "frame too large",
    "message too large",
    "partner left",
    "partner lost",
    "server shutting down",
    "not reading",
    "rate limit exceeded",
    "bye",
    "reported",
    "resumed elsewhere",
    "service restart",
];

/// Report reasons (`moderation::reports::Reason`).
pub const REPORT_REASONS: [&str; 5] = ["spam", "harassment", "sexual", "under_age", "other"];
/// What a ban holds, and who made it.
pub const BAN_KINDS: [&str; 2] = ["visitor", "address"];
pub const BAN_MAKERS: [&str; 2] = ["admin", "auto"];

type Label = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// A counter family over one label whose values are known in advance: their counters are made
/// at start-up (each series shows from the first scrape, at 0) and found without a lock.
#[derive(Debug)]
struct Labelled {
    label: &'static str,
    family: Family<Label, Counter>,
    known: Vec<(&'static str, Counter)>,
}

impl Labelled {
    fn new(label: &'static str, values: &[&'static str]) -> Self {
        let family = Family::<Label, Counter>::default();
        let known = values
            .iter()
            .map(|&value| (value, family.get_or_create_owned(&[(label, value)])))
            .collect();
        Labelled {
            label,
            family,
            known,
        }
    }

    fn inc(&self, value: &'static str) {
        match self.known.iter().find(|(known, _)| *known == value) {
            Some((_, counter)) => {
                counter.inc();
            }
            // A value missing from the list is still counted, under the family's lock.
            None => {
                self.family.get_or_create(&[(self.label, value)]).inc();
            }
        }
    }
}

/// Makes each metric and registers it under its name, in the order a scrape lists them.
struct Registrar(Registry);

impl Registrar {
    fn add<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.add(name, help, Gauge::default())
    }

    fn counter(&mut self, name: &str, help: &str) -> Counter {
        self.add(name, help, Counter::default())
    }

    /// A histogram of seconds, with buckets from `first` doubling `count` times.
    fn seconds(&mut self, name: &str, help: &str, first: f64, count: u16) -> Histogram {
        let histogram = Histogram::new(exponential_buckets(first, 2.0, count));
        let Registrar(registry) = self;
        registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        histogram
    }

    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        label: &'static str,
        values: &[&'static str],
    ) -> Labelled {
        let labelled = Labelled::new(label, values);
        self.add(name, help, labelled.family.clone());
        labelled
    }
}

/// The server's metrics. Shared (behind an `Arc`) by the hub, the sessions and the routes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    waiting: Gauge,
    chats: Gauge,
    pairings: Counter,
    messages_relayed: Counter,
    time_to_pair: Histogram,
    relay_latency: Histogram,
    errors_sent: Labelled,
    closes: Labelled,
    database_errors: Counter,
    redis_errors: Counter,
    challenges_issued: Counter,
    challenges_solved: Counter,
    challenges_failed: Counter,
    reports: Labelled,
    bans: Family<Labels2, Counter>,
}

impl Metrics {
    pub fn new(node: u32) -> Self {
        let node = [(Cow::Borrowed("node"), Cow::Owned(node.to_string()))];
        let mut r = Registrar(Registry::with_prefix_and_labels(
            "pairchat",
            node.into_iter(),
        ));
        let relay_help = format!(
            "From a client's message frame read to the partner's copy queued or written, for \
             one message in {RELAY_LATENCY_SAMPLE}"
        );
        Metrics {
            connections: r.gauge("connections", "Open WebSocket connections"),
            waiting: r.gauge(
                "waiting",
                "Connections that asked for a partner and have none yet",
            ),
            chats: r.gauge("chats", "Conversations going on"),
            pairings: r.counter("pairings", "Pairs made"),
            messages_relayed: r.counter("messages_relayed", "Chat messages handed to a partner"),
            // 1 ms to 65 s.
            time_to_pair: r.seconds(
                "time_to_pair",
                "From a connection's request to its pairing",
                0.001,
                17,
            ),
            // 1 µs to 131 ms.
            relay_latency: r.seconds("relay_latency", &relay_help, 0.000_001, 18),
            errors_sent: r.labelled(
                "errors_sent",
                "Errors sent to clients (error frames and refused upgrades), by code",
                "code",
                &ERROR_CODES,
            ),
            closes: r.labelled(
                "closes",
                "Sessions ended, by reason",
                "reason",
                &CLOSE_REASONS,
            ),
            database_errors: r.counter(
                "database_errors",
                "Database operations that failed (matchmaking transactions, health checks)",
            ),
            redis_errors: r.counter(
                "redis_errors",
                "Redis calls that failed or timed out (relay, inbox, liveness, challenges)",
            ),
            challenges_issued: r.counter(
                "challenges_issued",
                "Proof-of-work challenges sent to clients",
            ),
            challenges_solved: r.counter(
                "challenges_solved",
                "Solved challenges accepted (the request went on)",
            ),
            challenges_failed: r.counter(
                "challenges_failed",
                "Challenge solutions refused: wrong, expired, replayed or unreadable",
            ),
            reports: r.labelled(
                "reports",
                "Reports stored, by reason",
                "reason",
                &REPORT_REASONS,
            ),
            bans: {
                let bans = Family::<Labels2, Counter>::default();
                for kind in BAN_KINDS {
                    for by in BAN_MAKERS {
                        let _ = bans.get_or_create(&[("kind", kind), ("by", by)]);
                    }
                }
                r.add(
                    "bans",
                    "Bans made, by what they hold and who made them",
                    bans,
                )
            },
            registry: r.0,
        }
    }

    /// A report was stored, for this reason (one of `REPORT_REASONS`).
    pub fn reported(&self, reason: &'static str) {
        self.reports.inc(reason);
    }

    /// A ban was made: `kind` one of `BAN_KINDS`, by an admin or automatically.
    pub fn banned(&self, kind: &'static str, auto: bool) {
        let by = if auto { "auto" } else { "admin" };
        self.bans.get_or_create(&[("kind", kind), ("by", by)]).inc();
    }

    /// Two connections were paired.
    pub fn paired(&self) {
        self.pairings.inc();
    }

    /// A connection waited `waited` from its request to its pairing.
    pub fn waited_for_partner(&self, waited: Duration) {
        self.time_to_pair.observe(waited.as_secs_f64());
    }

    /// A message read at `received` was handed to the partner. Called for every message: an
    /// atomic increment, and for one message in `RELAY_LATENCY_SAMPLE` the latency too.
    #[inline]
    pub fn relayed(&self, received: Instant) {
        if self
            .messages_relayed
            .inc()
            .is_multiple_of(RELAY_LATENCY_SAMPLE)
        {
            self.relay_latency.observe(received.elapsed().as_secs_f64());
        }
    }

    /// Chat messages handed to a partner since start (the admin view's messages per second).
    pub fn messages_relayed_total(&self) -> u64 {
        self.messages_relayed.get()
    }

    /// An error with this code went to a client.
    pub fn error_sent(&self, code: &'static str) {
        self.errors_sent.inc(code);
    }

    /// A session ended for this reason (one of `CLOSE_REASONS`).
    pub fn closed(&self, reason: &'static str) {
        self.closes.inc(reason);
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    pub fn challenge_issued(&self) {
        self.challenges_issued.inc();
    }

    pub fn challenge_solved(&self) {
        self.challenges_solved.inc();
    }

    pub fn challenge_failed(&self) {
        self.challenges_failed.inc();
    }

    /// Everything in the Prometheus text format (0.0.4), with the gauges set to the hub's
    /// counts of the moment.
    pub fn render(
        &self,
        connections: usize,
        waiting: usize,
        chats: usize,
    ) -> Result<String, std::fmt::Error> {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.connections.set(gauge(connections));
        self.waiting.set(gauge(waiting));
        self.chats.set(gauge(chats));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_known_label_shows_at_zero_and_an_unknown_one_still_counts() {
        let m = Metrics::new(7);
        m.error_sent("bad_json");
        m.error_sent("not_a_known_code");
        m.closed("partner left");
        let text = m.render(3, 1, 1).expect("render");
        let count = |family: &str, label: &str| {
            sample(
                &text,
                &format!("pairchat_{family}_total{{node=\"7\",{label}}}"),
            )
        };
        assert_eq!(count("errors_sent", r#"code="bad_json""#), Some(1.0));
        assert_eq!(count("errors_sent", r#"code="server_full""#), Some(0.0));
        assert_eq!(
            count("errors_sent", r#"code="not_a_known_code""#),
            Some(1.0)
        );
        assert_eq!(count("closes", r#"reason="partner left""#), Some(1.0));
        assert_eq!(count("closes", r#"reason="no heartbeat""#), Some(0.0));
        assert_eq!(
            sample(&text, r#"pairchat_connections{node="7"}"#),
            Some(3.0)
        );
    }

    #[test]
    fn the_first_message_and_one_in_sixteen_after_it_are_timed() {
        let m = Metrics::new(1);
        for _ in 0..=RELAY_LATENCY_SAMPLE {
            m.relayed(Instant::now());
        }
        let text = m.render(0, 0, 0).expect("render");
        let count = sample(&text, r#"pairchat_relay_latency_seconds_count{node="1"}"#);
        assert_eq!(count, Some(2.0));
        let relayed = sample(&text, r#"pairchat_messages_relayed_total{node="1"}"#);
        assert_eq!(relayed, Some((RELAY_LATENCY_SAMPLE + 1) as f64));
    }
}
