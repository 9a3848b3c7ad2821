//! The feed between instances, over NATS (issue 19): a subscriber on any instance sees every event of the
//! cluster once.
//!
//! ```text
//!  instance A: Feed::publish ──(bounded queue, never blocks)──▶ publisher task ──▶ NATS subject
//!                                                    dragon.<cluster>.feed.<chain>.<topic>.<category|none>
//!  every instance (A too): subscriber task on dragon.<cluster>.feed.<chain>.> ──▶ Feed::deliver ──▶ its connections
//! ```
//!
//! `<cluster>` is the identity of the database the instances share (`store::leases::cluster_id`): two clusters
//! on one NATS server never hear each other.
//!
//! ```text
//! ```
//!
//! An instance hands its own events to its subscribers only through NATS, so they arrive once, in the order NATS
//! received them, wherever they were made. Each event carries its origin (the instance id) and its number in
//! that origin's (chain, topic, category) stream (`Feed::publish`), so a lost message (a full queue here, a NATS
//! restart) shows to a `/feed` client as a number skipped (`dragon_feed_relay_dropped_total` counts the first
//! kind).
//!
//! Without `[nats] url` none of this runs, and the feed delivers in-process, as a single instance always did.

use crate::feed::{Feed, Relayed, Topic};
use crate::runtime::Background;
use anyhow::Context;
use futures_util::StreamExt;
use serde::Deserialize;
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

/// How an instance proves itself to NATS.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    None,
    /// `nats://TOKEN@host`
    Token(String),
    /// `nats://USER:PASSWORD@host`
    UserPassword(String, String),
}

/// The server's address without its credentials (what logs and errors may show), and the credentials, from a URL
/// that may carry them as its user part (percent-encoded). async-nats itself ignores a URL's user part.
fn split_credentials(url: &str) -> anyhow::Result<(String, Credentials)> {
    let mut u = url::Url::parse(url).context("[nats] url is not a URL (nats://[user:password@]host:port)")?;
    let credentials = match (u.username(), u.password()) {
        ("", None) => Credentials::None,
        (user, None) => Credentials::Token(percent_decode(user)),
        (user, Some(password)) => Credentials::UserPassword(percent_decode(user), percent_decode(password)),
    };
    // Cannot fail on a URL with a host, which a nats:// URL has.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    Ok((u.to_string(), credentials))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `url` as logs may show it: without its credentials.
pub fn redacted(url: &str) -> String {
    split_credentials(url).map_or_else(|_| "(an invalid URL)".to_owned(), |(server, _)| server)
}

fn subject(prefix: &str, chain_id: u64, topic: Topic, category: Option<u64>) -> String {
    match category {
        Some(c) => format!("{prefix}.feed.{chain_id}.{topic}.{c}"),
        None => format!("{prefix}.feed.{chain_id}.{topic}.none"),
    }
}

/// Connects to the NATS server at `url` (credentials in its user part), named `origin`. Fails when the server
/// cannot be reached or refuses the credentials; once connected, the client reconnects by itself, and its
/// subscriptions with it. [`Nats::join`] then subscribes to the cluster's feed.
pub async fn connect(url: &str, origin: &str) -> anyhow::Result<Nats> {
    let (server, credentials) = split_credentials(url)?;
    let reconnected = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = reconnected.clone();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut options = async_nats::ConnectOptions::new().name(origin).event_callback(move |e| {
        let (notify, connections) = (notify.clone(), connections.clone());
        async move {
            tracing::info!(event = %e, "NATS");
            // The first connection is the start, not a return.
            if matches!(e, async_nats::Event::Connected)
                && connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0
            {
                notify.notify_one();
            }
        }
    });
    options = match credentials {
        Credentials::None => options,
        Credentials::Token(t) => options.token(t),
        Credentials::UserPassword(u, p) => options.user_and_password(u, p),
    };
    let client = options.connect(&server).await.with_context(|| format!("connecting to NATS at {server}"))?;
    Ok(Nats { client, reconnected })
}

/// A connection to NATS, not yet in a cluster.
#[derive(Debug)]
pub struct Nats {
    client: async_nats::Client,
    reconnected: std::sync::Arc<tokio::sync::Notify>,
}

impl Nats {
    /// Joins the cluster named `cluster` (the shared database's identity) for `chain_id`: subscribes to its feed.
    pub async fn join(self, cluster: &str, chain_id: u64) -> anyhow::Result<Bus> {
        let prefix = format!("dragon.{cluster}");
        let events = self
            .client
            .subscribe(format!("{prefix}.feed.{chain_id}.>"))
            .await
            .context("subscribing to the feed on NATS")?;
        Ok(Bus { client: self.client, events, chain_id, reconnected: self.reconnected, prefix })
    }
}

/// A connection to NATS, subscribed, not yet carrying a feed ([`Bus::carry`]).
#[derive(Debug)]
pub struct Bus {
    client: async_nats::Client,
    events: async_nats::Subscriber,
    chain_id: u64,
    /// Notified at each (re)connection: what NATS carried meanwhile was not replayed.
    reconnected: std::sync::Arc<tokio::sync::Notify>,
    /// `dragon.<cluster>`: every subject of this cluster starts with it.
    prefix: String,
}

impl Bus {
    /// The connection, for the other traffic between instances (`cluster::route`).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// `dragon.<cluster>`, the start of every subject of this cluster.
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// Notified each time the connection to NATS is made again.
    pub fn reconnected(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.reconnected.clone()
    }

    /// Makes `feed` cluster-wide: its events go out through NATS, and what NATS carries (its own events
    /// included) reaches its connections, until `background` stops.
    pub fn carry(self, feed: &Feed, background: &Background) {
        let Bus { client, mut events, chain_id, prefix, .. } = self;
        let (tx, mut rx) = mpsc::channel::<Relayed>(QUEUE);
        feed.relay_to(tx);

        let publisher = client.clone();
        let mut stopping = Box::pin(background.stopping());
        background.push(tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    e = rx.recv() => match e { Some(e) => e, None => break },
                    () = &mut stopping => break,
                };
                let subject = subject(&prefix, event.chain_id, event.topic, event.category);
                let Ok(body) = serde_json::to_vec(&event) else { continue };
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
                match serde_json::from_slice::<Relayed>(&msg.payload) {
                    Ok(e) if e.chain_id == chain_id => deliver.deliver(&e),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, subject = %msg.subject, "an unreadable feed event on NATS"),
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_url_and_never_into_what_is_shown() {
        let (server, c) = split_credentials("nats://dragon:p%40ss@10.0.0.5:4222").expect("url");
        assert_eq!(c, Credentials::UserPassword("dragon".into(), "p@ss".into()));
        assert!(
            !server.contains("dragon") && !server.contains("p%40ss") && server.contains("10.0.0.5:4222"),
            "{server}"
        );
        let (_, c) = split_credentials("nats://s3cret@localhost:4222").expect("url");
        assert_eq!(c, Credentials::Token("s3cret".into()));
        assert_eq!(split_credentials("nats://127.0.0.1:4222").expect("url").1, Credentials::None);
        assert!(split_credentials("not a url").is_err());
        assert!(!redacted("nats://u:secret@h:1").contains("secret"));
    }
}
