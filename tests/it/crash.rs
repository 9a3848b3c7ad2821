//! `dragon serve` as a separate process, killed with SIGKILL in the middle of a publishing load: every order it
//! answered 200 must be in the book after a restart, and restarts must give the same book.

use crate::harness::{database, dragon_bin};
use crate::market::World;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct Child {
    pub(crate) base: String,
    pub(crate) child: tokio::process::Child,
}

async fn spawn(w: &World, db: &str) -> Child {
    // Limits loose enough for the load.
    spawn_with(w, db, "[limits]\nper_ip_per_second = 100000\n").await
}

/// `dragon serve` (the binary) on `db` and `w`'s chain, configured by the TOML text `toml` (the listen address
/// is added to it); returns once it answers /health.
pub(crate) async fn spawn_with(w: &World, db: &str, toml: &str) -> Child {
    spawn_with_env(w, db, toml, &[]).await
}

/// [`spawn_with`], with more environment variables (an operator key, a log filter: `RUST_LOG` is `warn` unless
/// given).
pub(crate) async fn spawn_with_env(w: &World, db: &str, toml: &str, env: &[(&str, String)]) -> Child {
    let port = dragon::local::free_port().expect("port");
    // The TOML file gives the listen address and the limits (flags would win over it).
    let config = std::env::temp_dir().join(format!("dragon-crash-{}-{port}.toml", std::process::id()));
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n{toml}")).expect("write config");
    let child = tokio::process::Command::new(dragon_bin())
        .args(["serve", "--rpc-url", &w.node.url(), "--config"])
        .arg(&config)
        .arg("--deployment")
        .arg(&w.deployment_path)
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon serve");
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "dragon serve did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Child { base, child }
}

async fn bearer(w: &World, base: &str, chain_id: u64) -> String {
    let http = reqwest::Client::new();
    let c: Value = http
        .get(format!("{base}/challenge?chainId={chain_id}&address={}", w.owner.address()))
        .send()
        .await
        .expect("challenge")
        .json()
        .await
        .expect("json");
    let text = c["data"]["message"]["challenge"].as_str().expect("text").to_owned();
    let hash = dragon::api::auth::challenge_hash(chain_id, &text);
    let sig = dragon::order::signature::sign_digest(&w.owner, &hash).expect("sign");
    let auth = format!("{hash:#x}_{sig}_{}", w.owner.address());
    let s: Value = http
        .post(format!("{base}/sessions?chainId={chain_id}"))
        .header("authorization", auth)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    format!("Bearer {}", s["token"].as_str().expect("token"))
}

