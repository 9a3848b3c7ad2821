//! A hostile API client against the real `dragon serve` binary (real PostgreSQL and anvil): each test is one
//! attack of issue 16 on the exchange's own surfaces (publication, the book's pages, the feed, logins), and
//! each shows an honest client still served beside it.

use crate::crash::spawn_with;
use crate::harness::database;
use crate::market::{Server, World, request_of};
use alloy::signers::local::PrivateKeySigner;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A request of `who` for the World's app with `params`, signed.
fn request_with_params(w: &World, who: &PrivateKeySigner, params: &str, salt: u8) -> dragon::order::AnyOrder {
    w.signed(who, request_of(who.address(), w.app, [0, 0], 1, 0, params, salt))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_orders_are_refused_before_they_cost_memory_and_big_pages_still_answer() {
    let w = World::new().await;
    let child = spawn_with(&w, &database().await, "[limits]\nper_ip_per_second = 100000\n").await;
    let server = Server::attach(&child.base, w.deployment.chain_id);
    // A free app order, so that requests for the app are otherwise publishable.
    let (s, b) = server.publish(&w.owner, &w.app_order(0, 1_000_000, 1)).await;
    assert_eq!(s, 200, "{b}");

    // 10 KiB of params, a 100 KiB order, and a signature field of 20 KiB: each refused with its stable code,
    // nothing stored.
    let fat = request_with_params(&w, &w.requester, &"x".repeat(10 << 10), 1);
    let (s, b) = server.publish(&w.requester, &fat).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("params_too_large")), "{b}");
    let hash = fat.order_hash(&w.domain);
    let (s, _) = server.get(&format!("/requestorders/{hash}")).await;
    assert_eq!(s, 404, "a refused order is not stored");
    let huge = request_with_params(&w, &w.requester, &"x".repeat(100 << 10), 2);
    let (s, b) = server.publish(&w.requester, &huge).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("order_too_large")), "{b}");
    let mut padded = w.app_order(0, 1, 2).to_json();
    padded["sign"] = json!(format!("0x{}", "ab".repeat(10 << 10)));
    let auth = server.login(&w.owner).await;
    let (s, b) = server.send(reqwest::Method::POST, "/apporders", &auth, &json!({"order": padded})).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("order_too_large")), "{b}");

    // At the bound, orders are taken; a page of 60 of them (over the cache's entry bound, so streamed) is whole.
    let limit = dragon::market::MarketConfig::default().max_params_bytes;
    let mut published = Vec::new();
    for i in 0..60u8 {
        let params = format!("{{\"iexec_args\":\"{}\"}}", "y".repeat(limit - 20 - usize::from(i)));
        let r = request_with_params(&w, &w.requester, &params, 10 + i);
        let (s, b) = server.publish(&w.requester, &r).await;
        assert_eq!(s, 200, "{b}");
        published.push(r.order_hash(&w.domain).to_string());
    }
    let (s, page) = server.get(&format!("/requestorders?requester={}&pageSize=100", w.requester.address())).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["count"], 60);
    let listed: Vec<&str> =
        page["orders"].as_array().expect("orders").iter().filter_map(|o| o["orderHash"].as_str()).collect();
    assert_eq!(listed.len(), 60);
    assert!(published.iter().all(|h| listed.contains(&h.as_str())));
    assert!(
        page["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .all(|o| o["order"]["params"].as_str().is_some_and(|p| p.len() > 8000))
    );
}

/// A polling socket.io handshake from `from`: its status and (on success) its session id.
async fn handshake(base: &str, from: IpAddr) -> (u16, Option<String>) {
    let http = reqwest::Client::builder().local_address(from).build().expect("client");
    let resp = http.get(format!("{base}/ws/?EIO=4&transport=polling")).send().await.expect("handshake");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    let sid = body
        .strip_prefix('0')
        .and_then(|open| serde_json::from_str::<Value>(open).ok())
        .and_then(|v| v["sid"].as_str().map(str::to_owned));
    (status, sid)
}

