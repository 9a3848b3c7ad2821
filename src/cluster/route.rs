//! Routing between the instances of a cluster, over NATS (issue 19).
//!
//! ```text
//!  any instance: POST an order ─▶ Market::check (signature, rules) ─▶ Router::publish
//!        category owned here, or an app/dataset order ─▶ Market::publish (its own sequencer)
//!        another category ─▶ NATS request dragon.<cluster>.route.<chain>.<category> ─▶ the owner's
//!                            Market::publish ─▶ reply
//!  every instance: each change of its book ─▶ dragon.<cluster>.book.<chain> ─▶ the others' Market::remote
//! ```
//!
//! - **Requests.** Only the owner of a category subscribes to its subject, from when it holds the lease until it
//!   loses it. The answer comes once the owner committed the order, so a 200 anywhere means durable. With no
//!   owner (NATS answers "no responders" at once), a slow one (a timeout) or one that just lost the category
//!   (it answers [`MarketError::NoOwner`]), the sender tries again, for at most [`ROUTE_PATIENCE`], then answers
//!   503 `no_category_owner`. A retried order that the first owner did commit is answered "already published"
//!   by the next: the order is in the book either way.
//! - **Book changes.** Every instance answers reads (listings, unpublication, caps) for every category from its
//!   own read index; the owners' changes reach it here. App and dataset orders, offered in every category, go to
//!   every engine the same way (`Sequencer::remote`).
//!
//! Peers are trusted as far as NATS lets them in: the cluster's NATS requires credentials (docs/deployment.md).

use crate::cluster::owner::Owned;
use crate::ids::OrderHash;
use crate::market::{BookChange, Market, MarketError, MarketEvent, PublishError};
use crate::order::record::{OrderRecord, OrderStatus, WireRecord};
use crate::runtime::Background;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a publication waits for a category's owner before it answers 503.
pub const ROUTE_PATIENCE: Duration = Duration::from_secs(10);

/// How long one routed request may take. Short, because a request NATS handed to an owner that just died is
/// never answered (NATS notices the death a moment later): the retry goes to the next owner, and a retried order
/// that the first owner did commit is answered as published. A group commit takes milliseconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Book changes waiting for NATS; past this they are dropped (the others' read index is then behind until
/// their next rebuild) and counted, rather than blocking the market.
const QUEUE: usize = 16 * 1024;

/// Largest message read from a peer (NATS's default `max_payload`).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Orders per routed request: a batch of 100 stays far below the message bound.
const MAX_PER_REQUEST: usize = 256;

/// Routed requests an owner works on at once; past it, it reads no more from NATS until one is answered (the
/// senders then wait, and retry, as for a slow owner).
const MAX_SERVING: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Publish(Vec<WireRecord>),
    Unpublish(Vec<OrderHash>),
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Published(Vec<Outcome>),
    Unpublished(Vec<OrderHash>),
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    /// What the owner's commit gave the order (the sender has the rest).
    Ok {
        seq: u64,
        remaining: u64,
        status: OrderStatus,
        published_ms: i64,
    },
    Duplicate,
    Closed(OrderStatus),
    NoOwner,
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
enum Change {
    Put(WireRecord),
    Gone(OrderHash),
}

#[derive(Debug, Serialize, Deserialize)]
struct Changes {
    origin: String,
    changes: Vec<Change>,
}

fn route_subject(prefix: &str, chain_id: u64, category: u64) -> String {
    format!("{prefix}.route.{chain_id}.{category}")
}

fn book_subject(prefix: &str, chain_id: u64) -> String {
    format!("{prefix}.book.{chain_id}")
}

/// The side of the market's listener that feeds the other instances: made before the market, so that its
/// first change is carried.
#[derive(Debug, Clone)]
pub struct Outbox(mpsc::Sender<Change>, Arc<std::sync::atomic::AtomicU64>);

