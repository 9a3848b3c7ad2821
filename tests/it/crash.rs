//! `dragon serve` as a separate process, killed with SIGKILL in the middle of a publishing load: every order it
//! answered 201 must be in the book after a restart, and restarts must give the same book.

use crate::harness::{database, dragon_bin};
use crate::market::World;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Child {
    base: String,
    child: tokio::process::Child,
}

async fn spawn(w: &World, db: &str) -> Child {
    let port = dragon::local::free_port().expect("port");
    // The TOML file gives the listen address and limits loose enough for the load (flags would win over it).
    let config = std::env::temp_dir().join(format!("dragon-crash-{}-{port}.toml", std::process::id()));
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n[limits]\nper_ip_per_second = 100000\n"))
        .expect("write config");
    let child = tokio::process::Command::new(dragon_bin())
        .args(["serve", "--rpc-url", &w.node.url(), "--config"])
        .arg(&config)
        .arg("--deployment")
        .arg(&w.deployment_path)
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
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
async fn nothing_answered_201_is_lost_by_a_kill_9() {
    let w = World::new().await;
    let chain_id = w.deployment.chain_id;
    let db = database().await;
    let mut server = spawn(&w, &db).await;
    let token = bearer(&w, &server.base, chain_id).await;

    // Eight publishers post app orders (salts unique per publisher), remembering what was answered 201.
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
                    Ok(r) if r.status().as_u16() == 201 => {
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

    // Restart: every order answered 201 is open in the book; anything else listed was at least sent.
    let server = spawn(&w, &db).await;
    let listed = book(&server.base, &w, chain_id).await;
    let hashes: BTreeSet<String> = listed.iter().filter_map(|o| o["orderHash"].as_str().map(str::to_owned)).collect();
    let lost: Vec<_> = answered.difference(&hashes).collect();
    assert!(lost.is_empty(), "orders answered 201 but missing after the restart: {lost:?}");
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
