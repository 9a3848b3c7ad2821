//! Feed fan-out (`cargo bench --bench feed`): a real server with only the feed, 1,000 plain WebSocket
//! subscribers on loopback, bursts of events published to all of them. Prints the deliveries per second
//! (events × subscribers, counted when the clients have read them) and the cost of one `publish` call.
//! Server and clients share the machine's cores, so the figure is a floor for the server alone.

use actix_web::{App, HttpServer, web};
use dragon::feed::{self, Feed, FeedConfig, Topic};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: usize = 1000;
const EVENTS_PER_ROUND: u64 = 200;
const ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let feed = Feed::new(FeedConfig {
        queue_capacity: 4096,
        max_subscribers: SUBSCRIBERS + 10,
        ping_interval: Duration::from_secs(600),
        ..FeedConfig::default()
    });
    let data = web::Data::new(feed.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(feed::configure))
        .workers(1)
        .backlog(2048)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    tokio::spawn(server);

    let received = Arc::new(AtomicU64::new(0));
    let subscribe = json!({"op": "subscribe", "chainId": 1, "topic": "orders"}).to_string();
    for _ in 0..SUBSCRIBERS {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/feed")).await.expect("connect");
        ws.send(Message::text(subscribe.clone())).await.expect("subscribe");
        match ws.next().await {
            Some(Ok(Message::Text(ack))) if ack.as_str().contains("\"ok\":true") => {}
            other => panic!("no acknowledgement: {other:?}"),
        }
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(msg, Message::Text(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    assert_eq!(feed.subscribers(), SUBSCRIBERS);

    let order = json!({
        "orderHash": "0x1111111111111111111111111111111111111111111111111111111111111111",
        "order": {"app": "0x2222222222222222222222222222222222222222", "appprice": "1000000000", "volume": "1",
                  "tag": "0x0000000000000000000000000000000000000000000000000000000000000000"},
        "remaining": 1, "status": "open",
    });
    let mut rates = Vec::new();
    let mut publish_costs = Vec::new();
    for round in 0..ROUNDS {
        let target = received.load(Ordering::Relaxed) + EVENTS_PER_ROUND * SUBSCRIBERS as u64;
        let start = Instant::now();
        for _ in 0..EVENTS_PER_ROUND {
            feed.publish(1, Topic::Orders, None, "apporder_published", &order);
        }
        let publish_time = start.elapsed();
        while received.load(Ordering::Relaxed) < target {
            assert!(start.elapsed() < Duration::from_secs(120), "deliveries stalled");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let elapsed = start.elapsed();
        let rate = (EVENTS_PER_ROUND * SUBSCRIBERS as u64) as f64 / elapsed.as_secs_f64();
        let per_publish = publish_time.as_secs_f64() * 1e6 / EVENTS_PER_ROUND as f64;
        println!(
            "round {round}: {} deliveries in {elapsed:.2?}: {rate:.0}/s; publish() to {SUBSCRIBERS}: {per_publish:.1} us",
            EVENTS_PER_ROUND * SUBSCRIBERS as u64
        );
        rates.push(rate);
        publish_costs.push(per_publish);
    }
    assert_eq!(feed.stats().dropped_slow, 0, "a subscriber fell behind during the bench");
    rates.sort_by(f64::total_cmp);
    publish_costs.sort_by(f64::total_cmp);
    println!(
        "feed fan-out to {SUBSCRIBERS} WebSocket subscribers: median {:.0} deliveries/s; publish() median {:.1} us \
         ({:.0} ns per subscriber)",
        rates[ROUNDS / 2],
        publish_costs[ROUNDS / 2],
        publish_costs[ROUNDS / 2] * 1000.0 / SUBSCRIBERS as f64
    );
    handle.stop(false).await;
}