impl Outbox {
    pub fn new() -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        (Outbox(tx, dropped.clone()), OutboxReceiver(rx, dropped))
    }

    /// Queues what `e` changed in the book, without waiting.
    pub fn push(&self, e: &MarketEvent) {
        let change = match e {
            MarketEvent::Published(r) | MarketEvent::Updated(r) => Change::Put(r.to_wire()),
            MarketEvent::Unpublished { hash, .. } => Change::Gone(*hash),
            _ => return,
        };
        if self.0.try_send(change).is_err() {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct OutboxReceiver(mpsc::Receiver<Change>, Arc<std::sync::atomic::AtomicU64>);

/// Routes orders to their category's owner, and carries book changes between instances.
#[derive(Debug)]
pub struct Router {
    client: async_nats::Client,
    /// `dragon.<cluster>` (see `bus.rs`).
    prefix: String,
    chain_id: u64,
    market: Arc<Market>,
    /// Book changes dropped because the queue to NATS was full.
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Router {
    /// Starts serving the categories `owned` names (subscribing to each while it is held), sending this
    /// instance's book changes, and applying the others'; until `background` stops.
    pub async fn start(
        bus: &super::bus::Bus,
        origin: String,
        market: Arc<Market>,
        owned: watch::Receiver<Owned>,
        outbox: OutboxReceiver,
        background: &Background,
    ) -> anyhow::Result<Arc<Router>> {
        let (client, prefix, reconnected) = (bus.client(), bus.prefix(), bus.reconnected());
        let chain_id = market.chain_id;
        let OutboxReceiver(mut rx, dropped) = outbox;
        let router = Arc::new(Router {
            client: client.clone(),
            prefix: prefix.clone(),
            chain_id,
            market: market.clone(),
            dropped,
        });

        // This instance's changes, in batches, in the order the market made them.
        let publisher = client.clone();
        let (me, me_prefix) = (origin.clone(), prefix.clone());
        let mut stopping = Box::pin(background.stopping());
        background.push(tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    c = rx.recv() => match c { Some(c) => c, None => break },
                    () = &mut stopping => break,
                };
                let mut changes = vec![first];
                while changes.len() < MAX_PER_REQUEST {
                    match rx.try_recv() {
                        Ok(c) => changes.push(c),
                        Err(_) => break,
                    }
                }
                let Ok(body) = serde_json::to_vec(&Changes { origin: me.clone(), changes }) else { continue };
                if let Err(e) = publisher.publish(book_subject(&me_prefix, chain_id), body.into()).await {
                    tracing::warn!(error = %e, "sending book changes to NATS failed");
                }
            }
        }));

        // The others' changes.
        let mut changes = client.subscribe(book_subject(&prefix, chain_id)).await?;
        let to = market.clone();
        let mut stopping = Box::pin(background.stopping());
        background.push(tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = changes.next() => match m { Some(m) => m, None => break },
                    () = &mut stopping => break,
                };
                if msg.payload.len() > MAX_MESSAGE_BYTES {
                    continue;
                }
                let Ok(c) = serde_json::from_slice::<Changes>(&msg.payload) else {
                    tracing::warn!("an unreadable book change on NATS");
                    continue;
                };
                if c.origin == origin {
                    continue;
                }
                let list: Vec<BookChange> = c
                    .changes
                    .into_iter()
                    .filter_map(|c| match c {
                        Change::Put(w) if w.chain_id == chain_id => {
                            OrderRecord::from_wire(w).ok().map(|r| BookChange::Put(Box::new(r)))
                        }
                        Change::Put(_) => None,
                        Change::Gone(h) => Some(BookChange::Gone(h)),
                    })
                    .collect();
                if to.remote(list).await.is_err() {
                    break;
                }
            }
        }));

        // Book changes made while this instance was away from NATS are not replayed: after each reconnection,
        // the read index (and the engine) are rebuilt from the store, which has them all.
        let rebuilt = market.clone();
        let mut stopping = Box::pin(background.stopping());
        background.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = reconnected.notified() => {}
                    () = &mut stopping => break,
                }
                tracing::info!("reconnected to NATS: rebuilding the book from the store");
                if let Err(e) = rebuilt.rebuild(Box::pin(async { Ok(()) })).await {
                    tracing::warn!(error = %e, "rebuilding the book after a reconnection failed");
                }
            }
        }));

        // One subscription per category owned, for exactly as long as it is owned.
        let serving = router.clone();
        let mut stopping = Box::pin(background.stopping());
        let mut owned = owned;
        background.push(tokio::spawn(async move {
            let mut subscriptions: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
            loop {
                let now: Vec<u64> = owned.borrow_and_update().keys().copied().collect();
                subscriptions.retain(|c, task| {
                    let keep = now.contains(c);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for c in now {
                    if subscriptions.contains_key(&c) {
                        continue;
                    }
                    match serving.client.subscribe(route_subject(&serving.prefix, chain_id, c)).await {
                        Ok(sub) => {
                            subscriptions.insert(c, tokio::spawn(serving.clone().serve(sub)));
                        }
                        Err(e) => tracing::warn!(category = c, error = %e, "subscribing to a category's orders failed"),
                    }
                }
                tokio::select! {
                    r = owned.changed() => if r.is_err() { break },
                    () = &mut stopping => break,
                }
            }
            for (_, task) in subscriptions {
                task.abort();
            }
        }));
        Ok(router)
    }

    /// Answers the requests for one category, each as its own task (so that many wait on one group commit).
    async fn serve(self: Arc<Self>, mut sub: async_nats::Subscriber) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SERVING));
        while let Some(msg) = sub.next().await {
            let Some(reply) = msg.reply.clone() else { continue };
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let answer = if msg.payload.len() > MAX_MESSAGE_BYTES {
                    Answer::Failed("message too large".into())
                } else {
                    match serde_json::from_slice::<Request>(&msg.payload) {
                        Ok(r) => me.answer(r).await,
                        Err(e) => Answer::Failed(format!("unreadable request: {e}")),
                    }
                };
                if let Ok(body) = serde_json::to_vec(&answer) {
                    let _ = me.client.publish(reply, body.into()).await;
                }
            });
        }
    }

    async fn answer(&self, request: Request) -> Answer {
        match request {
            Request::Publish(wires) => {
                let mut records = Vec::with_capacity(wires.len());
                for w in wires {
                    match OrderRecord::from_wire(w) {
                        Ok(r) if r.chain_id == self.chain_id => records.push(r),
                        Ok(_) => return Answer::Failed("another chain".into()),
                        Err(e) => return Answer::Failed(e),
                    }
                }
                let outcomes = self.market.publish(records).await.into_iter().map(outcome).collect();
                Answer::Published(outcomes)
            }
            Request::Unpublish(hashes) => match self.market.unpublish(hashes).await {
                Ok(gone) => Answer::Unpublished(gone),
                Err(e) => Answer::Failed(e.to_string()),
            },
        }
    }

    /// Publishes checked orders wherever their category is owned; one answer per order, in order.
    pub async fn publish(&self, records: Vec<OrderRecord>) -> Vec<Result<Arc<OrderRecord>, PublishError>> {
        let n = records.len();
        let mut out: Vec<Option<Result<Arc<OrderRecord>, PublishError>>> = (0..n).map(|_| None).collect();
        let mut pending: Vec<(usize, OrderRecord)> = records.into_iter().enumerate().collect();
        let deadline = tokio::time::Instant::now() + ROUTE_PATIENCE;
        let mut delay = Duration::from_millis(50);
        // Orders whose request got no answer: the owner may have committed them before it died or the answer was
        // lost, so "already published" on a later try means published.
        let mut uncertain = std::collections::HashSet::new();
        loop {
            // Owned here (or no category): this instance's sequencer; the rest by category, to their owners.
            let (here, there): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(_, r)| r.category().is_none_or(|c| self.market.owns(c)));
            let mut again = Vec::new();
            if !here.is_empty() {
                let (positions, recs): (Vec<usize>, Vec<OrderRecord>) = here.into_iter().unzip();
                let keep = recs.clone();
                for ((i, res), r) in positions.into_iter().zip(self.market.publish(recs).await).zip(keep) {
                    match res {
                        Err(PublishError::Market(MarketError::NoOwner { .. })) => again.push((i, r)),
                        res => out[i] = Some(res),
                    }
                }
            }
            let mut by_category: BTreeMap<u64, Vec<(usize, OrderRecord)>> = BTreeMap::new();
            for (i, r) in there {
                by_category.entry(r.category().unwrap_or_default()).or_default().push((i, r));
            }
            for (category, group) in by_category {
                for chunk in group.chunks(MAX_PER_REQUEST) {
                    let wires = chunk.iter().map(|(_, r)| r.to_wire()).collect();
                    match self.request(category, &Request::Publish(wires)).await {
                        Ok(Answer::Published(outcomes)) if outcomes.len() == chunk.len() => {
                            for ((i, r), o) in chunk.iter().zip(outcomes) {
                                match o {
                                    Outcome::NoOwner => again.push((*i, r.clone())),
                                    Outcome::Duplicate if uncertain.contains(i) => {
                                        out[*i] = Some(self.stored(r.hash).await);
                                    }
                                    o => out[*i] = Some(answer_of(o, r)),
                                }
                            }
                        }
                        Ok(Answer::Failed(why)) => {
                            for (i, _) in chunk {
                                out[*i] = Some(Err(MarketError::Cluster(why.clone()).into()));
                            }
                        }
                        // No owner, a slow one, or an answer of another shape: try again.
                        _ => {
                            uncertain.extend(chunk.iter().map(|(i, _)| *i));
                            again.extend(chunk.iter().cloned());
                        }
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            if tokio::time::Instant::now() + delay > deadline {
                for (i, r) in again {
                    out[i] = Some(Err(MarketError::NoOwner { category: r.category().unwrap_or_default() }.into()));
                }
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
            pending = again;
        }
        out.into_iter().map(|o| o.unwrap_or_else(|| Err(MarketError::ShuttingDown.into()))).collect()
    }

    /// The order as the store has it, after a try whose answer was lost: published if it is there and open.
    async fn stored(&self, hash: OrderHash) -> Result<Arc<OrderRecord>, PublishError> {
        let client = self.market.store.client().await.map_err(MarketError::Store)?;
        match crate::store::orders::get(&**client, &hash).await.map_err(MarketError::Store)? {
            Some(r) if r.status == OrderStatus::Open => Ok(Arc::new(r)),
            Some(r) => Err(PublishError::Closed { hash, status: r.status }),
            None => Err(PublishError::Duplicate(hash)),
        }
    }

    /// Unpublishes open orders wherever their category is owned (the read index says which category); returns
    /// those that were open.
    pub async fn unpublish(&self, hashes: Vec<OrderHash>) -> Result<Vec<OrderHash>, MarketError> {
        let mut by_category: BTreeMap<Option<u64>, Vec<OrderHash>> = BTreeMap::new();
        for h in hashes {
            let c = self.market.book.get(&h).and_then(|r| r.category()).filter(|c| !self.market.owns(*c));
            by_category.entry(c).or_default().push(h);
        }
        let mut removed = Vec::new();
        for (category, hashes) in by_category {
            let Some(category) = category else {
                removed.extend(self.market.unpublish(hashes).await?);
                continue;
            };
            let deadline = tokio::time::Instant::now() + ROUTE_PATIENCE;
            let mut delay = Duration::from_millis(50);
            loop {
                if self.market.owns(category) {
                    removed.extend(self.market.unpublish(hashes).await?);
                    break;
                }
                match self.request(category, &Request::Unpublish(hashes.clone())).await {
                    Ok(Answer::Unpublished(gone)) => {
                        removed.extend(gone);
                        break;
                    }
                    Ok(Answer::Failed(why)) => return Err(MarketError::Cluster(why)),
                    _ if tokio::time::Instant::now() + delay > deadline => {
                        return Err(MarketError::NoOwner { category });
                    }
                    _ => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        Ok(removed)
    }

    /// One request to a category's owner: `Err` for no owner, a timeout or an unreadable answer.
    async fn request(&self, category: u64, request: &Request) -> Result<Answer, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let asked = self.client.request(route_subject(&self.prefix, self.chain_id, category), body.into());
        let msg = tokio::time::timeout(REQUEST_TIMEOUT, asked)
            .await
            .map_err(|_| "the owner did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        if msg.payload.len() > MAX_MESSAGE_BYTES {
            return Err("answer too large".into());
        }
        serde_json::from_slice(&msg.payload).map_err(|e| e.to_string())
    }
}

fn outcome(r: Result<Arc<OrderRecord>, PublishError>) -> Outcome {
    match r {
        Ok(r) => Outcome::Ok { seq: r.seq, remaining: r.remaining, status: r.status, published_ms: r.published_ms },
        Err(PublishError::Duplicate(_)) => Outcome::Duplicate,
        Err(PublishError::Closed { status, .. }) => Outcome::Closed(status),
        Err(PublishError::Market(MarketError::NoOwner { .. })) => Outcome::NoOwner,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn answer_of(o: Outcome, sent: &OrderRecord) -> Result<Arc<OrderRecord>, PublishError> {
    let hash = sent.hash;
    match o {
        Outcome::Ok { seq, remaining, status, published_ms } => {
            let mut r = sent.clone();
            (r.seq, r.remaining, r.status, r.published_ms) = (seq, remaining, status, published_ms);
            Ok(Arc::new(r))
        }
        Outcome::Duplicate => Err(PublishError::Duplicate(hash)),
        Outcome::Closed(status) => Err(PublishError::Closed { hash, status }),
        Outcome::NoOwner => Err(MarketError::NoOwner { category: 0 }.into()),
        Outcome::Failed(why) => Err(MarketError::Cluster(why).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::record::raw_json;
    use alloy::primitives::{Address, B256, U256};

    /// What one instance sends another (a routed order, a book change) reads back as the same record: its
    /// JSON text byte for byte, its engine view, its numbers.
    #[test]
    fn a_record_crosses_the_wire_unchanged() {
        let order = crate::order::AnyOrder::Workerpool(crate::order::WorkerpoolOrder {
            workerpool: Address::repeat_byte(7),
            workerpoolprice: crate::money::Nrlc::from_u64(9_007_199_254_740_993),
            volume: U256::from(12),
            tag: B256::with_last_byte(1),
            category: U256::from(3),
            trust: U256::from(4),
            apprestrict: Address::ZERO,
            datasetrestrict: Address::repeat_byte(1),
            requesterrestrict: Address::ZERO,
            salt: B256::repeat_byte(9),
            sign: Some(vec![1u8; 65].into()),
        });
        let hash = order.order_hash(&crate::order::Domain::new(U256::from(1), Address::ZERO));
        let view = crate::order::convert::engine_order(&order, hash, U256::from(12)).expect("fits");
        let r = OrderRecord {
            seq: 77,
            hash,
            chain_id: 1,
            json: raw_json(&order),
            order,
            signer: Address::repeat_byte(7),
            remaining: 5,
            status: OrderStatus::Open,
            published_ms: 1_700_000_000_123,
            view,
            shown: Default::default(),
        };
        let text = serde_json::to_vec(&Changes { origin: "a".into(), changes: vec![Change::Put(r.to_wire())] })
            .expect("serialise");
        let back: Changes = serde_json::from_slice(&text).expect("parse");
        let Some(Change::Put(w)) = back.changes.into_iter().next() else { panic!("a put") };
        let b = OrderRecord::from_wire(w).expect("a record");
        assert_eq!((b.seq, b.hash, b.chain_id, b.remaining, b.status), (77, hash, 1, 5, OrderStatus::Open));
        assert_eq!((b.signer, b.published_ms, b.category()), (r.signer, r.published_ms, Some(3)));
        assert_eq!(b.json.get(), r.json.get());
        assert_eq!(b.engine_order(), r.engine_order());
        // The answer to a routed order carries only what the owner's commit gave it.
        let answered = answer_of(Outcome::Ok { seq: 9, remaining: 5, status: OrderStatus::Open, published_ms: 3 }, &r)
            .expect("published");
        assert_eq!((answered.seq, answered.published_ms, answered.json.get()), (9, 3, r.json.get()));
        assert!(matches!(answer_of(Outcome::Duplicate, &r), Err(PublishError::Duplicate(h)) if h == hash));
    }
}
