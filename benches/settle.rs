//! Settlement and chain sync against a real anvil (automine: one block per transaction) and PostgreSQL, both
//! started here, with the server in process (docs/benchmarks.md, "Settlement and chain sync (issue 8)").
//!
//! 1. Single: 50 requests one after the other, each crossing a resting app and workerpool order; each goes out
//!    alone as `matchOrders`. Time from the POST to the proposal's transaction, and to the deal in `/deals`.
//! 2. Batch: 500 requests published at once (batch endpoint); the settler sends one transaction at a time, so
//!    what accumulates goes out as `matchOrdersBatch`. Deals per second, transactions, POST→deal.
//! 3. Gas per deal from receipts: single `matchOrders`; 20 deals sharing one app and one workerpool order; 20
//!    deals with all-distinct offers (20 apps, 20 workerpools). The 20 are forced into one batch by taking the
//!    operator's ETH away while they are proposed, then giving it back; the bench asserts one transaction.
//! 4. Sync lag: no operator; deals made directly on chain (`matchOrders` sent by the requesters) at 10/s in
//!    open loop, then back to back from four senders; time from each receipt to the deal in `/deals`, and
//!    blocks between the chain's head and sync's cursor, with the sync poll at 500 ms (default) and 100 ms.
//!
//! `cargo bench --bench settle` (about a minute and a half after the build; anvil from
//! `contracts/node_modules`, or `DRAGON_ANVIL`). Tables on stdout, progress on stderr.

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use anyhow::{Context, bail, ensure};
use dragon::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use dragon::chain::deploy::Deployment;
use dragon::chain::setup::{self, Account};
use dragon::config::Config;
use dragon::local::{Anvil, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, Domain, RequestOrder, WorkerpoolOrder, signature};
use dragon::server::{AppState, run};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const KEY1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const KEY2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const OPERATOR: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
/// The params of contracts/GAS.md's scenario (25 bytes), so the gas figures compare.
const PARAMS: &str = "{\"iexec_args\":\"--dragon\"}";
const APP_PRICE: u64 = 3 * Nrlc::PER_RLC;
const POOL_PRICE: u64 = 10 * Nrlc::PER_RLC;
/// How often the bench looks for deals in `/deals` (the resolution of every POST→deal figure).
const WATCH: Duration = Duration::from_millis(10);

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        dragon::server::init_tracing();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench())
}

/// The chain, the keys and the assets every phase uses.
struct Env {
    anvil_url: String,
    d: Deployment,
    domain: Domain,
    owner: PrivateKeySigner,
    requesters: [PrivateKeySigner; 2],
    operator: PrivateKeySigner,
    admin: Account,
    app: Address,
    pool: Address,
    salt: AtomicU64,
}

impl Env {
    fn salt(&self) -> B256 {
        B256::left_padding_from(&self.salt.fetch_add(1, Ordering::Relaxed).to_be_bytes())
    }

    fn signed(&self, key: &PrivateKeySigner, mut o: AnyOrder) -> anyhow::Result<AnyOrder> {
        o.set_sign(signature::sign_digest(key, &o.order_hash(&self.domain).0)?);
        Ok(o)
    }

    fn app_order(&self, app: Address, volume: u64) -> anyhow::Result<AnyOrder> {
        self.signed(
            &self.owner,
            AnyOrder::App(AppOrder {
                app,
                appprice: Nrlc::from_u64(APP_PRICE),
                volume: U256::from(volume),
                tag: B256::ZERO,
                datasetrestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: self.salt(),
                sign: None,
            }),
        )
    }

    fn pool_order(&self, pool: Address, volume: u64) -> anyhow::Result<AnyOrder> {
        self.signed(
            &self.owner,
            AnyOrder::Workerpool(WorkerpoolOrder {
                workerpool: pool,
                workerpoolprice: Nrlc::from_u64(POOL_PRICE),
                volume: U256::from(volume),
                tag: B256::ZERO,
                category: U256::from(1),
                trust: U256::from(1),
                apprestrict: Address::ZERO,
                datasetrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: self.salt(),
                sign: None,
            }),
        )
    }

