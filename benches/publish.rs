//! Load benchmark of `dragon serve`: pre-signed orders posted over HTTP from many connections, against a real
//! PostgreSQL and anvil started here. Reports accepted-and-durable orders per second (a 200 or a batch answer
//! comes after the commit) with p50/p99 latency and the CPU each order cost the server, PostgreSQL and anvil,
//! beside the bare signature-recovery rate measured on the same cores in the same run (the ceiling), then book
//! queries per second. The load generator is a lean keep-alive HTTP/1.1 client (`common::raw`), so that it takes
//! as little as it can of the two cores it shares with what it measures.
//!
//! `cargo bench --bench publish` (release build of the server; about two minutes). Environment:
//! `PUBLISH_ORDERS` (default 300000) orders to sign up front. The orders are spread over 300 apps, so a book
//! query walks one app's orders (up to 1,000 at the end), not the whole book.

mod common;
use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use common::raw::{self, Conn};
use common::session;
use dragon::chain::setup::{self, Account};
use dragon::local::{Anvil, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, Domain, signature};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Stats {
    count: usize,
    secs: f64,
    latencies: Vec<Duration>,
    /// CPU seconds used during the flow by the server, PostgreSQL and anvil.
    cpu: [f64; 4],
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
        let per = |cpu: f64| if self.count == 0 { 0.0 } else { cpu * 1e6 / self.count as f64 };
        println!(
            "| {name} | {:.0} {unit}/s | {:.2} ms | {:.2} ms | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {} |",
            self.count as f64 / self.secs,
            self.pct(0.5),
            self.pct(0.99),
            per(self.cpu[0]),
            per(self.cpu[1]),
            per(self.cpu[2]),
            per(self.cpu[3]),
            self.count
        );
    }
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let n: usize = std::env::var("PUBLISH_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let dir = std::env::temp_dir().join(format!("dragon-bench-{}", std::process::id()));
    let pg_port = free_port()?;
    let mut pg = PgCluster::start(&dir.join("pg"), pg_port)?;
    // PUBLISH_PG_STATS=1: PostgreSQL's own account of its statements (pg_stat_statements), printed at the end.
    let pg_stats = std::env::var("PUBLISH_PG_STATS").is_ok_and(|v| v == "1");
    if pg_stats {
        let (c, conn) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'").await?;
        drop(c);
        pg.stop()?;
        pg = PgCluster::start(&dir.join("pg"), pg_port)?;
    }
    dragon::store::ensure_database(&pg.url("postgres"), "bench").await?;
    if pg_stats {
        let (c, conn) = tokio_postgres::connect(&pg.url("bench"), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute("CREATE EXTENSION pg_stat_statements").await?;
    }
    let anvil = Anvil::start(free_port()?, &[])?;
    let key: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&anvil.url(), key.clone()).await?;
    let owner = Account::new(&anvil.url(), &key)?;
    setup::fund(&d, &owner, &[&owner], U256::from(1_000_000u64 * Nrlc::PER_RLC)).await?;
    let mut apps = Vec::new();
    for k in 0..300 {
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
            let o = common::signed_app_order(&domain, &key, apps[(i % 300) as usize], 1 + i % 97, i).expect("sign");
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
    let addr = format!("127.0.0.1:{port}");
    let procs = Procs { server: server.id().unwrap_or(0), pg: pg.pid(), anvil: anvil.pid() };
    // PUBLISH_SPLIT=1: the exchange (server, PostgreSQL, anvil) on core 0 and this load generator on core 1, so
    // that latency is measured without the generator competing for the exchange's core.
    if std::env::var("PUBLISH_SPLIT").is_ok_and(|v| v == "1") {
        for pid in raw::tree(procs.server).into_iter().chain(raw::tree(procs.pg)).chain(raw::tree(procs.anvil)) {
            pin(pid, "0")?;
        }
        pin(std::process::id(), "1")?;
        println!("(split: exchange on core 0, load generator on core 1)");
    }
    // Each flow has its own share of the orders, so that a fast flow cannot use up the next one's: batches 35%,
    // single orders 25%, the peer's flow 7%, the open loops 33%. A flow that runs out says so.
    let share = |from: usize, to: usize| -> Arc<Vec<bytes::Bytes>> {
        Arc::new(single_bodies[single_bodies.len() * from / 100..single_bodies.len() * to / 100].to_vec())
    };
    let ran_out = |stats: &Stats, had: usize| {
        if stats.count >= had {
            println!("| (that flow ran out of orders: set PUBLISH_ORDERS higher) | | | | | | | | |");
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    println!(
        "| flow | rate | p50 | p99 | CPU per op: server | PostgreSQL | anvil | load generator | ops |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    println!("| bare hash + recovery, 2 threads (ceiling) | {ceiling:.0} orders/s | | | | | | | |");

    // Batches of 100 over 16 connections, one session. With 8, a group commit's wait left the two cores about 8%
    // idle (server, PostgreSQL and generator CPU per order times the rate came to 1.84 cores).
    let batches: Arc<Vec<bytes::Bytes>> = Arc::new(
        orders[..orders.len() * 35 / 100]
            .chunks(100)
            .map(|c| bytes::Bytes::from(json!({ "orders": c }).to_string()))
            .collect(),
    );
    let batch_conns: usize = std::env::var("PUBLISH_BATCH_CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let batch = load(&addr, batch_conns, Duration::from_secs(3), &procs, None, {
        let (token, batches, next) = (token.clone(), batches.clone(), next.clone());
        move || {
            let b = batches.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
            Some(Step::Send(Req::post("/apporders/batch?chainId=31337", &token, b)))
        }
    })
    .await;
    batch.line(&format!("batch of 100, session token, {batch_conns} connections (latency per batch)"), "orders");
    ran_out(&batch, batches.len() * 100);
    println!(
        "| batched publication / ceiling | {:.0}% | | | | | | | |",
        100.0 * batch.count as f64 / batch.secs / ceiling
    );
    next.store(0, Ordering::Relaxed);
    let orders = share(35, 60);

    // One order per request, 64 connections, one session.
    let single = load(&addr, 64, Duration::from_secs(6), &procs, None, {
        let (token, orders, next) = (token.clone(), orders.clone(), next.clone());
        move || {
            let o = orders.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
            Some(Step::Send(Req::post("/apporders?chainId=31337", &token, o)))
        }
    })
    .await;
    single.line("one order per request, session token, 64 connections", "orders");
    ran_out(&single, orders.len());
    next.store(0, Ordering::Relaxed);
    let orders = share(60, 67);

    // The peer's clients: a challenge signed for every order.
    let peer = load(&addr, 32, Duration::from_secs(5), &procs, Some(key.clone()), {
        let (orders, next) = (orders.clone(), next.clone());
        move || Some(Step::Login(orders.get(next.fetch_add(1, Ordering::Relaxed))?.clone()))
    })
    .await;
    peer.line("one challenge per order (the peer's flow), 32 connections", "orders");
    ran_out(&peer, orders.len());
    next.store(0, Ordering::Relaxed);
    // Open loops at 50%, 65% and 80% of the single-order rate: latency when not saturated, as load grows.
    for (pct, from, to) in [(50, 67, 76), (65, 76, 87), (80, 87, 100)] {
        next.store(0, Ordering::Relaxed);
        let orders = share(from, to);
        let target = single.count as f64 / single.secs * f64::from(pct) / 100.0;
        let open = open_loop(&addr, target, Duration::from_secs(4), &procs, {
            let (token, orders, next) = (token.clone(), orders.clone(), next.clone());
            move || {
                let o = orders.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
                Some(Req::post("/apporders?chainId=31337", &token, o))
            }
        })
        .await;
        open.line(&format!("open loop at {pct}% of that ({target:.0}/s offered)"), "orders");
        ran_out(&open, orders.len());
    }

    // Book queries over the 300 apps: repeated queries (answered from the cache until the book changes), then
    // queries made distinct by an ignored parameter (each walks the app's orders and builds the page).
    let apps = Arc::new(apps);
    for (label, distinct) in [("repeated", false), ("all distinct, uncached", true)] {
        let counter = Arc::new(AtomicUsize::new(0));
        let reads = load(&addr, 32, Duration::from_secs(5), &procs, None, {
            let (apps, counter) = (apps.clone(), counter.clone());
            move || {
                let k = counter.fetch_add(1, Ordering::Relaxed);
                let extra = if distinct { format!("&nonce={k}") } else { String::new() };
                let app = apps[k % apps.len()];
                Some(Step::Send(Req::get(format!("/apporders?chainId=31337&app={app}&pageSize=20{extra}"))))
            }
        })
        .await;
        reads.line(&format!("book query, 20 best orders of one of 300 apps, {label}, 32 connections"), "queries");
    }

    if pg_stats {
        let (c, conn) = tokio_postgres::connect(&pg.url("bench"), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let rows = c
            .query(
                "SELECT calls, round(total_exec_time)::bigint, round(total_plan_time)::bigint,
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 110)
                 FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 15",
                &[],
            )
            .await?;
        println!("\n| calls | exec ms | plan ms | statement |\n|---:|---:|---:|---|");
        for r in rows {
            println!(
                "| {} | {} | {} | `{}` |",
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2),
                r.get::<_, String>(3)
            );
        }
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
    anvil.stop()?;
    pg.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Pins every thread of `pid` to `cpus` (taskset); children forked later inherit it.
fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let st = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "taskset failed for {pid}");
    Ok(())
}

/// The processes whose CPU each flow reports: the server, the PostgreSQL cluster, anvil (each with its children).
struct Procs {
    server: u32,
    pg: u32,
    anvil: u32,
}

impl Procs {
    /// Server, PostgreSQL, anvil, and this process (the load generator; its children are the three others).
    fn cpu(&self) -> [f64; 4] {
        [
            raw::tree_cpu(self.server),
            raw::tree_cpu(self.pg),
            raw::tree_cpu(self.anvil),
            raw::own_cpu(std::process::id()),
        ]
    }
}

struct Req {
    method: &'static str,
    path: String,
    auth: Option<String>,
    body: bytes::Bytes,
}

impl Req {
    fn post(path: &str, auth: &str, body: bytes::Bytes) -> Req {
        Req { method: "POST", path: path.to_owned(), auth: Some(auth.to_owned()), body }
    }

    fn get(path: String) -> Req {
        Req { method: "GET", path, auth: None, body: bytes::Bytes::new() }
    }

    /// Sends it; the number of orders (or queries) the answer accepted.
    async fn send(&self, conn: &mut Conn) -> Option<usize> {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, body) = conn.request(self.method, &self.path, &headers, &self.body).await.ok()?;
        if self.path.contains("/batch") {
            // Only each result's `ok` is read (the rest skipped, not built), so that the generator's share of
            // the two cores goes to HTTP rather than to a DOM of every published order.
            #[derive(serde::Deserialize)]
            struct Item {
                ok: bool,
            }
            #[derive(serde::Deserialize)]
            struct Answer {
                results: Vec<Item>,
            }
            let a: Answer = serde_json::from_slice(&body).ok()?;
            return Some(a.results.iter().filter(|x| x.ok).count());
        }
        // Only answers 200 count; a refusal (which would be a bug here) is counted as nothing, not as a stop.
        Some(usize::from(status == 200))
    }
}

/// One operation of a closed loop.
enum Step {
    Send(Req),
    /// The peer's flow: a challenge, signed, then the order with it.
    Login(bytes::Bytes),
}

async fn peer_publish(conn: &mut Conn, key: &PrivateKeySigner, order: bytes::Bytes) -> Option<usize> {
    let path = format!("/challenge?chainId=31337&address={}", key.address());
    let (_, body) = conn.request("GET", &path, &[], &[]).await.ok()?;
    let c: Value = serde_json::from_slice(&body).ok()?;
    let text = c["data"]["message"]["challenge"].as_str()?;
    let auth = dragon::api::auth::authorization(31337, text, key).ok()?;
    Req::post("/apporders?chainId=31337", &auth, order).send(conn).await
}

/// Closed loop: `conns` connections each repeating the next step until `dur` ends or there is none left.
async fn load<F>(
    addr: &str,
    conns: usize,
    dur: Duration,
    procs: &Procs,
    key: Option<PrivateKeySigner>,
    next: F,
) -> Stats
where
    F: Fn() -> Option<Step> + Send + Sync + 'static,
{
    let next = Arc::new(next);
    let cpu0 = procs.cpu();
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (next, addr, key) = (next.clone(), addr.to_owned(), key.clone());
            tokio::spawn(async move {
                let (mut n, mut lat) = (0, Vec::new());
                let Ok(mut conn) = Conn::open(&addr).await else { return (n, lat) };
                while start.elapsed() < dur {
                    let Some(step) = next() else { break };
                    let t = Instant::now();
                    let done = match (step, &key) {
                        (Step::Send(r), _) => r.send(&mut conn).await,
                        (Step::Login(order), Some(key)) => peer_publish(&mut conn, key, order).await,
                        (Step::Login(_), None) => None,
                    };
                    match done {
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
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = procs.cpu();
    latencies.sort();
    Stats { count, secs, latencies, cpu: [0, 1, 2, 3].map(|i| cpu1[i] - cpu0[i]) }
}

/// Open loop: starts a request at a fixed rate whatever the answers, on the first free connection of a pool
/// (opening another when none is free), so latency is measured from when the request was due, without
/// coordinated omission.
async fn open_loop<F>(addr: &str, rate: f64, dur: Duration, procs: &Procs, next: F) -> Stats
where
    F: Fn() -> Option<Req>,
{
    let (free_tx, mut free_rx) = tokio::sync::mpsc::unbounded_channel::<Conn>();
    for _ in 0..16 {
        if let Ok(c) = Conn::open(addr).await {
            let _ = free_tx.send(c);
        }
    }
    let cpu0 = procs.cpu();
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut tasks = Vec::new();
    let mut k = 0u32;
    while start.elapsed() < dur {
        let due = start + period * k;
        tokio::time::sleep_until(due.into()).await;
        let Some(req) = next() else { break };
        let conn = match free_rx.try_recv() {
            Ok(c) => Some(c),
            Err(_) => Conn::open(addr).await.ok(),
        };
        let free_tx = free_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = conn?;
            let r = req.send(&mut conn).await;
            let _ = free_tx.send(conn);
            Some((r?, due.elapsed()))
        }));
        k += 1;
    }
    let (mut count, mut latencies) = (0, Vec::new());
    for t in tasks {
        if let Ok(Some((n, l))) = t.await {
            count += n;
            latencies.push(l);
        }
    }
    let cpu1 = procs.cpu();
    latencies.sort();
    Stats { count, secs: dur.as_secs_f64(), latencies, cpu: [0, 1, 2, 3].map(|i| cpu1[i] - cpu0[i]) }
}
