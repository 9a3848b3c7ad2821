//! Load benchmark of `dragon serve`: pre-signed orders posted over HTTP from many connections, against a real
//! PostgreSQL and anvil started here. Reports accepted-and-durable orders per second (a 200 or a batch answer
//! comes after the commit) with p50/p99 latency, beside the bare signature-recovery rate measured on the same
//! cores in the same run (the ceiling), then book queries per second.
//!
//! `cargo bench --bench publish` (release build of the server; about two minutes). Environment:
//! `PUBLISH_ORDERS` (default 100000) orders to sign up front. The orders are spread over 100 apps, so a book
//! query walks one app's orders (about 1,000 at the end), not the whole book.

mod common;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use common::{login, session};
use dragon::chain::setup::{self, Account};
use dragon::local::{Anvil, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, Domain, signature};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Stats {
    count: usize,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
    fn line(&self, name: &str, unit: &str) {
        println!(
            "| {name} | {:.0} {unit}/s | {:.2} ms | {:.2} ms | {} |",
            self.count as f64 / self.secs,
            self.pct(0.5),
            self.pct(0.99),
            self.count
        );
    }
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let n: usize = std::env::var("PUBLISH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("dragon-bench-{}", std::process::id()));
    let pg = PgCluster::start(&dir.join("pg"), free_port()?)?;
    dragon::store::ensure_database(&pg.url("postgres"), "bench").await?;
    let anvil = Anvil::start(free_port()?, &[])?;
    let key: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&anvil.url(), key.clone()).await?;
    let owner = Account::new(&anvil.url(), &key)?;
    setup::fund(&d, &owner, &[&owner], U256::from(1_000_000u64 * Nrlc::PER_RLC)).await?;
    let mut apps = Vec::new();
    for k in 0..100 {
        apps.push(setup::create_app(&d, &owner, &format!("bench-{k}"), b"docker.io/bench:1").await?);
    }
    let dep_path = dir.join("deployment.json");
    d.write(&dep_path)?;
    let port = free_port()?;
    let cfg_path = dir.join("dragon.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "listen = \"127.0.0.1:{port}\"\nmax_open_orders = 100000000\n[limits]\nper_ip_per_second = 10000000\nper_address_per_second = 10000000\n"
        ),
    )?;
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_dragon"))
        .args(["serve", "--rpc-url", &anvil.url(), "--config"])
        .arg(&cfg_path)
        .arg("--deployment")
        .arg(&dep_path)
        .env("DATABASE_URL", pg.url("bench"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    for _ in 0..300 {
        if http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Orders signed up front (signing is the client's cost, not the exchange's).
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let t = Instant::now();
    let orders: Vec<Value> = (0..n as u64)
        .map(|i| {
            let mut o = AnyOrder::App(AppOrder {
                app: apps[(i % 100) as usize],
                appprice: Nrlc::from_u64(1 + i % 97),
                volume: U256::from(1),
                tag: B256::ZERO,
                datasetrestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: B256::left_padding_from(&i.to_be_bytes()),
                sign: None,
            });
            o.set_sign(signature::sign_digest(&key, &o.order_hash(&domain).0).expect("sign"));
            json!({"order": o.to_json()})
        })
        .collect();
    eprintln!("signed {n} orders in {:.1} s", t.elapsed().as_secs_f64());
    // Bodies serialised up front too, so the load generator spends its share of the two cores on HTTP only.
    let single_bodies: Arc<Vec<bytes::Bytes>> =
        Arc::new(orders.iter().map(|o| bytes::Bytes::from(o.to_string())).collect());
    let orders = Arc::new(orders);

    // The ceiling: bare EIP-712 hash + recovery on both cores, on the same orders (parsed beforehand).
    let parsed: Arc<Vec<AnyOrder>> = Arc::new(
        orders
            .iter()
            .take(4096)
            .map(|v| AnyOrder::from_json(dragon::order::OrderKind::App, &v["order"].to_string()).expect("order"))
            .collect(),
    );
    let ceiling = {
        let stop = Instant::now() + Duration::from_secs(3);
        let done = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|k| {
                let (orders, done, domain) = (parsed.clone(), done.clone(), domain.clone());
                std::thread::spawn(move || {
                    let mut i = k;
                    while Instant::now() < stop {
                        let o = &orders[i % orders.len()];
                        let h = o.order_hash(&domain);
                        let _ = signature::recover_signer(&h.0, o.sign().expect("sign"));
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 2;
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        done.load(Ordering::Relaxed) as f64 / 3.0
    };

    let token = session(&http, &base, &key, d.chain_id).await?;
    let next = Arc::new(AtomicUsize::new(0));
    println!("| flow | rate | p50 | p99 | orders |\n|---|---:|---:|---:|---:|");
    println!("| bare hash + recovery, 2 threads (ceiling) | {ceiling:.0} orders/s | | | |");

    // Batches of 100 over 8 connections, one session.
    let batch = load(8, Duration::from_secs(8), {
        let (http, base, token, orders, next) =
            (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
        move || {
            let (http, base, token, orders, next) =
                (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
            async move {
                let i = next.fetch_add(100, Ordering::Relaxed);
                if i + 100 > orders.len() * 4 / 10 {
                    return None;
                }
                let body = json!({"orders": &orders[i..i + 100]});
                let r = http
                    .post(format!("{base}/apporders/batch?chainId=31337"))
                    .header("authorization", &token)
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                let v: Value = r.json().await.ok()?;
                Some(v["results"].as_array().map_or(0, |a| a.iter().filter(|x| x["ok"] == true).count()))
            }
        }
    })
    .await;
    batch.line("batch of 100, session token, 8 connections (latency per batch)", "orders");
    next.store(orders.len() * 4 / 10, Ordering::Relaxed);
    let orders = single_bodies.clone();

    // One order per request, 64 connections, one session.
    let single = load(64, Duration::from_secs(6), {
        let (http, base, token, orders, next) =
            (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
        move || {
            let (http, base, token, orders, next) =
                (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
            async move { post_one(&http, &base, &token, &orders, &next).await }
        }
    })
    .await;
    single.line("one order per request, session token, 64 connections", "orders");
    next.store(orders.len() * 7 / 10, Ordering::Relaxed);

    // The peer's clients: a challenge signed for every order.
    let peer = load(32, Duration::from_secs(5), {
        let (http, base, orders, next, key) = (http.clone(), base.clone(), orders.clone(), next.clone(), key.clone());
        move || {
            let (http, base, orders, next, key) =
                (http.clone(), base.clone(), orders.clone(), next.clone(), key.clone());
            async move {
                let auth = login(&http, &base, &key, 31337).await.ok()?;
                post_one(&http, &base, &auth, &orders, &next).await
            }
        }
    })
    .await;
    peer.line("one challenge per order (the peer's flow), 32 connections", "orders");
    next.store(orders.len() * 8 / 10, Ordering::Relaxed);

    // Open loop at 80% of the single-order rate: latency when not saturated.
    let target = single.count as f64 / single.secs * 0.8;
    let open = open_loop(target, Duration::from_secs(5), {
        let (http, base, token, orders, next) =
            (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
        move || {
            let (http, base, token, orders, next) =
                (http.clone(), base.clone(), token.clone(), orders.clone(), next.clone());
            async move { post_one(&http, &base, &token, &orders, &next).await }
        }
    })
    .await;
    open.line(&format!("open loop at 80% of that ({target:.0}/s offered)"), "orders");

    // Book queries over the 100 apps: repeated queries (answered from the cache until the book changes), then
    // queries made distinct by an ignored parameter (each walks the app's orders and serialises the page).
    let apps = Arc::new(apps);
    for (label, distinct) in [("repeated", false), ("all distinct, uncached", true)] {
        let counter = Arc::new(AtomicUsize::new(0));
        let reads = load(32, Duration::from_secs(5), {
            let (http, base, apps, counter) = (http.clone(), base.clone(), apps.clone(), counter.clone());
            move || {
                let (http, base, apps, counter) = (http.clone(), base.clone(), apps.clone(), counter.clone());
                async move {
                    let k = counter.fetch_add(1, Ordering::Relaxed);
                    let extra = if distinct { format!("&nonce={k}") } else { String::new() };
                    let app = apps[k % apps.len()];
                    let r = http
                        .get(format!("{base}/apporders?chainId=31337&app={app}&pageSize=20{extra}"))
                        .send()
                        .await
                        .ok()?;
                    r.status().is_success().then_some(1)
                }
            }
        })
        .await;
        reads.line(&format!("book query, 20 best orders of one of 100 apps, {label}, 32 connections"), "queries");
    }

    let _ = server.start_kill();
    let _ = server.wait().await;
    anvil.stop()?;
    pg.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn post_one(
    http: &reqwest::Client,
    base: &str,
    auth: &str,
    orders: &[bytes::Bytes],
    next: &AtomicUsize,
) -> Option<usize> {
    let i = next.fetch_add(1, Ordering::Relaxed);
    let o = orders.get(i)?.clone();
    let r = http
        .post(format!("{base}/apporders?chainId=31337"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(o)
        .send()
        .await
        .ok()?;
    // Only answers 200 count; a refusal (which would be a bug here) is counted as nothing, not as a stop.
    Some(usize::from(r.status().as_u16() == 200))
}

/// Closed loop: `conns` tasks each repeating `op` until `dur` ends or `op` says stop (None).
async fn load<F, Fut>(conns: usize, dur: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<usize>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut n, mut lat) = (0, Vec::new());
                while start.elapsed() < dur {
                    let t = Instant::now();
                    match op().await {
                        Some(k) => {
                            n += k;
                            lat.push(t.elapsed());
                        }
                        None => break,
                    }
                }
                (n, lat)
            })
        })
        .collect();
    let (mut count, mut latencies) = (0, Vec::new());
    for t in tasks {
        if let Ok((n, l)) = t.await {
            count += n;
            latencies.extend(l);
        }
    }
    latencies.sort();
    Stats { count, secs: start.elapsed().as_secs_f64(), latencies }
}

/// Open loop: starts `op` at a fixed rate whatever the answers, so latency is measured without coordinated
/// omission.
async fn open_loop<F, Fut>(rate: f64, dur: Duration, op: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<usize>> + Send + 'static,
{
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tasks = Vec::new();
    let mut k = 0u32;
    while start.elapsed() < dur {
        let due = start + period * k;
        tokio::time::sleep_until(due.into()).await;
        let fut = op();
        tasks.push(tokio::spawn(async move {
            let r = fut.await;
            (r, due.elapsed())
        }));
        k += 1;
    }
    let (mut count, mut latencies) = (0, Vec::new());
    for t in tasks {
        if let Ok((Some(n), l)) = t.await {
            count += n;
            latencies.push(l);
        }
    }
    latencies.sort();
    Stats { count, secs: dur.as_secs_f64(), latencies }
}
