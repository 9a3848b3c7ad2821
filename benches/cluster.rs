//! The feed across instances (issue 19, docs/benchmarks.md "The feed across instances"): two exchange instances in
//! this process on one PostgreSQL and one anvil, with a real nats-server between them. App orders are posted to
//! instance A one at a time at a steady rate; a `/feed` subscriber on A and one on B time each order's
//! `apporder_published` from the moment its POST was sent. Both go through NATS (an instance delivers its own
//! events through it too), so B minus A is what crossing instances adds.
//!
//! Then publications per second against the number of instances: 1, 2 and 3 `dragon serve` processes on one
//! NATS, 16 connections spread over them, batches of 100 workerpool orders spread over the five categories (so
//! each instance writes the categories it owns and routes the others to their owners).
//!
//! Then failover: two `dragon serve` processes (lease renewed every 200 ms, 1 s TTL), the owner of category 1
//! killed with SIGKILL, and a request of that category posted to the survivor at the same instant; the time from
//! the kill to that request's `deal_proposed` on the survivor's feed, over `CLUSTER_KILLS` (default 10) kills.
//! The killed instance is started again between two kills.
//!
//! `cargo bench --bench cluster` (nats-server on PATH: `scripts/setup.sh` installs it). `CLUSTER_ORDERS`
//! (default 2000) orders at `CLUSTER_RATE` (default 200) per second for the lag; `CLUSTER_CURVE_ORDERS` (default
//! 80,000) orders per point of the curve; `CLUSTER_PHASES` (default `lag,curve,failover`) picks phases.

mod common;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::setup::{self, Account};
use dragon::local::{Anvil, NatsServer, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, Domain};
use dragon::server::{AppState, run};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench())
}

/// Arrival time of each order hash's `apporder_published` on one subscriber.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn subscribe(base: &str, chain_id: u64) -> anyhow::Result<Arrivals> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/feed", base.replace("http://", "ws://"))).await?;
    ws.send(Message::text(json!({"op": "subscribe", "chainId": chain_id, "topic": "orders"}).to_string())).await?;
    // The answer to subscribe, before any order is sent.
    ws.next().await;
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let now = Instant::now();
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
            if v["event"] == "apporder_published"
                && let Some(h) = v["data"]["orderHash"].as_str()
            {
                seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(h.to_owned(), now);
            }
        }
    });
    Ok(arrivals)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

