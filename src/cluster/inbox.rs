//! The way in: one task that reads this process's stream from its last id (`XREAD BLOCK`, on a
//! connection of its own, since a blocking read would hold up every other command on a shared
//! one) and hands each batch to the hub in order; acknowledgements of what this process sent go
//! to the relay, which holds the receipts. After a broken connection it connects again
//! and goes on from the same id, so nothing sent meanwhile is missed. What it has read it
//! trims from the stream.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, Value};
use tokio::sync::mpsc;

use super::wire::Envelope;
use super::Event;
use crate::metrics::Metrics;

/// How long one read blocks when nothing comes.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries read at once at most.
const COUNT: usize = 1_024;
/// How often what was read is trimmed away.
const TRIM_EVERY: Duration = Duration::from_secs(1);
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Runs until the hub is gone. Acknowledgements go to the relay (`acks`), all else to the hub.
pub async fn run(
    client: Client,
    key: String,
    events: mpsc::Sender<Event>,
    acks: flume::Sender<Vec<(i64, i64, u64)>>,
    metrics: std::sync::Arc<Metrics>,
) {
    let mut last = String::from("0-0");
    let mut trimmed_at = Instant::now();
    let mut conn: Option<MultiplexedConnection> = None;
    let mut warned = false;
    loop {
        let c = match &mut conn {
            Some(c) => c,
            None => match connect(&client).await {
                Ok(c) => {
                    if warned {
                        tracing::info!("reading the relay stream again");
                        warned = false;
                    }
                    conn.insert(c)
                }
                Err(e) => {
                    metrics.redis_error();
                    if !warned {
                        tracing::warn!(error = %e, "cannot read the relay stream; retrying");
                        warned = true;
                    }
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            },
        };
        let opts = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(COUNT);
        let read: redis::RedisResult<Option<StreamReadReply>> =
            c.xread_options(&[&key], &[&last], &opts).await;
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => {
                metrics.redis_error();
                if !warned {
                    tracing::warn!(error = %e, "relay stream read failed; reconnecting");
                    warned = true;
                }
                conn = None;
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        let mut batch = Vec::new();
        for stream in reply.into_iter().flat_map(|r| r.keys) {
            for entry in stream.ids {
                if let Some(envelope) = entry.map.get("e").and_then(envelope_of) {
                    match envelope {
                        Envelope::Ack { acks: these } => {
                            let _ = acks.send(these);
                        }
                        other => batch.push(other),
                    }
                } else {
                    tracing::warn!(id = %entry.id, "unreadable relay entry skipped");
                }
                last = entry.id;
            }
        }
        if !batch.is_empty() && events.send(Event::Inbound(batch)).await.is_err() {
            return; // the hub has stopped
        }
        if trimmed_at.elapsed() >= TRIM_EVERY {
            trimmed_at = Instant::now();
            // Entries older than the last one read go (MINID keeps `last` itself).
            let trim: redis::RedisResult<()> = redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(&last)
                .query_async(c)
                .await;
            if trim.is_err() {
                metrics.redis_error();
                conn = None;
            }
        }
    }
}

async fn connect(client: &Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

fn envelope_of(value: &Value) -> Option<Envelope> {
    match value {
        Value::BulkString(bytes) => Envelope::parse(bytes),
        _ => None,
    }
}
