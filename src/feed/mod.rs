//! The public live feed: one stream of market events, served in two wire forms.
//!
//! ```text
//!  exchange ── Feed::publish(chain, topic, category, event, data)      (sync, never blocks)
//!                  │ routes[(chain, topic)] -> {connection: category filter}
//!                  │ each wire form serialised once, the same buffer cloned (a refcount) per subscriber
//!                  ▼
//!   bounded queue per connection ──(try_send; full = slow consumer, closed)──▶ connection writer
//!                  ├── /feed  plain WebSocket, JSON messages           (plain.rs)
//!                  └── /ws    socket.io v5 over engine.io v4: long-polling or WebSocket (socketio.rs)
//! ```
//!
//! Invariants:
//! - [`Feed::publish`] takes a read lock for the length of one fan-out and never awaits: a full queue closes
//!   that connection (reason "slow consumer") instead of making the exchange wait for it.
//! - Events reach one connection in publication order (one FIFO queue per connection).
//! - An event with a category reaches subscriptions without a filter or with that category; an event without
//!   one (an app order has no category) reaches every subscription of its chain and topic.
//!
//! The wire protocols are described for users in `docs/feed.md`.

mod engineio;
mod plain;
mod socketio;

pub(crate) use socketio::EioError;

use actix_web::web;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What a subscription is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    /// `<kind>order_published`, `<kind>order_updated`, `<kind>order_unpublished`.
    Orders,
    /// `deal_proposed`, `deal_failed`, `deal_created`.
    Deals,
    /// Task life-cycle events.
    Tasks,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Orders => "orders",
            Topic::Deals => "deals",
            Topic::Tasks => "tasks",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits and timers of the feed.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Messages waiting for one connection before it is closed as a slow consumer.
    pub queue_capacity: usize,
    /// Open connections (both wire forms together); more are refused with a clear error.
    pub max_subscribers: usize,
    /// Subscriptions one connection may hold (bounds the memory a client can make the feed keep).
    pub max_subscriptions_per_connection: usize,
    /// Categories one subscription may filter on.
    pub max_categories_per_subscription: usize,
    /// Open connections from one client IP address (both wire forms together), so that one address cannot take
    /// every slot of `max_subscribers`.
    pub max_connections_per_ip: usize,
    /// How long a socket.io session may stay without a socket.io CONNECT (a handshake that goes no further holds
    /// a slot only this long).
    pub connect_timeout: Duration,
    /// How often the server pings a connection (engine.io `pingInterval`; WebSocket pings on `/feed`).
    pub ping_interval: Duration,
    /// How long a ping may stay unanswered before the connection is closed (engine.io `pingTimeout`).
    pub ping_timeout: Duration,
    /// Largest client message accepted (engine.io `maxPayload`, also the `/feed` frame limit).
    pub max_payload: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        // The timers are socket.io's own defaults, so its clients behave exactly as against the peer.
        FeedConfig {
            queue_capacity: 1024,
            max_subscribers: 10_000,
            max_subscriptions_per_connection: 256,
            max_categories_per_subscription: 64,
            max_connections_per_ip: 32,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 64 * 1024,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FeedStats {
    /// Open connections, both wire forms.
    pub subscribers: usize,
    /// Events accepted into a subscriber's queue by [`Feed::publish`].
    pub delivered: u64,
    /// Connections closed because their queue was full.
    pub dropped_slow: u64,
    /// Events not sent to NATS because the queue to it was full (cluster-wide feed only).
    pub relay_dropped: u64,
}

/// The live feed. Cloning is an `Arc` clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    config: FeedConfig,
    // A std lock, not an async one: no critical section awaits, and `publish` must stay a plain function
    // callable from anywhere. Writers (subscribe, unsubscribe, disconnect) hold it for a map update only.
    routes: RwLock<HashMap<RouteKey, HashMap<u64, Route>>>,
    subscribers: AtomicUsize,
    delivered: AtomicU64,
    dropped_slow: AtomicU64,
    next_conn: AtomicU64,
    sessions: socketio::Sessions,
    /// Open connections per client address; an address leaves the map with its last connection.
    per_ip: std::sync::Mutex<HashMap<IpAddr, usize>>,
    /// Set when the feed is cluster-wide (`cluster/bus.rs`): events go to NATS, and come back to
    /// [`Feed::deliver`] from there.
    relay: std::sync::OnceLock<mpsc::Sender<Relayed>>,
    /// Events the relay's queue had no room for.
    relay_dropped: AtomicU64,
    /// This instance, as events name their origin.
    origin: Arc<str>,
    /// The last number given per (chain, topic, category); the lock also keeps numbering and hand-off in one
    /// order, so a stream's events leave in their numbers' order.
    numbers: std::sync::Mutex<HashMap<Stream, u64>>,
}

