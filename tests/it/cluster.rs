//! Several exchange instances and one NATS server (issue 19): the feed is cluster-wide. Two real servers on one
//! PostgreSQL and one anvil, and a real `nats-server` started here (Debian's package, installed by
//! `scripts/setup.sh`).

use crate::harness::database;
use crate::market::{Server, World};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "s3cret-of-the-cluster";

/// A `nats-server` of this test, on a port of its own; killed when dropped.
pub(crate) struct Nats {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Nats {
    pub(crate) fn start() -> Nats {
        let port = dragon::local::free_port().expect("free port");
        let mut n = Nats { port, child: None };
        n.restart();
        n
    }

    /// With this server's credentials (it refuses clients without them, as docs/deployment.md asks).
    pub(crate) fn url(&self) -> String {
        format!("nats://dragon:{SECRET}@127.0.0.1:{}", self.port)
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port, and waits until it accepts connections.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "--user", "dragon", "--pass", SECRET])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `/feed` connection subscribed to orders and deals, once the server confirmed both subscriptions.
pub(crate) async fn subscriber(server: &Server) -> Ws {
    let url = format!("{}/feed", server.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect /feed");
    for topic in ["orders", "deals"] {
        let sub = json!({"op": "subscribe", "chainId": server.chain_id, "topic": topic});
        ws.send(Message::text(sub.to_string())).await.expect("send");
        loop {
            let m = next_message(&mut ws, Duration::from_secs(10)).await.expect("an answer to subscribe");
            if m.get("event").is_none() {
                break;
            }
        }
    }
    ws
}

async fn next_message(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(t.as_str()).expect("JSON")),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("feed connection ended: {other:?}"),
        }
    }
}

/// Every event that arrives within `within`: (event name, the order hash or deal's request hash) -> times.
pub(crate) async fn events(ws: &mut Ws, within: Duration) -> HashMap<(String, String), usize> {
    numbered_events(ws, within, &mut HashMap::new()).await.0
}

/// The last number seen per stream: (origin, topic, category).
type Streams = HashMap<(String, String, String), u64>;

/// Out-of-order events: (stream, the last number seen in it, this event's).
type OutOfOrder = Vec<((String, String, String), u64, u64)>;

/// [`events`], and the events whose number does not follow the last one of its stream in `streams` (a gap, a
/// repeat or a step back).
async fn numbered_events(
    ws: &mut Ws,
    within: Duration,
    streams: &mut Streams,
) -> (HashMap<(String, String), usize>, OutOfOrder) {
    let mut seen = HashMap::new();
    let mut out_of_order = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Some(m) = next_message(ws, deadline.saturating_duration_since(tokio::time::Instant::now())).await {
        let Some(event) = m["event"].as_str() else { continue };
        let d = &m["data"];
        let key = d["orderHash"].as_str().or(d["requestorderHash"].as_str()).unwrap_or_default().to_owned();
        *seen.entry((event.to_owned(), key)).or_default() += 1;
        let origin = m["origin"].as_str().unwrap_or_default().to_owned();
        let stream = (origin, m["topic"].to_string(), m["category"].to_string());
        let seq = m["seq"].as_u64().expect("every event is numbered");
        if let Some(last) = streams.insert(stream.clone(), seq)
            && seq != last + 1
        {
            out_of_order.push((stream, last, seq));
        }
    }
    (seen, out_of_order)
}

fn h(w: &World, o: &dragon::order::AnyOrder) -> String {
    o.order_hash(&w.domain).to_string()
}

