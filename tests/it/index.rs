//! Publication reads what chain sync indexes, not the node (issue 20). A counting JSON-RPC proxy sits between
//! the server and anvil: once the index is warm, publishing orders of every kind makes no call to the node,
//! and what changed on chain meanwhile (a foreign deal, a closure, a presignature, a withdrawal) reaches
//! publication through chain sync alone.

use crate::harness::database;
use crate::market::{Server, World, provider, request_of};
use alloy::primitives::{Bytes, U256};
use dragon::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use dragon::order::AnyOrder;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// JSON-RPC methods chain sync and the health check poll with, whatever publication does.
const POLLING: [&str; 4] = ["eth_blockNumber", "eth_getLogs", "eth_getBlockByNumber", "eth_chainId"];

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    calls: Mutex<BTreeMap<String, u64>>,
}

impl Proxy {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.calls.lock().expect("calls").clone()
    }
}

async fn forward(body: actix_web::web::Bytes, proxy: actix_web::web::Data<Proxy>) -> actix_web::HttpResponse {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        let items = match &v {
            serde_json::Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        let mut calls = proxy.calls.lock().expect("calls");
        for item in items {
            let method = item["method"].as_str().unwrap_or("?").to_owned();
            *calls.entry(method).or_default() += 1;
        }
    }
    let answer = proxy
        .http
        .post(&proxy.upstream)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("anvil answers");
    let bytes = answer.bytes().await.expect("anvil's body");
    actix_web::HttpResponse::Ok().content_type("application/json").body(bytes)
}

/// Starts the proxy in front of `upstream`; returns its URL.
fn start_proxy(upstream: String) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy { upstream, http: reqwest::Client::new(), calls: Mutex::default() });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let data = actix_web::web::Data::from(proxy.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(actix_web::web::PayloadConfig::new(64 << 20))
            .default_service(actix_web::web::to(forward))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (url, proxy)
}