/// One feed event, borrowed: what the wire forms encode (as it is, the plain form's message).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    chain_id: u64,
    topic: Topic,
    category: Option<u64>,
    event: &'a str,
    data: &'a serde_json::Value,
    origin: &'a str,
    seq: u64,
}

/// One feed event as it travels between instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relayed {
    pub chain_id: u64,
    pub topic: Topic,
    pub category: Option<u64>,
    pub event: String,
    pub data: serde_json::Value,
    /// The instance that made the event, and its number in that instance's `(chain, topic, category)` stream.
    pub origin: Arc<str>,
    pub seq: u64,
}

type RouteKey = (u64, Topic);

/// A numbered stream of events: (chain, topic, category).
type Stream = (u64, Topic, Option<u64>);

struct Route {
    filter: Filter,
    outbox: Arc<Outbox>,
}

/// The categories one connection wants on one (chain, topic).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    All,
    Categories(BTreeSet<u64>),
}

impl Filter {
    fn matches(&self, category: Option<u64>) -> bool {
        match (self, category) {
            (Filter::All, _) | (_, None) => true,
            (Filter::Categories(set), Some(c)) => set.contains(&c),
        }
    }
}

/// The two wire forms; each event is serialised at most once per form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireForm {
    Plain,
    SocketIo,
}

/// Why the feed closed a connection (sent as the WebSocket close reason).
pub(crate) const SLOW_CONSUMER: &str = "slow consumer";

/// The sending side of one connection, shared between the routes table and the connection's tasks.
struct Outbox {
    id: u64,
    form: WireForm,
    tx: mpsc::Sender<ByteString>,
    // Set once, to the reason, when the connection is to close; every task of the connection watches it.
    close: watch::Sender<Option<&'static str>>,
}

impl Outbox {
    /// Marks the connection for closing; true the first time only.
    fn close(&self, reason: &'static str) -> bool {
        self.close.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason);
            true
        })
    }

    fn close_reason(&self) -> Option<&'static str> {
        *self.close.borrow()
    }

    /// Completes when the connection is to close, with the reason.
    async fn closed(&self) -> &'static str {
        let mut rx = self.close.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(r) => *r,
            Err(_) => None,
        };
        reason.unwrap_or("closed")
    }

    /// Queues a message for this connection, closing it when it cannot keep up.
    fn push(&self, msg: ByteString, feed: &Inner) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.close(SLOW_CONSUMER) {
                    feed.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(connection = self.id, "feed subscriber closed: slow consumer");
                }
                false
            }
            // The connection is going away; dropping its subscriber removes its routes.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Refused: the feed has `max_subscribers` connections, or the client's address has `max_connections_per_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AtCapacity {
    #[error("too many subscribers: try again later")]
    Full,
    #[error("too many feed connections from this address")]
    PerIp,
}

/// Refused: a connection asked for more than `max_subscriptions_per_connection` routes, or a route for more than
/// `max_categories_per_subscription` categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TooManySubscriptions {
    #[error("too many subscriptions on this connection")]
    Routes,
    #[error("too many categories in one subscription: subscribe without a category to get them all")]
    Categories,
}