/// Two instances on one PostgreSQL and one NATS: a subscriber on either sees every event made on the other,
/// exactly once (an instance hands its own events to its subscribers through NATS too, never twice); after
/// NATS restarts, the feed comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_on_one_instance_carries_what_another_made_once_and_survives_a_nats_restart() {
    let mut nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let start = |db: String| {
        let mut c = w.config(db);
        c.nats.url = Some(nats.url());
        Server::start(c)
    };
    // Without the credentials, an instance does not start, and says why.
    let mut anonymous = w.config(db.clone());
    anonymous.nats.url = Some(format!("nats://127.0.0.1:{}", nats.port));
    let Err(refused) = dragon::server::AppState::connect(&anonymous).await else {
        panic!("an instance started on NATS without its credentials")
    };
    assert!(format!("{refused:#}").contains("connecting to NATS"), "{refused:#}");
    let a = start(db.clone()).await;
    let b = start(db).await;
    let (mut on_a, mut on_b) = (subscriber(&a).await, subscriber(&b).await);

    // A deal made on A: its orders and the proposal, on both feeds, once each.
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    let req = w.request(&w.requester, 8, 1, 1, 3);
    for (key, o) in [(&w.owner, &app), (&w.owner, &pool), (&w.requester, &req)] {
        assert_eq!(a.publish(key, o).await.0, 200);
    }
    let expected = [
        ("apporder_published", h(&w, &app)),
        ("workerpoolorder_published", h(&w, &pool)),
        ("requestorder_published", h(&w, &req)),
        ("deal_proposed", h(&w, &req)),
    ];
    let (mut streams_a, mut streams_b) = (Streams::new(), Streams::new());
    let ((seen_a, order_a), (seen_b, order_b)) = tokio::join!(
        numbered_events(&mut on_a, Duration::from_secs(3), &mut streams_a),
        numbered_events(&mut on_b, Duration::from_secs(3), &mut streams_b)
    );
    for (name, seen) in [("A", &seen_a), ("B", &seen_b)] {
        for (event, hash) in &expected {
            assert_eq!(seen.get(&((*event).to_owned(), hash.clone())), Some(&1), "{event} on {name}: {seen:?}");
        }
    }
    // Every stream (origin, topic, category) numbered 1, 2, 3, ... alike on both instances. The app order is
    // A's; the category's orders and the deal are its owner's, A or B.
    assert!(order_a.is_empty() && order_b.is_empty(), "{order_a:?} {order_b:?}");
    assert_eq!(streams_a, streams_b);
    let origins: std::collections::HashSet<&String> = streams_a.keys().map(|k| &k.0).collect();
    assert!((1..=2).contains(&origins.len()), "{streams_a:?}");
    assert!(
        streams_a.len() >= 3,
        "orders without a category, orders of category 1, deals of category 1: {streams_a:?}"
    );

    // NATS restarts: both instances reconnect and subscribe again by themselves. Orders published on A while
    // B's subscription is not back yet are not replayed (core NATS); the first one B shows proves the path.
    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut salt = 10u8;
    loop {
        assert!(Instant::now() < deadline, "B's feed did not come back after NATS restarted");
        let o = w.app_order(3, 1, salt);
        salt += 1;
        assert_eq!(a.publish(&w.owner, &o).await.0, 200);
        let seen = events(&mut on_b, Duration::from_millis(700)).await;
        if seen.contains_key(&("apporder_published".to_owned(), h(&w, &o))) {
            break;
        }
    }
    // And an order made on B reaches A.
    let o = w.dataset_order(1, 1, 40);
    let (status, body) = b.publish(&w.owner, &o).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "A's feed did not carry B's order");
        let seen = events(&mut on_a, Duration::from_millis(500)).await;
        if seen.contains_key(&("datasetorder_published".to_owned(), h(&w, &o))) {
            break;
        }
    }
    let metrics = reqwest::get(format!("{}/metrics", a.base)).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("dragon_feed_relay_dropped_total 0"), "{metrics}");
    a.shutdown().await;
    b.shutdown().await;
}

/// `n` consecutive ports that this process's `free_port` has passed (so hands to nobody else here).
fn consecutive_ports(n: u16) -> u16 {
    loop {
        let first = dragon::local::free_port().expect("port");
        if (1..n).all(|i| dragon::local::free_port().expect("port") == first + i) {
            return first;
        }
    }
}

