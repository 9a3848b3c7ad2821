//! The feed between instances, over NATS (issue 19): a subscriber on any instance sees every event of the
//! cluster once.
//!
//! ```text
//!  instance A: Feed::publish ──(bounded queue, never blocks)──▶ publisher task ──▶ NATS subject
//!                                                                   dragon.feed.<chain>.<topic>.<category|none>
//!  every instance (A too): subscriber task on dragon.feed.<chain>.> ──▶ Feed::deliver ──▶ its connections
//! ```
//!
//! An instance hands its own events to its subscribers only through NATS, so they arrive once, in the order NATS
//! received them, wherever they were made. Each event carries its origin (the instance id) and that origin's
//! number for it in its chain, so a lost message (a full queue here, a NATS restart) shows as a gap in the
//! `(origin, seq)` numbers (`dragon_feed_relay_dropped_total` counts the first kind).
//!
//! Without `[nats] url` none of this runs, and the feed delivers in-process, as a single instance always did.

use crate::feed::{Feed, Relayed, Topic};
use crate::runtime::Background;
use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// `[nats]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server (`nats://host:4222`). None: a single instance, the feed in-process.
    pub url: Option<String>,
}

/// Events waiting for the publisher task; past this the feed drops (and counts) instead of blocking the market.
const QUEUE: usize = 16 * 1024;

/// Largest event accepted from NATS (NATS's own default `max_payload` is 1 MiB).
const MAX_EVENT_BYTES: usize = 1 << 20;

/// What travels on NATS: the feed event and where it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: String,
    seq: u64,
    #[serde(flatten)]
    event: Relayed,
}

fn subject(chain_id: u64, topic: Topic, category: Option<u64>) -> String {
    match category {
        Some(c) => format!("dragon.feed.{chain_id}.{topic}.{c}"),
        None => format!("dragon.feed.{chain_id}.{topic}.none"),
    }
}

/// Connects to NATS and makes `feed` cluster-wide: its events go out through NATS, and what NATS carries (its
/// own events included) reaches its connections. Fails when the server cannot be reached at start; afterwards
/// the client reconnects by itself, and its subscription with it.
pub async fn start(
    url: &str,
    feed: &Feed,
    chain_id: u64,
    origin: String,
    background: &Background,
) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .name(&origin)
        .event_callback(|e| async move { tracing::info!(event = %e, "NATS") })
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let mut events = client
        .subscribe(format!("dragon.feed.{chain_id}.>"))
        .await
        .with_context(|| format!("subscribing to the feed on NATS at {url}"))?;
    let (tx, mut rx) = mpsc::channel::<Relayed>(QUEUE);
    feed.relay_to(tx);

    let publisher = client.clone();
    let seq = Arc::new(AtomicU64::new(0));
    let mut stopping = Box::pin(background.stopping());
    background.push(tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                e = rx.recv() => match e { Some(e) => e, None => break },
                () = &mut stopping => break,
            };
            let subject = subject(event.chain_id, event.topic, event.category);
            let envelope = Envelope { origin: origin.clone(), seq: seq.fetch_add(1, Ordering::Relaxed) + 1, event };
            let Ok(body) = serde_json::to_vec(&envelope) else { continue };
            // Errs only once the client is closed; while NATS is away the client buffers.
            if let Err(e) = publisher.publish(subject, body.into()).await {
                tracing::warn!(error = %e, "publishing a feed event to NATS failed");
            }
        }
        let _ = publisher.flush().await;
    }));

    let deliver = feed.clone();
    let mut stopping = Box::pin(background.stopping());
    background.push(tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = events.next() => match m { Some(m) => m, None => break },
                () = &mut stopping => break,
            };
            if msg.payload.len() > MAX_EVENT_BYTES {
                continue;
            }
            match serde_json::from_slice::<Envelope>(&msg.payload) {
                Ok(Envelope { event: e, .. }) if e.chain_id == chain_id => deliver.deliver(&e),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, subject = %msg.subject, "an unreadable feed event on NATS"),
            }
        }
    }));
    Ok(())
}