impl Feed {
    pub fn new(config: FeedConfig) -> Self {
        Feed {
            inner: Arc::new(Inner {
                config,
                routes: RwLock::new(HashMap::new()),
                subscribers: AtomicUsize::new(0),
                delivered: AtomicU64::new(0),
                dropped_slow: AtomicU64::new(0),
                next_conn: AtomicU64::new(1),
                sessions: socketio::Sessions::default(),
                per_ip: std::sync::Mutex::new(HashMap::new()),
                relay: std::sync::OnceLock::new(),
                relay_dropped: AtomicU64::new(0),
                origin: crate::store::leases::instance_id().into(),
                numbers: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sends `event` with `data` to every connection subscribed to `(chain_id, topic)` whose category filter
    /// lets `category` through: here, or, when the feed is cluster-wide, on every instance through NATS.
    /// Never blocks: a subscriber whose queue is full is closed instead, and a full relay queue drops the event.
    ///
    /// Each event is numbered in its (chain, topic, category) stream, from 1, and carries this instance as its
    /// origin: a `/feed` client that sees a number skipped in a stream knows it missed events (a NATS restart, a
    /// full queue) and reloads over REST.
    pub fn publish(&self, chain_id: u64, topic: Topic, category: Option<u64>, event: &str, data: &serde_json::Value) {
        let mut numbers = self.inner.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let n = numbers.entry((chain_id, topic, category)).or_default();
        *n += 1;
        let origin = &self.inner.origin;
        let Some(relay) = self.inner.relay.get() else {
            // One instance: delivered from the caller's data, copied only into each wire form's encoding.
            return self.deliver_event(&Event { chain_id, topic, category, event, data, origin, seq: *n });
        };
        let e = Relayed {
            chain_id,
            topic,
            category,
            event: event.to_owned(),
            data: data.clone(),
            origin: origin.clone(),
            seq: *n,
        };
        if relay.try_send(e).is_err() && self.inner.relay_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("the feed's queue to NATS is full: events are dropped (counted in feed_relay_dropped)");
        }
    }

    /// Makes the feed cluster-wide: from now on [`Feed::publish`] hands events to `tx`, and they reach this
    /// instance's connections through [`Feed::deliver`] only. Set once; later calls are ignored.
    pub fn relay_to(&self, tx: mpsc::Sender<Relayed>) {
        let _ = self.inner.relay.set(tx);
    }

    /// Whether an event published now can reach anyone: a connection here, or other instances.
    pub fn wanted(&self) -> bool {
        self.inner.relay.get().is_some() || self.subscribers() > 0
    }

    /// An event (from NATS, or made here without it) to this instance's connections.
    pub fn deliver(&self, e: &Relayed) {
        let (chain_id, topic, category, seq) = (e.chain_id, e.topic, e.category, e.seq);
        self.deliver_event(&Event {
            chain_id,
            topic,
            category,
            event: &e.event,
            data: &e.data,
            origin: &e.origin,
            seq,
        });
    }

    fn deliver_event(&self, e: &Event<'_>) {
        let (chain_id, topic, category, event, data) = (e.chain_id, e.topic, e.category, e.event, e.data);
        let routes = self.inner.routes.read().unwrap_or_else(PoisonError::into_inner);
        let Some(subs) = routes.get(&(chain_id, topic)) else { return };
        let mut plain: Option<ByteString> = None;
        let mut sio: Option<ByteString> = None;
        let mut queued = 0u64;
        for route in subs.values() {
            if !route.filter.matches(category) || route.outbox.close_reason().is_some() {
                continue;
            }
            let encoded = match route.outbox.form {
                WireForm::Plain => cached(&mut plain, || plain::encode_event(e)),
                WireForm::SocketIo => cached(&mut sio, || engineio::encode_event(event, data)),
            };
            let Some(msg) = encoded else {
                tracing::error!(event, "feed event could not be serialised");
                break;
            };
            if route.outbox.push(msg, &self.inner) {
                queued += 1;
            }
        }
        self.inner.delivered.fetch_add(queued, Ordering::Relaxed);
    }

    /// Open connections, both wire forms.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> FeedStats {
        FeedStats {
            subscribers: self.subscribers(),
            delivered: self.inner.delivered.load(Ordering::Relaxed),
            dropped_slow: self.inner.dropped_slow.load(Ordering::Relaxed),
            relay_dropped: self.inner.relay_dropped.load(Ordering::Relaxed),
        }
    }

    fn config(&self) -> &FeedConfig {
        &self.inner.config
    }

    /// Opens a connection for a client at `ip` (when known): a slot under `max_subscribers` and under
    /// `max_connections_per_ip`, and its bounded queue.
    fn attach(
        &self,
        form: WireForm,
        ip: Option<IpAddr>,
    ) -> Result<(Subscriber, mpsc::Receiver<ByteString>), AtCapacity> {
        if let Some(ip) = ip {
            let mut per_ip = self.inner.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let n = per_ip.entry(ip).or_default();
            if *n >= self.inner.config.max_connections_per_ip {
                return Err(AtCapacity::PerIp);
            }
            *n += 1;
        }
        let max = self.inner.config.max_subscribers;
        if self
            .inner
            .subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_err()
        {
            self.release_ip(ip);
            return Err(AtCapacity::Full);
        }
        let (tx, rx) = mpsc::channel(self.inner.config.queue_capacity.max(1));
        let outbox = Arc::new(Outbox {
            id: self.inner.next_conn.fetch_add(1, Ordering::Relaxed),
            form,
            tx,
            close: watch::Sender::new(None),
        });
        Ok((Subscriber { feed: self.clone(), outbox, keys: BTreeSet::new(), ip }, rx))
    }

    fn release_ip(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut per_ip = self.inner.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed").field("config", &self.inner.config).field("stats", &self.stats()).finish()
    }
}

fn cached(slot: &mut Option<ByteString>, encode: impl FnOnce() -> Option<String>) -> Option<ByteString> {
    if slot.is_none() {
        *slot = Some(ByteString::from(encode()?));
    }
    slot.clone()
}

/// One open connection: its slot, its routes and its queue's sending side. Dropping it frees all three.
struct Subscriber {
    feed: Feed,
    outbox: Arc<Outbox>,
    keys: BTreeSet<RouteKey>,
    /// The client's address, counted in `per_ip` while the connection lives.
    ip: Option<IpAddr>,
}

impl Subscriber {
    /// Adds a route; `category: None` means every category of `(chain_id, topic)`.
    fn subscribe(&mut self, chain_id: u64, topic: Topic, category: Option<u64>) -> Result<(), TooManySubscriptions> {
        let key = (chain_id, topic);
        if !self.keys.contains(&key) && self.keys.len() >= self.feed.config().max_subscriptions_per_connection {
            return Err(TooManySubscriptions::Routes);
        }
        let mut routes = self.feed.inner.routes.write().unwrap_or_else(PoisonError::into_inner);
        let route = routes
            .entry(key)
            .or_default()
            .entry(self.outbox.id)
            .or_insert_with(|| Route { filter: Filter::Categories(BTreeSet::new()), outbox: self.outbox.clone() });
        match (&mut route.filter, category) {
            (Filter::All, _) => {}
            (filter @ Filter::Categories(_), None) => *filter = Filter::All,
            (Filter::Categories(set), Some(c)) => {
                if !set.contains(&c) && set.len() >= self.feed.config().max_categories_per_subscription {
                    // A new route must not stay behind empty.
                    if set.is_empty() {
                        routes.get_mut(&key).map(|subs| subs.remove(&self.outbox.id));
                        if routes.get(&key).is_some_and(HashMap::is_empty) {
                            routes.remove(&key);
                        }
                    }
                    return Err(TooManySubscriptions::Categories);
                }
                set.insert(c);
            }
        }
        self.keys.insert(key);
        Ok(())
    }

    /// Removes a route (`category: None`), or one category from a filtered route. A category cannot be carved
    /// out of a subscription to all categories: that route stays as it is.
    fn unsubscribe(&mut self, chain_id: u64, topic: Topic, category: Option<u64>) {
        let key = (chain_id, topic);
        if !self.keys.contains(&key) {
            return;
        }
        let mut routes = self.feed.inner.routes.write().unwrap_or_else(PoisonError::into_inner);
        let Some(subs) = routes.get_mut(&key) else { return };
        let remove = match (subs.get_mut(&self.outbox.id), category) {
            (None, _) | (Some(_), None) => true,
            (Some(route), Some(c)) => match &mut route.filter {
                Filter::All => false,
                Filter::Categories(set) => {
                    set.remove(&c);
                    set.is_empty()
                }
            },
        };
        if remove {
            subs.remove(&self.outbox.id);
            if subs.is_empty() {
                routes.remove(&key);
            }
            self.keys.remove(&key);
        }
    }

    fn unsubscribe_all(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut routes = self.feed.inner.routes.write().unwrap_or_else(PoisonError::into_inner);
        for key in std::mem::take(&mut self.keys) {
            if let Some(subs) = routes.get_mut(&key) {
                subs.remove(&self.outbox.id);
                if subs.is_empty() {
                    routes.remove(&key);
                }
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.outbox.close("closed");
        self.feed.inner.subscribers.fetch_sub(1, Ordering::AcqRel);
        self.feed.release_ip(self.ip);
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").field("id", &self.outbox.id).field("routes", &self.keys.len()).finish()
    }
}

/// Registers `/feed` (plain WebSocket) and `/ws`, `/ws/` (socket.io). The handlers read the [`Feed`] from
/// `web::Data<Feed>`, which the application must provide.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/feed", web::get().to(plain::handle)).service(
        web::resource(["/ws", "/ws/"])
            .route(web::get().to(socketio::get))
            .route(web::post().to(socketio::post))
            .route(web::route().to(socketio::bad_method)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(rx: &mut mpsc::Receiver<ByteString>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|m| m.to_string()).collect()
    }

    #[test]
    fn routes_by_chain_topic_and_category() {
        let feed = Feed::new(FeedConfig::default());
        let (mut all, mut rx_all) = feed.attach(WireForm::Plain, None).expect("slot");
        let (mut cat5, mut rx_cat5) = feed.attach(WireForm::SocketIo, None).expect("slot");
        all.subscribe(1, Topic::Orders, None).expect("sub");
        cat5.subscribe(1, Topic::Orders, Some(5)).expect("sub");
        let data = json!({"a": 1});
        feed.publish(1, Topic::Orders, Some(5), "e5", &data);
        feed.publish(1, Topic::Orders, Some(6), "e6", &data);
        feed.publish(1, Topic::Orders, None, "any", &data);
        feed.publish(2, Topic::Orders, Some(5), "other_chain", &data);
        feed.publish(1, Topic::Deals, Some(5), "other_topic", &data);
        let plain = drain(&mut rx_all);
        assert_eq!(plain.len(), 3);
        let origin = &feed.inner.origin;
        assert_eq!(
            plain[0],
            format!(
                r#"{{"chainId":1,"topic":"orders","category":5,"event":"e5","data":{{"a":1}},"origin":"{origin}","seq":1}}"#
            )
        );
        assert!(plain[2].ends_with(r#""seq":1}"#), "a stream of its own (no category): {}", plain[2]);
        assert_eq!(drain(&mut rx_cat5), vec![r#"42["e5",{"a":1}]"#, r#"42["any",{"a":1}]"#]);
        assert_eq!(feed.stats().delivered, 5);

        cat5.unsubscribe(1, Topic::Orders, Some(5));
        all.unsubscribe(1, Topic::Orders, None);
        feed.publish(1, Topic::Orders, Some(5), "gone", &data);
        assert!(drain(&mut rx_all).is_empty() && drain(&mut rx_cat5).is_empty());
        assert!(feed.inner.routes.read().expect("lock").is_empty(), "empty routes are removed");
    }

    #[test]
    fn a_full_queue_closes_only_that_subscriber() {
        let feed = Feed::new(FeedConfig { queue_capacity: 2, ..FeedConfig::default() });
        let (mut slow, _rx_slow) = feed.attach(WireForm::Plain, None).expect("slot");
        let (mut fast, mut rx_fast) = feed.attach(WireForm::Plain, None).expect("slot");
        slow.subscribe(7, Topic::Deals, None).expect("sub");
        fast.subscribe(7, Topic::Deals, None).expect("sub");
        for i in 0..5 {
            feed.publish(7, Topic::Deals, None, "deal_created", &json!(i));
            assert_eq!(drain(&mut rx_fast).len(), 1);
        }
        assert_eq!(slow.outbox.close_reason(), Some(SLOW_CONSUMER));
        assert_eq!(fast.outbox.close_reason(), None);
        assert_eq!(feed.stats().dropped_slow, 1);
        assert_eq!(feed.stats().delivered, 5 + 2);
    }

    #[test]
    fn connection_limit_and_release() {
        let feed = Feed::new(FeedConfig { max_subscribers: 1, ..FeedConfig::default() });
        let first = feed.attach(WireForm::Plain, None).expect("slot");
        assert!(feed.attach(WireForm::Plain, None).is_err());
        assert_eq!(feed.subscribers(), 1);
        drop(first);
        assert_eq!(feed.subscribers(), 0);
        assert!(feed.attach(WireForm::SocketIo, None).is_ok());
    }

    #[test]
    fn subscriptions_per_connection_are_bounded() {
        let feed = Feed::new(FeedConfig { max_subscriptions_per_connection: 2, ..FeedConfig::default() });
        let (mut sub, _rx) = feed.attach(WireForm::Plain, None).expect("slot");
        sub.subscribe(1, Topic::Orders, Some(1)).expect("sub");
        sub.subscribe(1, Topic::Orders, Some(2)).expect("same route, another category");
        sub.subscribe(2, Topic::Orders, None).expect("sub");
        assert_eq!(sub.subscribe(3, Topic::Orders, None), Err(TooManySubscriptions::Routes));
    }

    #[test]
    fn categories_per_subscription_are_bounded() {
        let feed = Feed::new(FeedConfig { max_categories_per_subscription: 3, ..FeedConfig::default() });
        let (mut sub, _rx) = feed.attach(WireForm::Plain, None).expect("slot");
        for c in 0..3 {
            sub.subscribe(1, Topic::Orders, Some(c)).expect("within the bound");
        }
        sub.subscribe(1, Topic::Orders, Some(2)).expect("a category already there");
        assert_eq!(sub.subscribe(1, Topic::Orders, Some(3)), Err(TooManySubscriptions::Categories));
        // Subscribing to every category is always possible, and replaces the list.
        sub.subscribe(1, Topic::Orders, None).expect("all categories");
        let feed = Feed::new(FeedConfig { max_categories_per_subscription: 0, ..FeedConfig::default() });
        let (mut sub, _rx) = feed.attach(WireForm::Plain, None).expect("slot");
        assert_eq!(sub.subscribe(1, Topic::Orders, Some(1)), Err(TooManySubscriptions::Categories));
        assert!(feed.inner.routes.read().expect("lock").is_empty(), "no empty route is left behind");
    }

    #[test]
    fn connections_per_ip_are_bounded_and_released() {
        let feed = Feed::new(FeedConfig { max_connections_per_ip: 2, ..FeedConfig::default() });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = feed.attach(WireForm::Plain, Some(a)).expect("slot");
        let _second = feed.attach(WireForm::SocketIo, Some(a)).expect("slot");
        assert_eq!(feed.attach(WireForm::Plain, Some(a)).err(), Some(AtCapacity::PerIp));
        let _other = feed.attach(WireForm::Plain, Some(b)).expect("another address is not affected");
        drop(first);
        let _again = feed.attach(WireForm::Plain, Some(a)).expect("a closed connection frees its address's slot");
        assert_eq!(feed.attach(WireForm::Plain, Some(a)).err(), Some(AtCapacity::PerIp));
    }
}
