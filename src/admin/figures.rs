//! The live figures of the admin view: connections, waiting, chats and messages per second,
//! per process and in total. Each process samples its own every second (the hub's counts and
//! the relayed-messages counter) and, in a cluster, shares them in Redis beside its liveness;
//! the dashboard reads its own sample and the live others'.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chat::hub::HubHandle;
use crate::cluster::Cluster;

/// How often a process samples (and shares) its figures.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One process's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub node: u32,
    pub connections: usize,
    pub waiting: usize,
    /// Visitors in a conversation.
    pub chatting: usize,
    /// Conversations with someone here (one across two processes counts on both).
    pub chats: usize,
    pub messages_per_sec: f64,
}

/// Every live process's figures, and the sums.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub processes: Vec<ProcessFigures>,
    pub connections: usize,
    pub waiting: usize,
    /// Conversations, each once: half of those chatting.
    pub chats: usize,
    pub messages_per_sec: f64,
}

/// This process's latest sample. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sampler {
    latest: Arc<Mutex<ProcessFigures>>,
}

impl Sampler {
    /// Samples every second until the hub stops, sharing each sample with the cluster.
    pub fn spawn(hub: HubHandle, node: u32, cluster: Option<Cluster>) -> Sampler {
        let sampler = Sampler::default();
        let latest = sampler.latest.clone();
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: Option<(Instant, u64)> = None;
            loop {
                tick.tick().await;
                let Ok(stats) = hub.stats().await else {
                    return; // the hub stopped
                };
                let (now, relayed) = (Instant::now(), hub.metrics().messages_relayed_total());
                let rate = last.map_or(0.0, |(then, before)| {
                    let secs = now.duration_since(then).as_secs_f64();
                    (relayed.saturating_sub(before) as f64 / secs.max(f64::EPSILON) * 10.0).round()
                        / 10.0
                });
                last = Some((now, relayed));
                let figures = ProcessFigures {
                    node,
                    connections: stats.connections,
                    waiting: stats.waiting,
                    chatting: stats.chatting,
                    chats: stats.chats,
                    messages_per_sec: rate,
                };
                if let Ok(mut latest) = latest.lock() {
                    *latest = figures.clone();
                }
                if let Some(cluster) = &cluster {
                    let json = serde_json::to_string(&figures).unwrap_or_default();
                    if let Err(e) = cluster.publish_figures(json).await {
                        tracing::debug!(error = %e, "cannot share the admin figures");
                    }
                }
            }
        });
        sampler
    }

    fn latest(&self) -> ProcessFigures {
        self.latest.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// This process's figures and, in a cluster, those the other live processes shared.
    pub async fn gather(&self, cluster: Option<&Cluster>) -> Figures {
        let mut processes = vec![self.latest()];
        if let Some(cluster) = cluster {
            match cluster.others_figures().await {
                Ok(others) => processes.extend(
                    others
                        .iter()
                        .filter_map(|(_, json)| serde_json::from_str::<ProcessFigures>(json).ok()),
                ),
                Err(e) => tracing::debug!(error = %e, "cannot read the others' admin figures"),
            }
        }
        processes.sort_by_key(|p| p.node);
        Figures::of(processes)
    }
}

impl Figures {
    fn of(processes: Vec<ProcessFigures>) -> Figures {
        let sum = |f: fn(&ProcessFigures) -> usize| processes.iter().map(f).sum::<usize>();
        Figures {
            connections: sum(|p| p.connections),
            waiting: sum(|p| p.waiting),
            chats: sum(|p| p.chatting) / 2,
            messages_per_sec: (processes.iter().map(|p| p.messages_per_sec).sum::<f64>() * 10.0)
                .round()
                / 10.0,
            processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_across_two_processes_counts_once_in_the_total() {
        let a = ProcessFigures {
            node: 1,
            connections: 4,
            waiting: 1,
            chatting: 3,
            chats: 2, // one here, one with a partner on node 2
            messages_per_sec: 1.5,
        };
        let b = ProcessFigures {
            node: 2,
            connections: 1,
            waiting: 0,
            chatting: 1,
            chats: 1,
            messages_per_sec: 0.5,
        };
        let total = Figures::of(vec![a, b]);
        assert_eq!((total.connections, total.waiting, total.chats), (5, 1, 2));
        assert_eq!(total.messages_per_sec, 2.0);
    }
}