async fn book(base: &str, w: &World, chain_id: u64) -> Vec<Value> {
    let url = format!("{base}/apporders?chainId={chain_id}&appOwner={}&pageSize=1000", w.owner.address());
    let v: Value = reqwest::get(url).await.expect("list").json().await.expect("json");
    assert_eq!(v["ok"], true, "{v}");
    v["orders"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_200_is_lost_by_a_kill_9() {
    let w = World::new().await;
    let chain_id = w.deployment.chain_id;
    let db = database().await;
    let mut server = spawn(&w, &db).await;
    let token = bearer(&w, &server.base, chain_id).await;

    // Eight publishers post app orders (salts unique per publisher), remembering what was answered 200.
    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = Vec::new();
    for p in 0..8u32 {
        let (base, token, answered, sent) = (server.base.clone(), token.clone(), answered.clone(), sent.clone());
        let orders: Vec<AnyOrder> = (0..120u32)
            .map(|i| {
                let mut o = w.app_order(1 + u64::from(i % 7), 3, 0);
                if let AnyOrder::App(a) = &mut o {
                    a.salt = alloy::primitives::B256::left_padding_from(&(p * 1000 + i).to_be_bytes());
                }
                w.signed(&w.owner, o)
            })
            .collect();
        let domain = w.domain.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for o in orders {
                let hash = o.order_hash(&domain).to_string();
                sent.lock().expect("lock").insert(hash.clone());
                let r = http
                    .post(format!("{base}/apporders?chainId={chain_id}"))
                    .header("authorization", &token)
                    .json(&json!({"order": o.to_json()}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 200 => {
                        answered.lock().expect("lock").insert(hash);
                    }
                    Ok(r) => panic!("unexpected answer {}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    // Kill in the middle of the load.
    let start = Instant::now();
    while answered.lock().expect("lock").len() < 150 {
        assert!(start.elapsed() < Duration::from_secs(120), "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.start_kill().expect("kill -9");
    let _ = server.child.wait().await;
    for t in tasks {
        t.await.expect("publisher");
    }
    let answered = answered.lock().expect("lock").clone();
    let sent = sent.lock().expect("lock").clone();
    assert!(
        answered.len() < sent.len(),
        "the kill came before the end of the load ({} of {})",
        answered.len(),
        sent.len()
    );

    // Restart: every order answered 200 is open in the book; anything else listed was at least sent.
    let server = spawn(&w, &db).await;
    let listed = book(&server.base, &w, chain_id).await;
    let hashes: BTreeSet<String> = listed.iter().filter_map(|o| o["orderHash"].as_str().map(str::to_owned)).collect();
    let lost: Vec<_> = answered.difference(&hashes).collect();
    assert!(lost.is_empty(), "orders answered 200 but missing after the restart: {lost:?}");
    assert!(hashes.is_subset(&sent), "the book holds orders nobody sent");
    assert!(listed.iter().all(|o| o["status"] == "open" && o["remaining"] == 3));

    // And a clean stop and start gives the same book, order for order.
    let mut server = server;
    let pid = server.child.id().expect("pid");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
    let status = server.child.wait().await.expect("wait");
    assert!(status.success(), "graceful stop exits 0: {status}");
    let server = spawn(&w, &db).await;
    assert_eq!(book(&server.base, &w, chain_id).await, listed);
    drop(server);
}

/// Chain sync killed with SIGKILL while a stream of deals and task events goes on chain: after a restart, the
/// store holds every event exactly once (deals, tasks, remaining volumes agree with the chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_mid_stream_misses_nothing_and_applies_nothing_twice() {
    use alloy::providers::Provider;
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    use dragon::chain::contracts::hub::DragonHub;

    let w = World::new().await;
    let chain_id = w.deployment.chain_id;
    let db = database().await;
    let mut server = spawn(&w, &db).await;
    let token = bearer(&w, &server.base, chain_id).await;
    let http = reqwest::Client::new();
    let app = w.app_order(1, 1000, 1);
    let pool = w.pool_order(2, 1000, 0, 2);
    for o in [&app, &pool] {
        let r = http
            .post(format!("{}/{}orders?chainId={chain_id}", server.base, o.kind()))
            .header("authorization", &token)
            .json(&json!({"order": o.to_json()}))
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status().as_u16(), 200);
    }
    // The stream: deals made directly on chain (requests Dragon never saw), each task initialized.
    const DEALS: u64 = 24;
    let stream = {
        let (url, hub) = (w.node.url(), w.deployment.hub);
        let (requester, owner) = (w.requester.clone(), w.owner.clone());
        let (app, pool) = (app.clone(), pool.clone());
        let w_req: Vec<AnyOrder> = (0..DEALS).map(|i| w.request(&w.requester, 3, 1, 0, 100 + i as u8)).collect();
        tokio::spawn(async move {
            let as_owner = DragonHub::new(hub, crate::market::provider(&url, &owner));
            for r in &w_req {
                let deal = crate::market::match_on_chain(&url, hub, &requester, [&app, &pool, r]).await;
                as_owner
                    .initialize(deal, alloy::primitives::U256::ZERO)
                    .send()
                    .await
                    .expect("init")
                    .get_receipt()
                    .await
                    .expect("mined");
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    // Kill while the stream runs, leave it dead for a few blocks, restart.
    let deals_now = async |base: &str| -> u64 {
        let v: Value =
            reqwest::get(format!("{base}/deals?chainId={chain_id}")).await.expect("deals").json().await.expect("json");
        v["count"].as_u64().unwrap_or(0)
    };
    let start = Instant::now();
    while deals_now(&server.base).await < 6 {
        assert!(start.elapsed() < Duration::from_secs(60), "the stream did not reach the server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.start_kill().expect("kill -9");
    let _ = server.child.wait().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let server = spawn(&w, &db).await;
    stream.await.expect("stream");

    // What the chain says.
    let p = crate::market::provider(&w.node.url(), &w.owner);
    let logs =
        p.get_logs(&Filter::new().address(w.deployment.hub).from_block(w.deployment.block_number)).await.expect("logs");
    let chain_deals: BTreeSet<String> = logs
        .iter()
        .filter(|l| l.topic0() == Some(&DragonHub::OrdersMatched::SIGNATURE_HASH))
        .filter_map(|l| l.log_decode::<DragonHub::OrdersMatched>().ok())
        .map(|l| format!("{:#x}", l.inner.data.dealid))
        .collect();
    let inits = logs.iter().filter(|l| l.topic0() == Some(&DragonHub::TaskInitialize::SIGNATURE_HASH)).count();
    assert_eq!(chain_deals.len() as u64, DEALS);
    assert_eq!(inits as u64, DEALS);

    // What Dragon says, once caught up with the head (the last task event is a block after the last deal).
    let head = p.get_block_number().await.expect("head");
    let start = Instant::now();
    loop {
        let h: Value =
            reqwest::get(format!("{}/health", server.base)).await.expect("health").json().await.expect("json");
        if h["sync"]["block"].as_u64() >= Some(head) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "sync did not catch up: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v: Value = reqwest::get(format!("{}/deals?chainId={chain_id}&pageSize=100", server.base))
        .await
        .expect("deals")
        .json()
        .await
        .expect("json");
    assert_eq!(v["count"], DEALS, "no deal applied twice");
    let listed: BTreeSet<String> =
        v["deals"].as_array().expect("deals").iter().filter_map(|d| d["dealid"].as_str().map(str::to_owned)).collect();
    assert_eq!(listed, chain_deals);
    for d in &listed {
        let one: Value = reqwest::get(format!("{}/deals/{d}?chainId={chain_id}", server.base))
            .await
            .expect("deal")
            .json()
            .await
            .expect("json");
        assert_eq!(one["tasks"][0]["status"], "ACTIVE", "the task event of {d} was applied: {one}");
    }
    let got: Value =
        reqwest::get(format!("{}/workerpoolorders/{}?chainId={chain_id}", server.base, pool.order_hash(&w.domain)))
            .await
            .expect("pool")
            .json()
            .await
            .expect("json");
    assert_eq!(got["remaining"], 1000 - DEALS, "each deal lowered the pool's volume exactly once");
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let events: i64 = client.query_one("SELECT count(*) FROM task_events", &[]).await.expect("count").get(0);
    assert_eq!(events as u64, DEALS, "each task event applied exactly once");
    drop(server);
}