    /// A request for one task of `app`, on `pool` when given (else any pool of category 1).
    fn request(&self, who: &PrivateKeySigner, app: Address, pool: Address) -> anyhow::Result<AnyOrder> {
        self.signed(
            who,
            AnyOrder::Request(RequestOrder {
                app,
                appmaxprice: Nrlc::from_u64(APP_PRICE),
                dataset: Address::ZERO,
                datasetmaxprice: Nrlc::ZERO,
                workerpool: pool,
                workerpoolmaxprice: Nrlc::from_u64(POOL_PRICE),
                requester: who.address(),
                volume: U256::from(1),
                tag: B256::ZERO,
                category: U256::from(1),
                trust: U256::from(1),
                beneficiary: who.address(),
                callback: Address::ZERO,
                params: PARAMS.into(),
                salt: self.salt(),
                sign: None,
            }),
        )
    }

    fn hash(&self, o: &AnyOrder) -> String {
        o.order_hash(&self.domain).to_string()
    }

    fn config(&self, db: String, operator: bool, poll: Duration) -> anyhow::Result<Config> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut c = Config::new(addr, db, self.anvil_url.clone(), self.d.clone());
        c.market.max_open_orders = 1_000_000;
        c.limits.per_ip_per_second = 1_000_000;
        c.limits.per_address_per_second = 1_000_000;
        c.settler.max_backoff = Duration::from_millis(500);
        c.sync.poll = poll;
        if operator {
            c.operator_key = Some(self.operator.clone());
        }
        Ok(c)
    }

    async fn set_balance(&self, who: Address, wei: U256) -> anyhow::Result<()> {
        let _: Value = self.admin.provider.raw_request("anvil_setBalance".into(), (who, wei)).await?;
        Ok(())
    }
}