/// A plain `/feed` WebSocket opened from the local address `from`.
async fn feed_from(
    base: &str,
    from: IpAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let server: SocketAddr = base.trim_start_matches("http://").parse().expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind the client address");
    let stream = socket.connect(server).await.expect("connect");
    let url = format!("ws://{server}/feed");
    let (ws, _) = tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket");
    ws
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message").expect("open");
        if let Message::Text(t) = msg.expect("frame") {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_the_feeds_slots_nor_hold_them_with_bare_handshakes() {
    let w = World::new().await;
    let child = spawn_with(&w, &database().await, "[limits]\nper_ip_per_second = 100000\n").await;
    let base = child.base.clone();
    let attacker: IpAddr = [127, 0, 0, 1].into();
    let honest: IpAddr = [127, 0, 0, 2].into();
    let per_ip = dragon::feed::FeedConfig::default().max_connections_per_ip;

    // The attacker's handshakes are taken up to the per-address bound, and then refused with 429.
    let mut sids = Vec::new();
    for _ in 0..per_ip {
        let (s, sid) = handshake(&base, attacker).await;
        assert_eq!(s, 200);
        sids.push(sid.expect("sid"));
    }
    let (s, _) = handshake(&base, attacker).await;
    assert_eq!(s, 429, "handshake {} from one address", per_ip + 1);
    let refused = reqwest::Client::builder().local_address(attacker).build().expect("client");
    let r = refused.get(format!("{base}/feed")).header("upgrade", "websocket").send().await.expect("feed");
    assert_eq!(r.status().as_u16(), 429, "the plain feed counts against the same bound");

    // Meanwhile an honest client elsewhere subscribes and gets events; and a subscription's categories are bounded.
    let mut ws = feed_from(&base, honest).await;
    let chain_id = w.deployment.chain_id;
    let max_categories = dragon::feed::FeedConfig::default().max_categories_per_subscription as u64;
    for c in 0..=max_categories {
        let sub = json!({"op": "subscribe", "chainId": chain_id, "topic": "orders", "category": c});
        ws.send(Message::text(sub.to_string())).await.expect("send");
        let answer = next_json(&mut ws).await;
        if c < max_categories {
            assert_eq!(answer["ok"], true, "{answer}");
        } else {
            assert_eq!(answer["code"], "too_many_categories", "{answer}");
        }
    }
    let all = json!({"op": "subscribe", "chainId": chain_id, "topic": "orders"});
    ws.send(Message::text(all.to_string())).await.expect("send");
    assert_eq!(next_json(&mut ws).await["ok"], true);
    let server = Server::attach(&base, chain_id);
    let app = w.app_order(0, 5, 9);
    let (s, b) = server.publish(&w.owner, &app).await;
    assert_eq!(s, 200, "{b}");
    let event = next_json(&mut ws).await;
    assert_eq!(event["event"], "apporder_published", "{event}");
    assert_eq!(event["data"]["orderHash"], app.order_hash(&w.domain).to_string());

    // Bare handshakes (no socket.io CONNECT) are dropped after the connect timeout, which frees the slots.
    let timeout = dragon::feed::FeedConfig::default().connect_timeout;
    tokio::time::sleep(timeout + Duration::from_secs(2)).await;
    let poll = reqwest::Client::builder().local_address(attacker).build().expect("client");
    for sid in &sids {
        let r = poll.get(format!("{base}/ws/?EIO=4&transport=polling&sid={sid}")).send().await.expect("poll");
        let (status, body) = (r.status().as_u16(), r.text().await.expect("body"));
        assert!(status == 400 || body == "1", "session {sid} still open after the connect timeout: {status} {body}");
    }
    let start = Instant::now();
    let (s, _) = handshake(&base, attacker).await;
    assert_eq!(s, 200, "slots are free again ({:?})", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_comes_only_from_a_signed_challenge_and_expired_challenges_are_purged() {
    let w = World::new().await;
    let db = database().await;
    let child = spawn_with(
        &w,
        &db,
        "[limits]\nper_ip_per_second = 100000\nchallenge_ttl_secs = 1\nsession_ttl_secs = 60\npurge_interval_secs = 1\n",
    )
    .await;
    let server = Server::attach(&child.base, w.deployment.chain_id);

    // A session token cannot open another session: it ends with its lifetime.
    let auth = server.login(&w.owner).await;
    let (s, b) = server.send(reqwest::Method::POST, "/sessions", &auth, &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let bearer = format!("Bearer {}", b["token"].as_str().expect("token"));
    let (s, b) = server.send(reqwest::Method::POST, "/sessions", &bearer, &json!({})).await;
    assert_eq!(s, 403, "a session renewed by a session: {b}");
    // The token itself still works for writes.
    let (s, b) = server
        .send(reqwest::Method::POST, "/apporders", &bearer, &json!({"order": w.app_order(0, 1, 3).to_json()}))
        .await;
    assert_eq!(s, 200, "{b}");

    // Anonymous challenges: the table is indexed on expiry, and expired rows go without further traffic.
    let (pg, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let indexed: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'challenges' AND indexdef LIKE '%(expires_at)%'",
            &[],
        )
        .await
        .expect("pg_indexes")
        .get(0);
    assert_eq!(indexed, 1, "challenges are purged through an index on their expiry");
    for i in 0..300u32 {
        let who = alloy::primitives::Address::left_padding_from(&i.to_be_bytes());
        let (s, _) = server.get(&format!("/challenge?address={who}")).await;
        assert_eq!(s, 200);
    }
    let count = async || -> i64 { pg.query_one("SELECT count(*) FROM challenges", &[]).await.expect("count").get(0) };
    assert!(count().await >= 300);
    let start = Instant::now();
    while count().await > 0 {
        assert!(start.elapsed() < Duration::from_secs(15), "expired challenges were not purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