/// `dragon local --instances 3` as a user runs it: three exchange instances on its one PostgreSQL and anvil, and
/// a NATS server. `local.json` lists them; orders sent to two instances show on the third one's feed, and a deal
/// made on one instance is proposed on every feed and settled on chain once, by the one settler of the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dragon_local_runs_several_instances_with_one_feed() {
    use crate::market::{app_order_of, pool_order_of, request_of, signed_in};
    use alloy::primitives::U256;
    use alloy::signers::local::PrivateKeySigner;
    use dragon::chain::setup;
    let nats = dragon::local::free_port().expect("port");
    let api = consecutive_ports(3);
    let (nats_port, listen) = (nats.to_string(), format!("127.0.0.1:{api}"));
    let local = crate::harness::Local::start(
        "instances",
        &["--no-pool", "--instances", "3", "--nats-port", &nats_port, "--listen", &listen],
    )
    .await;
    let info = &local.info;
    let apis: Vec<String> =
        info["apis"].as_array().expect("apis").iter().map(|a| a.as_str().expect("url").to_owned()).collect();
    let expected: Vec<String> = (0..3).map(|i| format!("http://127.0.0.1:{}", api + i)).collect();
    assert_eq!(apis, expected, "{info}");
    assert_eq!(info["api"], apis[0].as_str());
    assert_eq!(info["nats"], format!("nats://127.0.0.1:{nats}"));

    let d = dragon::chain::deploy::Deployment::read(std::path::Path::new(info["deployment"].as_str().expect("path")))
        .expect("deployment");
    let servers: Vec<Server> = apis.iter().map(|a| Server::attach(a, d.chain_id)).collect();
    for s in &servers {
        assert_eq!(s.get("/health").await.0, 200, "{}", s.base);
    }
    let url = info["rpc"].as_str().expect("rpc").to_owned();
    let owner: PrivateKeySigner = crate::fixtures::KEY0.parse().expect("key");
    let requester: PrivateKeySigner = crate::fixtures::KEY1.parse().expect("key");
    let (o, r) = (setup::Account::new(&url, &owner).expect("a"), setup::Account::new(&url, &requester).expect("a"));
    setup::fund(&d, &o, &[&o, &r], U256::from(1_000_000_000u64)).await.expect("fund");
    let app = setup::create_app(&d, &o, "local", b"docker.io/dragon/local:1").await.expect("app");
    let pool = setup::create_workerpool(&d, &o, "local pool").await.expect("pool");
    let domain = dragon::order::Domain::new(U256::from(d.chain_id), d.hub);
    let hash = |o: &dragon::order::AnyOrder| o.order_hash(&domain).to_string();

    let mut feed = subscriber(&servers[2]).await;
    // Orders sent to instances 0 and 1 reach instance 2's subscribers.
    let first_app = signed_in(&domain, &owner, app_order_of(app, 1, 10, 1));
    let first_pool = signed_in(&domain, &owner, pool_order_of(pool, 30, 10, 0, 2));
    assert_eq!(servers[0].publish(&owner, &first_app).await.0, 200);
    assert_eq!(servers[1].publish(&owner, &first_pool).await.0, 200);
    // A deal made on instance 0 (its app order and a pool order and request sent there).
    let pool_order = signed_in(&domain, &owner, pool_order_of(pool, 3, 10, 0, 3));
    let request = signed_in(&domain, &requester, request_of(requester.address(), app, [1, 3], 2, 0, "{}", 4));
    for (key, order) in [(&owner, &pool_order), (&requester, &request)] {
        let (s, b) = servers[0].publish(key, order).await;
        assert_eq!(s, 200, "{b}");
    }
    let seen = events(&mut feed, Duration::from_secs(4)).await;
    for (event, h) in [
        ("apporder_published", hash(&first_app)),
        ("workerpoolorder_published", hash(&first_pool)),
        ("requestorder_published", hash(&request)),
        ("deal_proposed", hash(&request)),
    ] {
        assert_eq!(seen.get(&(event.to_owned(), h)), Some(&1), "{event} on instance 2: {seen:?}");
    }
    // Settled once on chain, by whichever instance leads the settler.
    let rh = hash(&request);
    let hub = dragon::chain::contracts::hub::DragonHub::new(d.hub, crate::market::provider(&url, &owner));
    crate::harness::until_within("the deal on chain", Duration::from_secs(30), async || {
        let consumed = hub.viewConsumed(rh.parse().expect("hash")).call().await.expect("consumed");
        (consumed == U256::from(2)).then_some(())
    })
    .await;
    let mut leaders = 0;
    for s in &servers {
        let (_, h) = s.get("/health").await;
        leaders += usize::from(h["settler"]["leading"] == true);
    }
    assert_eq!(leaders, 1, "one settler in the cluster");

    local.stop().await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", nats)).is_err(), "NATS stopped with it");
}
