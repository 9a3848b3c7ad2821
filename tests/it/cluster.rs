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

/// A `nats-server` of this test, on a port of its own; killed when dropped.
struct Nats {
    port: u16,
    child: Option<Child>,
}

impl Nats {
    fn start() -> Nats {
        let port = dragon::local::free_port().expect("free port");
        let mut n = Nats { port, child: None };
        n.restart();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port, and waits until it accepts connections.
    fn restart(&mut self) {
        self.stop();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
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

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `/feed` connection subscribed to orders and deals, once the server confirmed both subscriptions.
async fn subscriber(server: &Server) -> Ws {
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
async fn events(ws: &mut Ws, within: Duration) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Some(m) = next_message(ws, deadline.saturating_duration_since(tokio::time::Instant::now())).await {
        let Some(event) = m["event"].as_str() else { continue };
        let d = &m["data"];
        let key = d["orderHash"].as_str().or(d["requestorderHash"].as_str()).unwrap_or_default().to_owned();
        *seen.entry((event.to_owned(), key)).or_default() += 1;
    }
    seen
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
    let (seen_a, seen_b) =
        tokio::join!(events(&mut on_a, Duration::from_secs(3)), events(&mut on_b, Duration::from_secs(3)));
    for (name, seen) in [("A", &seen_a), ("B", &seen_b)] {
        for (event, hash) in &expected {
            assert_eq!(seen.get(&((*event).to_owned(), hash.clone())), Some(&1), "{event} on {name}: {seen:?}");
        }
    }

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