/// The server in process, as `dragon serve` runs it.
struct Server {
    base: String,
    chain_id: u64,
    http: reqwest::Client,
    sync: Arc<dragon::chain::sync::SyncStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(config: &Config) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        let state = AppState::connect(config).await?;
        let sync = state.sync.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state, async move {
            let _ = rx.await;
        }));
        Ok(Server {
            base: format!("http://{}", config.listen),
            chain_id: config.deployment.chain_id,
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build()?,
            sync,
            stop: Some(tx),
            task,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await?
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}chainId={}", self.base, self.chain_id)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(self.url(path)).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    async fn post(&self, path: &str, auth: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self.http.post(self.url(path)).header("authorization", auth).json(body).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    /// A session token, after a challenge login.
    async fn bearer(&self, key: &PrivateKeySigner) -> anyhow::Result<String> {
        let c = self.get(&format!("/challenge?address={}", key.address())).await?;
        let text = c["data"]["message"]["challenge"].as_str().context("challenge text")?.to_owned();
        let hash = dragon::api::auth::challenge_hash(self.chain_id, &text);
        let sig = signature::sign_digest(key, &hash)?;
        let auth = format!("{hash:#x}_{sig}_{}", key.address());
        let s = self.post("/sessions", &auth, &json!({})).await?;
        Ok(format!("Bearer {}", s["token"].as_str().context("token")?))
    }

    /// Publishes orders of one kind in one batch; every one must be accepted.
    async fn publish(&self, auth: &str, orders: &[AnyOrder]) -> anyhow::Result<()> {
        let Some(first) = orders.first() else { return Ok(()) };
        let body = json!({"orders": orders.iter().map(|o| json!({"order": o.to_json()})).collect::<Vec<_>>()});
        let answer = self.post(&format!("/{}orders/batch", first.kind()), auth, &body).await?;
        let results = answer["results"].as_array().context("results")?;
        ensure!(results.iter().all(|r| r["ok"] == true), "refused: {answer}");
        Ok(())
    }

    async fn counter(&self, name: &str) -> anyhow::Result<u64> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{name} in /metrics"))
    }

    async fn proposals(&self, order: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self.get(&format!("/proposals?orderHash={order}")).await?["proposals"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// A deal as first seen in `/deals`.
#[derive(Clone)]
struct Seen {
    at: Instant,
    request: String,
    tx: String,
}

/// Polls `/deals` (newest first) every [`WATCH`] and records when each deal first shows; pages further while a
/// page brings anything new.
struct Watcher {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(server: &Server) -> Watcher {
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (http, url) = (server.http.clone(), server.url("/deals"));
        let task = tokio::spawn({
            let (seen, stop) = (seen.clone(), stop.clone());
            async move {
                const PAGE: usize = 20;
                while !stop.load(Ordering::Relaxed) {
                    for page in 0.. {
                        let got = async {
                            let r = http.get(format!("{url}&pageSize={PAGE}&pageIndex={page}")).send().await?;
                            r.json::<Value>().await
                        }
                        .await;
                        let Ok(body) = got else { break };
                        let now = Instant::now();
                        let deals = body["deals"].as_array().cloned().unwrap_or_default();
                        let Ok(mut map) = seen.lock() else { return };
                        let mut fresh = 0;
                        for d in &deals {
                            let id = d["dealid"].as_str().unwrap_or_default().to_owned();
                            map.entry(id).or_insert_with(|| {
                                fresh += 1;
                                let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                                Seen { at: now, request: s("requestHash"), tx: s("transactionHash") }
                            });
                        }
                        // Newer deals only push older ones down: a page with nothing new ends the walk.
                        if fresh == 0 || deals.len() < PAGE {
                            break;
                        }
                    }
                    tokio::time::sleep(WATCH).await;
                }
            }
        });
        Watcher { seen, stop, task }
    }

    fn by_request(&self) -> HashMap<String, Seen> {
        let map = self.seen.lock().map(|m| m.clone()).unwrap_or_default();
        map.into_values().map(|s| (s.request.clone(), s)).collect()
    }

    fn by_deal(&self) -> HashMap<String, Seen> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits until every request in `requests` has its deal, for at most `limit`.
    async fn wait_requests(&self, requests: &[String], limit: Duration) -> anyhow::Result<HashMap<String, Seen>> {
        let start = Instant::now();
        loop {
            let seen = self.by_request();
            let missing = requests.iter().filter(|r| !seen.contains_key(*r)).count();
            if missing == 0 {
                return Ok(seen);
            }
            if start.elapsed() > limit {
                bail!("{missing} of {} deals not listed after {limit:?}", requests.len());
            }
            tokio::time::sleep(WATCH).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

async fn bench() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dragon-bench-settle-{}", std::process::id()));
    let pg = PgCluster::start(&dir.join("pg"), free_port()?)?;
    let result = match free_port().and_then(|port| Anvil::start(port, &[])) {
        Ok(anvil) => {
            let r = phases(&pg, &anvil).await;
            anvil.stop()?;
            r
        }
        Err(e) => Err(e),
    };
    pg.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn phases(pg: &PgCluster, anvil: &Anvil) -> anyhow::Result<()> {
    let url = anvil.url();
    let owner: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&url, owner.clone()).await?;
    let admin = Account::new(&url, &owner)?;
    let requesters: [PrivateKeySigner; 2] = [KEY1.parse()?, KEY2.parse()?];
    let accounts: Vec<Account> = requesters.iter().map(|k| Account::new(&url, k)).collect::<Result<_, _>>()?;
    let mut all = vec![&admin];
    all.extend(accounts.iter());
    setup::fund(&d, &admin, &all, U256::from(1_000_000u64 * Nrlc::PER_RLC)).await?;
    let app = setup::create_app(&d, &admin, "bench", b"docker.io/bench:1").await?;
    let pool = setup::create_workerpool(&d, &admin, "bench").await?;
    let env = Env {
        anvil_url: url.clone(),
        domain: Domain::new(U256::from(d.chain_id), d.hub),
        d,
        owner,
        requesters,
        operator: OPERATOR.parse()?,
        admin,
        app,
        pool,
        salt: AtomicU64::new(1),
    };
    // The 20 distinct offers of phase 3, registered before anything is timed.
    let mut apps = Vec::new();
    let mut pools = Vec::new();
    for k in 0..20 {
        apps.push(setup::create_app(&env.d, &env.admin, &format!("distinct-{k}"), b"docker.io/bench:1").await?);
        pools.push(setup::create_workerpool(&env.d, &env.admin, &format!("distinct-{k}")).await?);
    }
    let db = "settle";
    dragon::store::ensure_database(&pg.url("postgres"), db).await?;

    // Phases 1-3: a settling server, sync on its default poll (the settler wakes it after each receipt).
    let server = Server::start(&env.config(pg.url(db), true, Duration::from_millis(500))?).await?;
    let owner_auth = server.bearer(&env.owner).await?;
    let req_auth = server.bearer(&env.requesters[0]).await?;
    let app_order = env.app_order(env.app, 100_000)?;
    let pool_order = env.pool_order(env.pool, 10_000)?;
    server.publish(&owner_auth, std::slice::from_ref(&app_order)).await?;
    server.publish(&owner_auth, std::slice::from_ref(&pool_order)).await?;
    let provider = env.admin.provider.clone();

    // 1. Single.
    eprintln!("phase 1: 50 single deals");
    let mut submitted = Vec::new();
    let mut listed = Vec::new();
    let mut single_gas = Vec::new();
    let started = Instant::now();
    for _ in 0..50 {
        let req = env.request(&env.requesters[0], env.app, Address::ZERO)?;
        let h = env.hash(&req);
        let t0 = Instant::now();
        server.publish(&req_auth, std::slice::from_ref(&req)).await?;
        let mut sent = None;
        let deal = loop {
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("no deal for {h} after 60 s");
            }
            if sent.is_none() && server.proposals(&h).await?.first().is_some_and(|p| p["transactionHash"].is_string()) {
                sent = Some(t0.elapsed());
            }
            let deals = server.get(&format!("/deals?requestorderHash={h}")).await?;
            if let Some(d) = deals["deals"].as_array().and_then(|a| a.first()) {
                break d.clone();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        listed.push(ms(t0.elapsed()));
        submitted.push(ms(sent.unwrap_or_else(|| t0.elapsed())));
        let tx: B256 = deal["transactionHash"].as_str().context("transactionHash")?.parse()?;
        let receipt = provider.get_transaction_receipt(tx).await?.context("receipt")?;
        single_gas.push(receipt.gas_used);
    }
    let single_secs = started.elapsed().as_secs_f64();
    let (submitted, listed) = (sorted(submitted), sorted(listed));

    // 2. Batch: 500 requests from two requesters, in batches of 100, as fast as the endpoint takes them.
    eprintln!("phase 2: 500 requests at once");
    let auths = [req_auth.clone(), server.bearer(&env.requesters[1]).await?];
    let mut batches = Vec::new();
    for k in 0..5 {
        let who = k % 2;
        let reqs: Vec<AnyOrder> = (0..100)
            .map(|_| env.request(&env.requesters[who], env.app, Address::ZERO))
            .collect::<anyhow::Result<_>>()?;
        batches.push((who, reqs));
    }
    let (tx0, b0) = (
        server.counter("dragon_settle_transactions_total").await?,
        server.counter("dragon_settle_batches_total").await?,
    );
    let watcher = Watcher::start(&server);
    let mut posted: Vec<(String, Instant)> = Vec::new();
    let first_post = Instant::now();
    for (who, reqs) in &batches {
        let t = Instant::now();
        server.publish(&auths[*who], reqs).await?;
        posted.extend(reqs.iter().map(|r| (env.hash(r), t)));
    }
    let publish_secs = first_post.elapsed().as_secs_f64();
    let hashes: Vec<String> = posted.iter().map(|p| p.0.clone()).collect();
    let seen = watcher.wait_requests(&hashes, Duration::from_secs(300)).await?;
    watcher.stop().await;
    let last = posted.iter().filter_map(|(h, _)| seen.get(h).map(|s| s.at)).max().context("deals")?;
    let batch_secs = last.duration_since(first_post).as_secs_f64();
    let batch_lat =
        sorted(posted.iter().filter_map(|(h, t)| seen.get(h).map(|s| ms(s.at.duration_since(*t)))).collect());
    let (tx1, b1) = (
        server.counter("dragon_settle_transactions_total").await?,
        server.counter("dragon_settle_batches_total").await?,
    );
    // Per transaction of the run: deals carried and gas.
    let mut per_tx: HashMap<String, usize> = HashMap::new();
    for h in &hashes {
        if let Some(s) = seen.get(h) {
            *per_tx.entry(s.tx.clone()).or_default() += 1;
        }
    }
    let mut tx_rows: Vec<(usize, u64)> = Vec::new();
    for (tx, n) in &per_tx {
        let r = provider.get_transaction_receipt(tx.parse()?).await?.context("receipt")?;
        tx_rows.push((*n, r.gas_used));
    }
    tx_rows.sort_by_key(|r| std::cmp::Reverse(r.0));

    // 3. Forced batches of 20: shared offers, then all-distinct offers.
    eprintln!("phase 3: forced batches of 20");
    let shared: Vec<AnyOrder> =
        (0..20).map(|_| env.request(&env.requesters[0], env.app, Address::ZERO)).collect::<anyhow::Result<_>>()?;
    let shared_batch = forced_batch(&env, &server, &req_auth, &shared).await?;
    ensure!(shared_batch.apps == 1 && shared_batch.pools == 1, "shared offers: {:?}", shared_batch.row());
    let app_orders: Vec<AnyOrder> = apps.iter().map(|a| env.app_order(*a, 10)).collect::<anyhow::Result<_>>()?;
    let pool_orders: Vec<AnyOrder> = pools.iter().map(|p| env.pool_order(*p, 10)).collect::<anyhow::Result<_>>()?;
    server.publish(&owner_auth, &app_orders).await?;
    server.publish(&owner_auth, &pool_orders).await?;
    let distinct: Vec<AnyOrder> =
        apps.iter().zip(&pools).map(|(a, p)| env.request(&env.requesters[0], *a, *p)).collect::<anyhow::Result<_>>()?;
    let distinct_batch = forced_batch(&env, &server, &req_auth, &distinct).await?;
    ensure!(distinct_batch.apps == 20 && distinct_batch.pools == 20, "distinct offers: {:?}", distinct_batch.row());
    server.stop().await?;

    // 4. Sync lag, no operator: the chain moves by others' hands.
    let mut lag_rows = Vec::new();
    for poll in [Duration::from_millis(500), Duration::from_millis(100)] {
        let server = Server::start(&env.config(pg.url(db), false, poll)?).await?;
        // Offers of the direct deals, not published to Dragon (the deals show anyway).
        let app_order = env.app_order(env.app, 1_000_000)?;
        let pool_order = env.pool_order(env.pool, 10_000)?;
        for (label, rate, secs, senders) in
            [("10 deals/s, open loop", Some(10.0), 15, 0), ("back to back, 4 senders", None, 10, 4)]
        {
            eprintln!("phase 4: sync poll {poll:?}, {label}");
            let row = sync_lag(&env, &server, &accounts, &app_order, &pool_order, rate, secs, senders).await?;
            lag_rows.push((poll, label, row));
        }
        server.stop().await?;
    }

    // Tables.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!(
        "\n| flow | deals | deals/s | transactions | deals per tx | POST→tx sent p50 / p99 | POST→deal listed p50 / p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| single: one request at a time, each `matchOrders` | 50 | {:.1} | 50 | 1 | {:.0} / {:.0} ms | {:.0} / {:.0} ms |",
        50.0 / single_secs,
        pct(&submitted, 0.5),
        pct(&submitted, 0.99),
        pct(&listed, 0.5),
        pct(&listed, 0.99)
    );
    let txs = tx1 - tx0;
    println!(
        "| batch: 500 requests posted at once ({publish_secs:.2} s to post), first POST to last deal | 500 | {:.1} | {txs} ({} batches) | {:.1} | | {:.0} / {:.0} ms |",
        500.0 / batch_secs,
        b1 - b0,
        500.0 / txs.max(1) as f64,
        pct(&batch_lat, 0.5),
        pct(&batch_lat, 0.99)
    );
    println!(
        "\nbatch run, deals per transaction in order of size: {}",
        tx_rows.iter().map(|r| r.0.to_string()).collect::<Vec<_>>().join(", ")
    );

    let gas = sorted(single_gas.iter().map(|g| *g as f64).collect());
    println!("\n| transaction | deals | gasUsed | gas per deal |\n|---|---:|---:|---:|");
    println!(
        "| `matchOrders`, one deal (mean of 50; min..max {:.0}..{:.0}) | 1 | {:.0} | **{:.0}** |",
        gas[0],
        gas[gas.len() - 1],
        gas.iter().sum::<f64>() / gas.len() as f64,
        gas.iter().sum::<f64>() / gas.len() as f64
    );
    if let Some((n, g)) = tx_rows.first() {
        println!(
            "| `matchOrdersBatch`, largest of the 500-request run, sharing one app and one workerpool order | {n} | {g} | **{:.0}** |",
            *g as f64 / *n as f64
        );
    }
    let (n500, g500) = tx_rows.iter().fold((0, 0), |(n, g), r| (n + r.0, g + r.1));
    println!(
        "| the whole 500-request run ({} transactions) | {n500} | {g500} | {:.0} |",
        tx_rows.len(),
        g500 as f64 / n500 as f64
    );
    for (label, b) in [
        ("`matchOrdersBatch`, 20 deals sharing one app and one workerpool order", &shared_batch),
        ("`matchOrdersBatch`, 20 deals with all-distinct offers (20 apps, 20 workerpools)", &distinct_batch),
    ] {
        println!("| {label} | {} | {} | **{:.0}** |", b.deals, b.gas, b.gas as f64 / b.deals as f64);
    }
    println!("\nforced batches: {:?}; {:?}", shared_batch.row(), distinct_batch.row());

    println!(
        "\n| sync poll | stream | deals (= blocks) | rate | send→receipt p50 | receipt→listed p50 / p99 / max | lag blocks p50 / p99 / max (50 ms samples) | `/health` sync.lag max |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (poll, label, r) in &lag_rows {
        println!(
            "| {} ms | {label} | {} | {:.1}/s | {:.0} ms | {:.0} / {:.0} / {:.0} ms | {:.0} / {:.0} / {:.0} | {} |",
            poll.as_millis(),
            r.deals,
            r.rate,
            pct(&r.round_trip, 0.5),
            pct(&r.latency, 0.5),
            pct(&r.latency, 0.99),
            r.latency.last().copied().unwrap_or(f64::NAN),
            pct(&r.lag, 0.5),
            pct(&r.lag, 0.99),
            r.lag.last().copied().unwrap_or(f64::NAN),
            r.health_max
        );
    }
    Ok(())
}

/// One forced batch: what went on chain.
struct Forced {
    deals: usize,
    gas: u64,
    apps: usize,
    pools: usize,
    tx: String,
    selector_is_batch: bool,
}

impl Forced {
    fn row(&self) -> String {
        format!(
            "tx {} carried {} deals ({} distinct app orders, {} distinct workerpool orders), matchOrdersBatch: {}, gasUsed {}",
            self.tx, self.deals, self.apps, self.pools, self.selector_is_batch, self.gas
        )
    }
}

/// Takes the operator's ETH, publishes `requests`, waits until each is proposed (and a second more), gives the
/// ETH back: everything queued goes out in one transaction. Asserts that it did.
async fn forced_batch(env: &Env, server: &Server, auth: &str, requests: &[AnyOrder]) -> anyhow::Result<Forced> {
    let op = env.operator.address();
    let provider = &env.admin.provider;
    let balance = provider.get_balance(op).await?;
    env.set_balance(op, U256::ZERO).await?;
    let watcher = Watcher::start(server);
    server.publish(auth, requests).await?;
    let hashes: Vec<String> = requests.iter().map(|r| env.hash(r)).collect();
    let start = Instant::now();
    for h in &hashes {
        while server.proposals(h).await?.is_empty() {
            ensure!(start.elapsed() < Duration::from_secs(30), "no proposal for {h}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.set_balance(op, balance).await?;
    let seen = watcher.wait_requests(&hashes, Duration::from_secs(60)).await?;
    watcher.stop().await;
    let txs: HashSet<&str> = hashes.iter().filter_map(|h| seen.get(h)).map(|s| s.tx.as_str()).collect();
    ensure!(txs.len() == 1, "the {} deals went out in {} transactions", requests.len(), txs.len());
    let tx: B256 = txs.iter().next().context("tx")?.parse()?;
    let receipt = provider.get_transaction_receipt(tx).await?.context("receipt")?;
    let matched: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<DragonHub::OrdersMatched>().ok())
        .map(|l| l.inner.data)
        .collect();
    ensure!(matched.len() == requests.len(), "{} deals in the transaction, expected {}", matched.len(), requests.len());
    let sent = provider.get_transaction_by_hash(tx).await?.context("transaction")?;
    let selector_is_batch = sent.input().get(..4) == Some(&DragonHub::matchOrdersBatchCall::SELECTOR[..]);
    ensure!(selector_is_batch, "not a matchOrdersBatch");
    Ok(Forced {
        deals: matched.len(),
        gas: receipt.gas_used,
        apps: matched.iter().map(|m| m.appHash).collect::<HashSet<_>>().len(),
        pools: matched.iter().map(|m| m.workerpoolHash).collect::<HashSet<_>>().len(),
        tx: format!("{tx:#x}"),
        selector_is_batch,
    })
}

struct LagRow {
    deals: usize,
    rate: f64,
    /// Receipt → listed, ms, sorted.
    latency: Vec<f64>,
    /// Chain head − sync cursor, blocks, sorted.
    lag: Vec<f64>,
    health_max: u64,
    /// Each direct deal's send → receipt, ms, sorted.
    round_trip: Vec<f64>,
}

/// A direct deal: its id, when its receipt was in hand, and how long the send took.
struct Sent {
    id: String,
    at: Instant,
    took: Duration,
}

/// `matchOrders` sent by the requester itself, as the iExec SDK does; returns once the receipt is in hand.
async fn direct_deal(
    hub: &DragonHub::DragonHubInstance<alloy::providers::DynProvider>,
    a: sol::AppOrder,
    w: sol::WorkerpoolOrder,
    r: sol::RequestOrder,
) -> anyhow::Result<Sent> {
    let t = Instant::now();
    let pending = hub.matchOrders(a, sol::DatasetOrder::none(), w, r).send().await?;
    let hash = *pending.tx_hash();
    // anvil mines on arrival: the receipt is there at once (polled in case it is not).
    let receipt = loop {
        if let Some(r) = hub.provider().get_transaction_receipt(hash).await? {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let at = Instant::now();
    ensure!(receipt.status(), "direct matchOrders reverted: {hash}");
    let id = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<DragonHub::OrdersMatched>().ok())
        .context("OrdersMatched")?
        .inner
        .data
        .dealid;
    Ok(Sent { id: format!("{id:#x}"), at, took: at - t })
}

/// Direct `matchOrders` from the requesters at `rate` (or back to back) for `secs`; each deal timed from its
/// receipt to `/deals`, the lag sampled meanwhile.
#[allow(clippy::too_many_arguments)]
async fn sync_lag(
    env: &Env,
    server: &Server,
    accounts: &[Account],
    app_order: &AnyOrder,
    pool_order: &AnyOrder,
    rate: Option<f64>,
    secs: u64,
    senders: usize,
) -> anyhow::Result<LagRow> {
    let (AnyOrder::App(a), AnyOrder::Workerpool(w)) = (app_order, pool_order) else { bail!("offers") };
    let (a, w): (sol::AppOrder, sol::WorkerpoolOrder) = (a.into(), w.into());
    // Everything already listed is out of the way first.
    let head = env.admin.provider.get_block_number().await?;
    while server.sync.cursor.load(Ordering::Relaxed) < head {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watcher = Watcher::start(server);
    let done = Arc::new(AtomicBool::new(false));
    // The lag sampler: the chain's head (asked here) minus the last block sync applied; /health once a second.
    let sampler = tokio::spawn({
        let (done, provider, stats, http, health) =
            (done.clone(), env.admin.provider.clone(), server.sync.clone(), server.http.clone(), server.url("/health"));
        async move {
            let (mut lags, mut health_max, mut last_health) = (Vec::new(), 0u64, Instant::now());
            while !done.load(Ordering::Relaxed) {
                if let Ok(head) = provider.get_block_number().await {
                    lags.push(head.saturating_sub(stats.cursor.load(Ordering::Relaxed)) as f64);
                }
                if last_health.elapsed() >= Duration::from_secs(1) {
                    last_health = Instant::now();
                    if let Ok(r) = http.get(&health).send().await
                        && let Ok(v) = r.json::<Value>().await
                    {
                        health_max = health_max.max(v["sync"]["lag"].as_u64().unwrap_or(0));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (lags, health_max)
        }
    });
    // Requests signed up front (signing is not what is measured), alternately by the two requesters, each
    // sent by its requester.
    let n = secs as usize * rate.map_or(300, |r| r.ceil() as usize + 1);
    let mut signed = Vec::with_capacity(n);
    for i in 0..n {
        let k = i % env.requesters.len();
        let AnyOrder::Request(r) = env.request(&env.requesters[k], env.app, Address::ZERO)? else { bail!("request") };
        signed.push((k, sol::RequestOrder::from(&r)));
    }
    let queue = Arc::new(Mutex::new(signed.into_iter()));
    let next = move || queue.lock().ok().and_then(|mut q| q.next());
    let hubs: Vec<DragonHub::DragonHubInstance<alloy::providers::DynProvider>> =
        accounts.iter().map(|acc| DragonHub::new(env.d.hub, acc.provider.clone())).collect();
    let offers = (a, w);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Sent>>>> = Vec::new();
    match rate {
        // Open loop: one deal started at each tick, whatever the others are doing.
        Some(r) => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
            while Instant::now() < deadline {
                tick.tick().await;
                let Some((k, req)) = next() else { break };
                let (hub, (a, w)) = (hubs[k].clone(), offers.clone());
                tasks.push(tokio::spawn(async move { Ok(vec![direct_deal(&hub, a, w, req).await?]) }));
            }
        }
        // Closed loop: `senders` tasks, each sending its next deal as soon as the last one is mined.
        None => {
            for _ in 0..senders {
                let (next, hubs, offers) = (next.clone(), hubs.clone(), offers.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    while Instant::now() < deadline {
                        let Some((k, req)) = next() else { break };
                        out.push(direct_deal(&hubs[k], offers.0.clone(), offers.1.clone(), req).await?);
                    }
                    Ok(out)
                }));
            }
        }
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    // Until every deal is listed.
    let wait = Instant::now();
    let seen = loop {
        let seen = watcher.by_deal();
        if sent.iter().all(|d| seen.contains_key(&d.id)) {
            break seen;
        }
        if wait.elapsed() > Duration::from_secs(120) {
            let missing: Vec<&Sent> = sent.iter().filter(|d| !seen.contains_key(&d.id)).collect();
            for d in missing.iter().take(3) {
                let r = server.http.get(server.url(&format!("/deals/{}", d.id))).send().await?;
                eprintln!("missing {}: GET /deals/{{id}} {}", d.id, r.status());
            }
            let head = env.admin.provider.get_block_number().await?;
            bail!(
                "{} of {} deals not listed after 120 s (head {head}, sync cursor {})",
                missing.len(),
                sent.len(),
                server.sync.cursor.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(WATCH).await;
    };
    done.store(true, Ordering::Relaxed);
    watcher.stop().await;
    let (lags, health_max) = sampler.await?;
    let latency =
        sorted(sent.iter().filter_map(|d| seen.get(&d.id).map(|s| ms(s.at.saturating_duration_since(d.at)))).collect());
    let round_trip = sorted(sent.iter().map(|d| ms(d.took)).collect());
    Ok(LagRow { deals: sent.len(), rate: sent.len() as f64 / secs, latency, lag: sorted(lags), health_max, round_trip })
}