async fn bench() -> anyhow::Result<()> {
    let n: usize = std::env::var("CLUSTER_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rate: f64 = std::env::var("CLUSTER_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(200.0);
    let dir = std::env::temp_dir().join(format!("dragon-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = PgCluster::start(&dir.join("pg"), free_port()?)?;
    let anvil = Anvil::start(free_port()?, &[])?;
    let nats = NatsServer::start(free_port()?)?;
    let result = phases(&pg, &anvil, &nats, n, rate).await;
    nats.stop()?;
    anvil.stop()?;
    pg.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn phases(pg: &PgCluster, anvil: &Anvil, nats: &NatsServer, n: usize, rate: f64) -> anyhow::Result<()> {
    let owner: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&anvil.url(), owner.clone()).await?;
    let admin = Account::new(&anvil.url(), &owner)?;
    setup::fund(&d, &admin, &[&admin], U256::from(1_000_000u64 * Nrlc::PER_RLC)).await?;
    let app = setup::create_app(&d, &admin, "lag", b"docker.io/dragon/lag:1").await?;
    let pool = setup::create_workerpool(&d, &admin, "bench pool").await?;
    let wanted = std::env::var("CLUSTER_PHASES").unwrap_or_else(|_| "lag,curve,failover".into());
    if wanted.contains("lag") {
        lag(pg, anvil, nats, &d, &owner, app, n, rate).await?;
    }
    if wanted.contains("curve") {
        curve(pg, anvil, nats, &d, &owner, pool).await?;
    }
    if wanted.contains("failover") {
        failover(pg, anvil, nats, &d, &owner, [app, pool]).await?;
    }
    Ok(())
}

/// Feed delivery lag, with and without NATS, on the same and on another instance.
#[allow(clippy::too_many_arguments)]
async fn lag(
    pg: &PgCluster,
    anvil: &Anvil,
    nats: &NatsServer,
    d: &dragon::chain::deploy::Deployment,
    owner: &PrivateKeySigner,
    app: Address,
    n: usize,
    rate: f64,
) -> anyhow::Result<()> {
    let owner = owner.clone();
    dragon::store::ensure_database(&pg.url("postgres"), "bench").await?;
    let mut bases = Vec::new();
    // A and B on NATS; C alone, without it (the in-process feed, for comparison).
    for with_nats in [true, true, false] {
        let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut config = dragon::config::Config::new(listen, pg.url("bench"), anvil.url(), d.clone());
        if with_nats {
            config.nats.url = Some(nats.url());
        }
        config.market.max_open_orders = 2 * n + 10;
        let state = AppState::connect(&config).await?;
        let listener = std::net::TcpListener::bind(listen)?;
        tokio::spawn(run(listener, state, std::future::pending::<()>()));
        bases.push(format!("http://{listen}"));
    }
    let http = reqwest::Client::new();
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let orders: Vec<(String, AnyOrder)> = (0..2 * n)
        .map(|i| {
            let o = common::signed_app_order(&domain, &owner, app, 1, i as u64)?;
            Ok((o.order_hash(&domain).to_string(), o))
        })
        .collect::<anyhow::Result<_>>()?;
    let row = |label: &str, mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        println!(
            "| {label} | {} of {n} | {:.2} ms | {:.2} ms | {:.2} ms |",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    };
    println!("| path | events | p50 | p99 | max |\n|---|---:|---:|---:|---:|");

    // One instance without NATS: its own subscriber.
    let on_c = subscribe(&bases[2], d.chain_id).await?;
    let sent = post_all(&http, &bases[2], &owner, d.chain_id, &orders[n..], rate).await?;
    let c = snapshot(&on_c);
    row("no NATS: POST sent → event on the same instance's subscriber", lags(&sent, &c));

    // Two instances on NATS, orders posted to A.
    let (on_a, on_b) = (subscribe(&bases[0], d.chain_id).await?, subscribe(&bases[1], d.chain_id).await?);
    let sent = post_all(&http, &bases[0], &owner, d.chain_id, &orders[..n], rate).await?;
    let (a, b) = (snapshot(&on_a), snapshot(&on_b));
    row("NATS: POST sent on A → event on A's subscriber", lags(&sent, &a));
    row("NATS: POST sent on A → event on B's subscriber", lags(&sent, &b));
    let both: HashMap<String, Instant> = sent.keys().filter_map(|h| Some((h.clone(), *a.get(h)?))).collect();
    row("NATS: B's subscriber minus A's, per event", lags(&both, &b));
    Ok(())
}

/// Publications per second against the number of instances: k `dragon serve` processes (1, 2, 3) on a fresh
/// database each and the one NATS, 16 connections spread over them, batches of 100 workerpool orders of the five
/// categories, 3 s.
async fn curve(
    pg: &PgCluster,
    anvil: &Anvil,
    nats: &NatsServer,
    d: &dragon::chain::deploy::Deployment,
    owner: &PrivateKeySigner,
    pool: Address,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dragon-bench-curve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let dep_path = dir.join("deployment.json");
    d.write(&dep_path)?;
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let per_run: u64 = std::env::var("CLUSTER_CURVE_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(80_000);
    println!(
        "\n| instances | orders/s (batches of 100, 16 connections, 3 s) | accepted | CPU µs per order: exchange instances, PostgreSQL, NATS, load generator |\n|---:|---:|---:|---|"
    );
    for k in 1..=3u64 {
        // Signed up front, on both cores (signing is the client's cost, not the exchange's).
        let sign = |range: std::ops::Range<u64>| -> anyhow::Result<Vec<Value>> {
            range
                .map(|i| {
                    let o = common::signed_pool_order(&domain, owner, pool, [1 + i % 97, 1, i % 5], k << 40 | i)?;
                    Ok(json!({"order": o.to_json()}))
                })
                .collect()
        };
        let (lo, hi) = std::thread::scope(|s| {
            let lo = s.spawn(|| sign(0..per_run / 2));
            let hi = s.spawn(|| sign(per_run / 2..per_run));
            (lo.join(), hi.join())
        });
        let mut orders = lo.map_err(|_| anyhow::anyhow!("signing thread"))??;
        orders.extend(hi.map_err(|_| anyhow::anyhow!("signing thread"))??);
        let batches: Arc<Vec<bytes::Bytes>> =
            Arc::new(orders.chunks(100).map(|c| bytes::Bytes::from(json!({ "orders": c }).to_string())).collect());
        let db = format!("curve{k}");
        dragon::store::ensure_database(&pg.url("postgres"), &db).await?;
        let mut servers = Vec::new();
        let mut bases = Vec::new();
        for i in 0..k {
            let (child, base) = serve(&dir, &format!("{k}-{i}"), "", nats, anvil, &dep_path, &pg.url(&db)).await?;
            servers.push(child);
            bases.push(base);
        }
        let http = reqwest::Client::new();
        let mut tokens = Vec::new();
        for base in &bases {
            tokens.push(common::session(&http, &format!("http://{base}"), owner, d.chain_id).await?);
        }
        // Every category owned before the clock starts.
        owners(&http, &bases.iter().map(|b| format!("http://{b}")).collect::<Vec<_>>(), d.chain_id).await?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pids: Vec<u32> = servers.iter().filter_map(tokio::process::Child::id).collect();
        let cpu = || {
            [
                pids.iter().map(|p| common::raw::own_cpu(*p)).sum::<f64>(),
                common::raw::tree_cpu(pg.pid()),
                common::raw::own_cpu(nats.pid()),
                common::raw::own_cpu(std::process::id()),
            ]
        };
        let cpu_before = cpu();
        let start = Instant::now();
        let run_for = Duration::from_secs(3);
        let tasks: Vec<_> = (0..16)
            .map(|c| {
                let i = c % bases.len();
                let (addr, token, batches, next) = (bases[i].clone(), tokens[i].clone(), batches.clone(), next.clone());
                tokio::spawn(async move {
                    let mut accepted = 0usize;
                    let Ok(mut conn) = common::raw::Conn::open(&addr).await else { return 0 };
                    let headers = [("content-type", "application/json"), ("authorization", token.as_str())];
                    while start.elapsed() < run_for {
                        let Some(b) = batches.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) else {
                            break;
                        };
                        let path = format!("/workerpoolorders/batch?chainId={}", 31337);
                        let body = match conn.request("POST", &path, &headers, b).await {
                            Ok((200, body)) => body,
                            Ok((status, body)) => {
                                eprintln!("batch refused: {status} {}", String::from_utf8_lossy(&body));
                                break;
                            }
                            Err(e) => {
                                eprintln!("batch failed: {e}");
                                break;
                            }
                        };
                        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                        accepted += v["results"].as_array().map_or(0, |r| r.iter().filter(|x| x["ok"] == true).count());
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            accepted += t.await.unwrap_or(0);
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu_after = cpu();
        let per = |i: usize| (cpu_after[i] - cpu_before[i]) * 1e6 / accepted.max(1) as f64;
        let ran_out = if next.load(std::sync::atomic::Ordering::Relaxed) >= batches.len() {
            " (ran out of orders: set CLUSTER_CURVE_ORDERS higher)"
        } else {
            ""
        };
        println!(
            "| {k} | {:.0}{ran_out} | {accepted} | {:.0}, {:.0}, {:.0}, {:.0} |",
            accepted as f64 / secs,
            per(0),
            per(1),
            per(2),
            per(3)
        );
        for mut s in servers {
            let _ = s.kill().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Starts a `dragon serve` process on `db` and NATS (`extra` more TOML), and waits until it is healthy; returns
/// it and its address (host:port).
async fn serve(
    dir: &std::path::Path,
    name: &str,
    extra: &str,
    nats: &NatsServer,
    anvil: &Anvil,
    deployment: &std::path::Path,
    db: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let port = free_port()?;
    let cfg = dir.join(format!("dragon-{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\nmax_open_orders = 100000000\n{extra}\n[limits]\nper_ip_per_second = 10000000\nper_address_per_second = 10000000\n[nats]\nurl = \"{}\"\n",
            nats.url()
        ),
    )?;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dragon"))
        .args(["serve", "--rpc-url", &anvil.url(), "--config"])
        .arg(&cfg)
        .arg("--deployment")
        .arg(deployment)
        .env("DATABASE_URL", db)
        .env("RUST_LOG", std::env::var("CLUSTER_CHILD_LOG").unwrap_or_else(|_| "warn".into()))
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("http://127.0.0.1:{port}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok((child, format!("127.0.0.1:{port}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("dragon serve did not become healthy")
}

/// Waits until each of the five categories is owned by exactly one of `bases`, the same two looks in a row (a
/// second apart: `/health` is cached for one); returns each instance's categories.
async fn owners(http: &reqwest::Client, bases: &[String], chain_id: u64) -> anyhow::Result<Vec<Vec<u64>>> {
    let mut last: Option<Vec<Vec<u64>>> = None;
    for _ in 0..120 {
        let mut shares = Vec::new();
        for b in bases {
            let h: Value = http.get(format!("{b}/health?chainId={chain_id}")).send().await?.json().await?;
            let mut c: Vec<u64> =
                h["categories"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
            c.sort_unstable();
            shares.push(c);
        }
        let mut all: Vec<u64> = shares.iter().flatten().copied().collect();
        all.sort_unstable();
        if all == [0, 1, 2, 3, 4] && last.as_ref() == Some(&shares) {
            return Ok(shares);
        }
        last = Some(shares);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    anyhow::bail!("the categories were not spread over the instances")
}

/// The owner of category 1 killed (SIGKILL) with a request of that category posted to the other instance at the
/// same instant: the time to that request's `deal_proposed` on the survivor's feed.
async fn failover(
    pg: &PgCluster,
    anvil: &Anvil,
    nats: &NatsServer,
    d: &dragon::chain::deploy::Deployment,
    owner: &PrivateKeySigner,
    [app, pool]: [Address; 2],
) -> anyhow::Result<()> {
    let kills: usize = std::env::var("CLUSTER_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("dragon-bench-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let dep_path = dir.join("deployment.json");
    d.write(&dep_path)?;
    let db = "failover";
    dragon::store::ensure_database(&pg.url("postgres"), db).await?;
    let lease = "[lease]\nrenew_ms = 200\nttl_ms = 1000";
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let http = reqwest::Client::new();
    let mut procs = Vec::new();
    for i in 0..2 {
        procs.push(serve(&dir, &format!("f{i}"), lease, nats, anvil, &dep_path, &pg.url(db)).await?);
    }
    // What every request of category 1 matches: an app order and a pool order with volume for every kill.
    let first = format!("http://{}", procs[0].1);
    let token = common::session(&http, &first, owner, d.chain_id).await?;
    let post = async |base: &str, token: &str, o: &AnyOrder| -> anyhow::Result<()> {
        let r = http
            .post(format!("{base}/{}orders?chainId={}", o.kind(), d.chain_id))
            .header("authorization", token)
            .json(&json!({"order": o.to_json()}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "publication refused: {}", r.text().await?);
        Ok(())
    };
    let app_order = common::signed(&domain, owner, common::app_order(app, [1, 1000], 1))?;
    post(&first, &token, &app_order).await?;
    post(&first, &token, &common::signed_pool_order(&domain, owner, pool, [1, 1000, 1], 1)?).await?;

    let mut times = Vec::new();
    for kill in 0..kills {
        let bases: Vec<String> = procs.iter().map(|p| format!("http://{}", p.1)).collect();
        let shares = owners(&http, &bases, d.chain_id).await?;
        let victim = usize::from(!shares[0].contains(&1));
        let survivor = 1 - victim;
        let token = common::session(&http, &bases[survivor], owner, d.chain_id).await?;
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{}/feed", bases[survivor].replace("http://", "ws://"))).await?;
        ws.send(Message::text(json!({"op": "subscribe", "chainId": d.chain_id, "topic": "deals"}).to_string())).await?;
        ws.next().await;
        let request = common::signed_request(&domain, owner, app, [5, 1], 1_000 + kill as u64)?;
        let wanted = request.order_hash(&domain).to_string();

        let killed = Instant::now();
        procs[victim].0.start_kill()?;
        // Posted at once: the survivor's router waits for the category's new owner.
        post(&bases[survivor], &token, &request).await?;
        let matched = loop {
            let Some(Ok(Message::Text(t))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await? else {
                anyhow::bail!("the survivor's feed ended");
            };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["event"] == "deal_proposed" && v["data"]["requestorderHash"] == wanted.as_str() {
                break killed.elapsed();
            }
        };
        times.push(matched.as_secs_f64() * 1e3);
        let _ = procs[victim].0.wait().await;
        procs[victim] = serve(&dir, &format!("f{kill}-again"), lease, nats, anvil, &dep_path, &pg.url(db)).await?;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "\n| failover (lease renewed every 200 ms, TTL 1 s) | kills | p50 | max |\n|---|---:|---:|---:|\n| SIGKILL of the owner → first match on the new owner | {} | {:.0} ms | {:.0} ms |",
        times.len(),
        percentile(&times, 0.5),
        times.last().copied().unwrap_or(f64::NAN)
    );
    println!("each: {:?}", times.iter().map(|t| t.round() as u64).collect::<Vec<_>>());
    for (mut child, _) in procs {
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Posts `orders` to `base` one at a time at `rate` per second; returns when each was sent. Then waits 2 s for
/// the last events.
async fn post_all(
    http: &reqwest::Client,
    base: &str,
    owner: &PrivateKeySigner,
    chain_id: u64,
    orders: &[(String, AnyOrder)],
    rate: f64,
) -> anyhow::Result<HashMap<String, Instant>> {
    let token = common::session(http, base, owner, chain_id).await?;
    let mut sent = HashMap::new();
    let start = Instant::now();
    for (i, (hash, o)) in orders.iter().enumerate() {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        sent.insert(hash.clone(), Instant::now());
        let r = http
            .post(format!("{base}/apporders?chainId={chain_id}"))
            .header("authorization", &token)
            .json(&json!({"order": o.to_json()}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "publication refused: {}", r.text().await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(sent)
}

fn snapshot(a: &Arrivals) -> HashMap<String, Instant> {
    a.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// Milliseconds from each `from` time to the `to` time of the same hash (signed: `to` may come first).
fn lags(from: &HashMap<String, Instant>, to: &HashMap<String, Instant>) -> Vec<f64> {
    from.iter()
        .filter_map(|(h, t0)| {
            let t = to.get(h)?;
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            Some(ms(t.saturating_duration_since(*t0)) - ms(t0.saturating_duration_since(*t)))
        })
        .collect()
}
