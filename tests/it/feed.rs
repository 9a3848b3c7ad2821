//! The live feed end to end, on a real HTTP server that serves only the feed (no database needed): the stock
//! socket.io client over each of its transports, the plain WebSocket with its filters, and a subscriber that
//! never reads, which must be closed without slowing the others or the publisher.

use crate::harness::root;
use actix_web::{App, HttpServer, web};
use dragon::feed::{self, Feed, FeedConfig, Topic};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(15);

struct FeedServer {
    feed: Feed,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: FeedConfig) -> FeedServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let feed = Feed::new(config);
    let data = web::Data::new(feed.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(feed::configure))
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    FeedServer { feed, addr, handle, task: tokio::spawn(server) }
}

impl FeedServer {
    async fn stop(self) {
        // Not graceful: open WebSockets would hold a graceful stop for its whole timeout.
        self.handle.stop(false).await;
        let _ = self.task.await;
    }

    async fn wait_for_subscribers(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.feed.subscribers() != n {
            assert!(Instant::now() < deadline, "subscribers stayed at {} instead of {n}", self.feed.subscribers());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// socket.io on /ws, with npm's socket.io-client 4

/// Runs the stock client in `mode` and checks join, events, leave and heartbeats; the server pings every
/// `ping_interval`, and the client must have answered at least `min_pings` before it quits.
async fn socketio_client(mode: &str, expected_transport: &str, ping_interval: Duration, min_pings: u32) {
    assert!(
        root().join("tests/socketio/node_modules/socket.io-client").exists(),
        "socket.io-client is not installed: run `make setup` (npm ci in tests/socketio)"
    );
    // A generous timeout, so that a busy machine does not make either side give up on the other.
    let config = FeedConfig { ping_interval, ping_timeout: Duration::from_secs(5), ..FeedConfig::default() };
    let server = start(config).await;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new("node")
        .arg(root().join("tests/socketio/feed.mjs"))
        .arg(format!("http://{}", server.addr))
        .arg(mode)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{mode}: no line from the client in time"))
            .expect("read")
            .unwrap_or_else(|| panic!("{mode}: the client ended early"));
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_ne!(v["step"], "error", "{mode}: {v}");
        v
    };

    let joined = next().await;
    assert_eq!(joined, json!({"step": "joined", "ack": true, "transport": expected_transport}), "{mode}");
    if mode == "upgrade" {
        // The upgrade must not wait for a ping to unblock the client's last poll.
        assert!(spawned.elapsed() < ping_interval, "{mode}: connecting took {:?}", spawned.elapsed());
    }
    assert_eq!(server.feed.subscribers(), 1);

    let order = json!({
        "orderHash": "0x1111111111111111111111111111111111111111111111111111111111111111",
        "order": {"app": "0x2222222222222222222222222222222222222222", "appprice": "12", "volume": "3"},
        "remaining": 3,
        "status": "open",
    });
    let pool_order = json!({"orderHash": "0x33", "order": {"category": "3"}, "remaining": 1, "status": "open"});
    server.feed.publish(134, Topic::Orders, None, "apporder_published", &order);
    server.feed.publish(1, Topic::Orders, None, "apporder_published", &json!("another chain"));
    server.feed.publish(134, Topic::Deals, None, "deal_created", &json!("another topic"));
    server.feed.publish(134, Topic::Orders, None, "apporder_unpublished", &json!("0x1111"));
    server.feed.publish(134, Topic::Orders, Some(3), "workerpoolorder_published", &pool_order);
    for (name, payload) in [
        ("apporder_published", &order),
        ("apporder_unpublished", &json!("0x1111")),
        ("workerpoolorder_published", &pool_order),
    ] {
        let event = next().await;
        assert_eq!(
            event,
            json!({"step": "event", "name": name, "payload": payload, "transport": expected_transport}),
            "{mode}"
        );
    }

    stdin.write_all(b"leave\n").await.expect("stdin");
    assert_eq!(next().await, json!({"step": "left", "ack": true}), "{mode}");
    server.feed.publish(134, Topic::Orders, None, "apporder_published", &json!("after leave"));
    // A marker on a room still joined: events of one connection arrive in order, so had the event above been
    // delivered, it would come first.
    stdin.write_all(b"join 134 deals\n").await.expect("stdin");
    assert_eq!(next().await["step"], "joined", "{mode}");
    server.feed.publish(134, Topic::Deals, Some(3), "deal_created", &json!({"dealid": "0xd1"}));
    let marker = next().await;
    assert_eq!((&marker["name"], &marker["payload"]), (&json!("deal_created"), &json!({"dealid": "0xd1"})), "{mode}");

    // Heartbeats must pass without the client giving up on the connection.
    tokio::time::sleep(ping_interval * min_pings + Duration::from_millis(600)).await;
    stdin.write_all(b"quit\n").await.expect("stdin");
    drop(stdin);
    let done = next().await;
    assert_eq!(done["step"], "done", "{mode}");
    assert_eq!(done["connected"], true, "{mode}: {done}");
    assert_eq!(done["transport"], expected_transport, "{mode}");
    assert!(done["pings"].as_u64().is_some_and(|p| p >= u64::from(min_pings)), "{mode}: too few pings: {done}");

    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("node exits").expect("wait");
    assert!(status.success(), "{mode}: node failed");
    server.wait_for_subscribers(0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_client_over_long_polling() {
    socketio_client("polling", "polling", Duration::from_millis(300), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_client_over_websocket() {
    socketio_client("websocket", "websocket", Duration::from_millis(300), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_client_upgrading_from_polling_to_websocket() {
    // Pings far apart: a ping must not be what completes the upgrade.
    socketio_client("upgrade", "websocket", Duration::from_secs(5), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineio_errors_are_engineio_shaped() {
    let server = start(FeedConfig { max_subscribers: 1, ..FeedConfig::default() }).await;
    let base = format!("http://{}/ws/", server.addr);
    let client = reqwest::Client::new();
    let get = async |query: &str| {
        let resp = client.get(format!("{base}?{query}")).send().await.expect("request");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    };
    assert_eq!(
        get("EIO=3&transport=polling").await,
        (400, r#"{"code":5,"message":"Unsupported protocol version"}"#.into())
    );
    assert_eq!(
        get("EIO=4&transport=carrier-pigeon").await,
        (400, r#"{"code":0,"message":"Transport unknown"}"#.into())
    );
    assert_eq!(
        get("EIO=4&transport=polling&sid=nope").await,
        (400, r#"{"code":1,"message":"Session ID unknown"}"#.into())
    );

    let (status, open) = get("EIO=4&transport=polling").await;
    assert_eq!(status, 200);
    let open: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], 25000);
    let (status, body) = get("EIO=4&transport=polling").await;
    assert_eq!((status, body.as_str()), (503, r#"{"code":4,"message":"Too many subscribers: try again later"}"#));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------------------
// the plain WebSocket on /feed

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/feed")).await.expect("connect /feed");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("ok");
        match msg {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_subscribe_unsubscribe_and_category_filter() {
    let server = start(FeedConfig::default()).await;
    let mut all = connect(server.addr).await;
    let mut cat5 = connect(server.addr).await;

    send(&mut all, json!({"op": "subscribe", "chainId": 134, "topic": "orders"})).await;
    assert_eq!(
        next_json(&mut all).await,
        json!({"ok": true, "op": "subscribe", "chainId": 134, "topic": "orders", "category": null})
    );
    send(&mut all, json!({"op": "subscribe", "chainId": 134, "topic": "deals"})).await;
    assert_eq!(next_json(&mut all).await["ok"], true);

    // Bad messages are answered and the connection goes on.
    cat5.send(Message::text("nope")).await.expect("send");
    assert_eq!(next_json(&mut cat5).await["code"], "bad_message");
    send(&mut cat5, json!({"op": "subscribe", "chainId": 134, "topic": "blocks"})).await;
    let error = next_json(&mut cat5).await;
    assert_eq!(error["code"], "bad_message");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("blocks")), "{error}");
    cat5.send(Message::binary(vec![1u8, 2, 3])).await.expect("send");
    assert_eq!(next_json(&mut cat5).await["code"], "bad_message");
    send(&mut cat5, json!({"op": "subscribe", "chainId": 134, "topic": "orders", "category": 5})).await;
    assert_eq!(next_json(&mut cat5).await["category"], 5);
    assert_eq!(server.feed.subscribers(), 2);

    let order5 = json!({"orderHash": "0x05", "order": {"category": "5"}});
    let order6 = json!({"orderHash": "0x06", "order": {"category": "6"}});
    server.feed.publish(134, Topic::Orders, Some(5), "workerpoolorder_published", &order5);
    server.feed.publish(134, Topic::Orders, Some(6), "requestorder_published", &order6);
    server.feed.publish(1, Topic::Orders, Some(5), "requestorder_published", &order5);
    server.feed.publish(134, Topic::Orders, None, "apporder_unpublished", &json!("0xaa"));

    // Each event names this instance as its origin and is numbered in its (chain, topic, category) stream.
    let first = next_json(&mut all).await;
    let origin = first["origin"].as_str().expect("an origin").to_owned();
    let expect = |category: Value, event: &str, data: &Value, seq: u64| json!({"chainId": 134, "topic": "orders", "category": category, "event": event, "data": data, "origin": origin, "seq": seq});
    assert_eq!(first, expect(json!(5), "workerpoolorder_published", &order5, 1));
    assert_eq!(next_json(&mut all).await, expect(json!(6), "requestorder_published", &order6, 1));
    assert_eq!(next_json(&mut all).await, expect(Value::Null, "apporder_unpublished", &json!("0xaa"), 1));
    assert_eq!(next_json(&mut cat5).await, expect(json!(5), "workerpoolorder_published", &order5, 1));
    assert_eq!(next_json(&mut cat5).await, expect(Value::Null, "apporder_unpublished", &json!("0xaa"), 1));

    send(&mut all, json!({"op": "unsubscribe", "chainId": 134, "topic": "orders"})).await;
    assert_eq!(next_json(&mut all).await["op"], "unsubscribe");
    server.feed.publish(134, Topic::Orders, Some(5), "workerpoolorder_updated", &order5);
    server.feed.publish(134, Topic::Deals, Some(5), "deal_created", &json!({"dealid": "0xd1"}));
    // One queue per connection: the orders event, had it been delivered, would come before the deal.
    assert_eq!(next_json(&mut all).await["event"], "deal_created");
    let updated = next_json(&mut cat5).await;
    assert_eq!((&updated["event"], &updated["seq"]), (&json!("workerpoolorder_updated"), &json!(2)), "{updated}");

    all.close(None).await.expect("close");
    server.wait_for_subscribers(1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_websocket_connection_limit_is_a_clear_error() {
    let server = start(FeedConfig { max_subscribers: 1, ..FeedConfig::default() }).await;
    let _first = connect(server.addr).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/feed", server.addr)).await.expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else { panic!("not an HTTP refusal: {err}") };
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("JSON body");
    assert_eq!(body["code"], "feed_full");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_closed_and_nobody_waits_for_it() {
    const BATCH: usize = 32;
    let server = start(FeedConfig { queue_capacity: 64, ..FeedConfig::default() }).await;
    let subscribe = json!({"op": "subscribe", "chainId": 1, "topic": "deals"});

    let mut fast = connect(server.addr).await;
    send(&mut fast, subscribe.clone()).await;
    assert_eq!(next_json(&mut fast).await["ok"], true);
    // The slow one advertises a small receive window, so that the kernel stops taking its data early.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(server.addr).await.expect("connect");
    let (mut slow, _) =
        tokio_tungstenite::client_async(format!("ws://{}/feed", server.addr), stream).await.expect("handshake");
    slow.send(Message::text(subscribe.to_string())).await.expect("send");
    assert_eq!(next_json(&mut slow).await["ok"], true);

    let data = json!({"dealid": "0x01", "params": "x".repeat(2000)});
    let mut published = 0u64;
    let mut slowest_publish = Duration::ZERO;
    let mut batches_after_drop = 0;
    while batches_after_drop < 3 {
        assert!(published < 100_000, "the slow subscriber was never closed");
        for _ in 0..BATCH {
            let t = Instant::now();
            server.feed.publish(1, Topic::Deals, None, "deal_created", &json!({"seq": published, "data": &data}));
            slowest_publish = slowest_publish.max(t.elapsed());
            published += 1;
        }
        // The fast subscriber keeps up, and sees every event in order, numbered in its stream from 1.
        for i in published - BATCH as u64..published {
            let event = next_json(&mut fast).await;
            assert_eq!((&event["data"]["seq"], &event["seq"]), (&json!(i), &json!(i + 1)), "{event}");
        }
        if server.feed.stats().dropped_slow > 0 {
            batches_after_drop += 1;
        }
    }
    // A publish that waited for the slow subscriber would never return (it never reads): any generous bound
    // tells the two apart, while scheduling noise on a busy 2-core machine alone has reached 150 ms.
    assert!(slowest_publish < Duration::from_secs(2), "publish blocked for {slowest_publish:?}");
    let stats = server.feed.stats();
    assert_eq!(stats.dropped_slow, 1);
    eprintln!("slow consumer: dropped after <= {published} events; slowest publish {slowest_publish:?}");

    // What the slow one finds when it finally reads: part of the stream, then the reason.
    let mut received = 0u64;
    let close = loop {
        let msg = tokio::time::timeout(WAIT, slow.next()).await.expect("in time").expect("open").expect("ok");
        match msg {
            Message::Text(_) => received += 1,
            Message::Close(frame) => break frame.expect("a close frame with a reason"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "slow consumer");
    assert!(received < published, "the slow subscriber got everything ({received}): it was not slow");
    server.wait_for_subscribers(1).await;
    server.stop().await;
}

/// The next frame other than a ping or pong.
async fn next_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time").expect("open").expect("ok") {
            Message::Ping(_) | Message::Pong(_) => {}
            other => return other,
        }
    }
}

async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match next_frame(ws).await {
        Message::Text(text) => text.as_str().to_string(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_subscriber_that_never_reads_is_disconnected_with_the_reason() {
    // engine.io spoken by hand over a WebSocket, so that the client can stop reading at will.
    let server = start(FeedConfig { queue_capacity: 16, ..FeedConfig::default() }).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(server.addr).await.expect("connect");
    let url = format!("ws://{}/ws/?EIO=4&transport=websocket", server.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("handshake");
    let open = next_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    assert_eq!(open["upgrades"], json!([]), "nothing to upgrade to from a WebSocket");
    ws.send(Message::text("40")).await.expect("send");
    assert!(next_text(&mut ws).await.starts_with(r#"40{"sid":"#));
    ws.send(Message::text(r#"427["join",{"chainId":"1","topic":"orders"}]"#)).await.expect("send");
    assert_eq!(next_text(&mut ws).await, "437[true]");

    let data = json!({"params": "x".repeat(2000)});
    let mut published = 0;
    while server.feed.stats().dropped_slow == 0 {
        assert!(published < 100_000, "the slow subscriber was never closed");
        server.feed.publish(1, Topic::Orders, None, "apporder_updated", &data);
        published += 1;
    }
    let mut last_text = String::new();
    let close = loop {
        match next_frame(&mut ws).await {
            Message::Text(text) => last_text = text.as_str().to_string(),
            Message::Close(frame) => break frame.expect("a close frame with a reason"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(last_text, "41", "a socket.io disconnect comes before the close");
    assert_eq!(close.reason.as_str(), "slow consumer");
    server.wait_for_subscribers(0).await;
    server.stop().await;
}