/// The calls made between two snapshots, polling left out.
fn made(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(m, _)| !POLLING.contains(&m.as_str()))
        .map(|(m, n)| (m.clone(), n - before.get(m).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn publish_ok(server: &Server, w: &World, key: &alloy::signers::local::PrivateKeySigner, o: &AnyOrder) -> u64 {
    let (status, body) = server.publish(key, o).await;
    assert_eq!(status, 200, "{body}");
    let _ = w;
    body["published"]["remaining"].as_u64().expect("remaining")
}

async fn publication_makes_no_chain_call_once_the_index_is_warm() {
    let w = World::new().await;
    let (rpc, proxy) = start_proxy(w.node.url());
    let db = database().await;
    let mut config = w.config(db.clone());
    config.rpc_url = rpc;
    let server = Server::start(config.clone()).await;

    // Warm-up: one order of each kind reads each asset's owner, each account's code and stake once.
    let start = proxy.snapshot();
    publish_ok(&server, &w, &w.owner, &w.app_order(3, 10, 1)).await;
    publish_ok(&server, &w, &w.owner, &w.dataset_order(2, 10, 1)).await;
    publish_ok(&server, &w, &w.owner, &w.pool_order(50, 10, 1, 1)).await;
    // Asks 10 per task of the pool, which offers at 50: it rests.
    publish_ok(&server, &w, &w.requester, &w.request(&w.requester, 10, 1, 1, 1)).await;
    let warm = proxy.snapshot();
    let cold = made(&start, &warm);
    assert!(cold.get("eth_call").copied().unwrap_or(0) >= 4, "owners and stakes are read once: {cold:?}");
    assert!(cold.contains_key("eth_getCode"), "signers' code is read once: {cold:?}");

    // Warm: more orders of every kind, from the same owners and requesters, make no call at all.
    for salt in 2..7u8 {
        publish_ok(&server, &w, &w.owner, &w.app_order(3, 10, salt)).await;
        publish_ok(&server, &w, &w.owner, &w.dataset_order(2, 10, salt)).await;
        publish_ok(&server, &w, &w.owner, &w.pool_order(50, 10, 1, salt)).await;
        publish_ok(&server, &w, &w.requester, &w.request(&w.requester, 10, 1, 1, salt)).await;
    }
    let after = proxy.snapshot();
    assert_eq!(made(&warm, &after), BTreeMap::new(), "20 warm publications made chain calls");

    let url = w.node.url();
    let hub = DragonHub::new(w.deployment.hub, provider(&url, &w.owner));

    // A foreign deal (matchOrders called directly, Dragon never saw the orders) consumed 1 of an app order's 3:
    // published afterwards, the order has 2 left, read from the deals chain sync stored.
    let app = w.app_order(0, 3, 40);
    let pool = w.pool_order(0, 1, 0, 40);
    let req = w.signed(&w.requester, request_of(w.requester.address(), w.app, [0, 0], 1, 0, "{}", 40));
    w.match_directly(&w.requester, &app, &pool, &req).await;
    // Closed on chain before anyone published it.
    let closed = w.app_order(1, 3, 41);
    let AnyOrder::App(a) = &closed else { unreachable!() };
    let op = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 1, sign: Bytes::new() };
    hub.manageAppOrder(op).send().await.expect("close").get_receipt().await.expect("mined");
    // Presigned on chain, published without a signature.
    let presigned = w.app_order(1, 1, 42);
    let AnyOrder::App(a) = &presigned else { unreachable!() };
    let op = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 0, sign: Bytes::new() };
    let receipt = hub.manageAppOrder(op).send().await.expect("presign").get_receipt().await.expect("mined");
    // The requester withdraws all but 100 nRLC of its stake.
    let rhub = DragonHub::new(w.deployment.hub, provider(&url, &w.requester));
    let stake = rhub.viewAccount(w.requester.address()).call().await.expect("account").stake;
    let receipt2 =
        rhub.withdraw(stake - U256::from(100)).send().await.expect("withdraw").get_receipt().await.expect("mined");
    let last = receipt.block_number.unwrap_or(0).max(receipt2.block_number.unwrap_or(0));
    server.synced(last).await;

    let before = proxy.snapshot();
    assert_eq!(publish_ok(&server, &w, &w.owner, &app).await, 2, "the foreign deal consumed 1 of 3");
    let (status, body) = server.publish(&w.owner, &closed).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("order already consumed")), "{body}");
    let mut bare = presigned.clone();
    bare.set_sign(Bytes::new());
    publish_ok(&server, &w, &w.owner, &bare).await;
    // 100 nRLC of stake backs a request of 10 per task (app 0, pool 10) ten times, not eleven.
    let fits = w.signed(&w.requester, request_of(w.requester.address(), w.app, [0, 10], 10, 1, "{}", 43));
    publish_ok(&server, &w, &w.requester, &fits).await;
    assert_eq!(made(&before, &proxy.snapshot()), BTreeMap::new(), "publications after chain changes made calls");
    let short = w.signed(&w.requester, request_of(w.requester.address(), w.app, [0, 10], 11, 1, "{}", 44));
    let (status, body) = server.publish(&w.requester, &short).await;
    assert_eq!(status, 403, "the index knows the withdrawal: {body}");
    assert_eq!(body["code"], "insufficient_stake", "{body}");

    // The index is what sync keeps: the metrics show its cold reads stopped growing after the warm-up.
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.expect("metrics").text().await.expect("text");
    let cold_reads = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("dragon_chain_index_cold_reads_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("the cold reads counter")
    };
    let n = cold_reads(&metrics);
    assert!(n >= 4, "{metrics}");
    for salt in 50..53u8 {
        publish_ok(&server, &w, &w.owner, &w.app_order(3, 10, salt)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.expect("metrics").text().await.expect("text");
    assert_eq!(cold_reads(&metrics), n, "{metrics}");
    server.shutdown().await;

    // Restarted on the same store: publication skips its store read only for hashes no table holds, and the
    // tracker of those hashes is refilled from the tables at start-up. The order closed on chain (in
    // `order_marks` only) and the one already published (in `orders`) are still known.
    let server = Server::start(config).await;
    let (status, body) = server.publish(&w.owner, &closed).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("order already consumed")), "{body}");
    let (status, body) = server.publish(&w.owner, &app).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("order already published")), "{body}");
    publish_ok(&server, &w, &w.owner, &w.app_order(3, 10, 60)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_index() {
    crate::harness::capture_logs();
    publication_makes_no_chain_call_once_the_index_is_warm().await;
}
