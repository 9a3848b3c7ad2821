//! The pool runtime end to end against a real anvil (automine) and PostgreSQL, both started here, with the
//! exchange (settling), the pool's scheduler and its workers in process (docs/benchmarks.md, "Pool runtime
//! (issue 9)").
//!
//! 1. Latency by stage: requests of one task posted one after the other to the exchange, each followed to its
//!    result available from the pool. Stages come from the exchange (proposal, deal) and from the pool's task
//!    timeline (`/status/tasks/<id>`), all on this machine's clock.
//! 2. Throughput: one deal of `TASKS` tasks through one pool with N workers, for an app that returns at once
//!    (overhead-bound) and one that computes for a second (compute-bound).
//! 3. Gas per task, from the receipts of every transaction phase 1 sent to the hub, by function.
//!
//! `cargo bench --bench pool [-- --trust 3]` (a few minutes after the build). With `--trust N` the requests ask
//! for trust N and phase 1 runs with enough workers for the hub's consensus. Tables on stdout, progress on
//! stderr. Pool and worker polls are 100 ms here (defaults: 1 s and 2 s); each stage that waits for a poll says so.

use alloy::consensus::Transaction as _;
use alloy::network::TransactionResponse as _;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail, ensure};
use dragon::chain::contracts::hub::DragonHub;
use dragon::chain::deploy::Deployment;
use dragon::chain::setup::{self, Account};
use dragon::config::Config;
use dragon::executor::ExecutorConfig;
use dragon::local::{Anvil, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, Domain, RequestOrder, WorkerpoolOrder, signature};
use dragon::pool::PoolConfig;
use dragon::pool::protocol::Capacity;
use dragon::worker::WorkerConfig;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const KEY1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// The workerpool's owner: its own key, because the scheduler sends transactions while the bench funds workers
/// (one sender per key keeps nonces straight).
const KEY2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const OPERATOR: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const POLL: Duration = Duration::from_millis(100);
/// Requests followed one by one in phase 1.
const LATENCY_RUNS: usize = 30;
/// Tasks in the one deal of each throughput run.
const TASKS: u64 = 40;
const CATEGORY: u64 = 1;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        dragon::server::init_tracing();
    }
    let args: Vec<String> = std::env::args().collect();
    let trust = args
        .iter()
        .position(|a| a == "--trust")
        .and_then(|i| args.get(i + 1))
        .map(|t| t.parse::<u64>().context("--trust N"))
        .transpose()?
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench(trust))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

struct Env {
    url: String,
    d: Deployment,
    domain: Domain,
    owner: PrivateKeySigner,
    pool_owner: PrivateKeySigner,
    requester: PrivateKeySigner,
    admin: Account,
    pool: Address,
    salt: AtomicU64,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Env {
    fn signed(&self, key: &PrivateKeySigner, mut o: AnyOrder) -> anyhow::Result<AnyOrder> {
        o.set_sign(signature::sign_digest(key, &o.order_hash(&self.domain).0)?);
        Ok(o)
    }

    fn salt(&self) -> B256 {
        B256::left_padding_from(&self.salt.fetch_add(1, Ordering::Relaxed).to_be_bytes())
    }

    /// A native app running `body` as a shell script; with its free app order.
    async fn app(&self, name: &str, body: &str) -> anyhow::Result<(Address, AnyOrder)> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(format!("{name}.sh"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nset -eu\n{body}\nprintf 'done %s\\n' \"$*\" > \"$IEXEC_OUT/result.txt\"\nprintf '{{\"deterministic-output-path\":\"%s/result.txt\"}}' \"$IEXEC_OUT\" > \"$IEXEC_OUT/computed.json\"\n"
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        let app = setup::create_app(&self.d, &self.admin, name, path.to_str().context("utf-8")?.as_bytes()).await?;
        let order = self.signed(
            &self.owner,
            AnyOrder::App(AppOrder {
                app,
                appprice: Nrlc::ZERO,
                volume: U256::from(1_000_000u64),
                tag: B256::ZERO,
                datasetrestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: self.salt(),
                sign: None,
            }),
        )?;
        Ok((app, order))
    }

    fn pool_order(&self, volume: u64, trust: u64) -> anyhow::Result<AnyOrder> {
        self.signed(
            &self.pool_owner,
            AnyOrder::Workerpool(WorkerpoolOrder {
                workerpool: self.pool,
                workerpoolprice: Nrlc::from_u64(Nrlc::PER_RLC),
                volume: U256::from(volume),
                tag: B256::ZERO,
                category: U256::from(CATEGORY),
                trust: U256::from(trust),
                apprestrict: Address::ZERO,
                datasetrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: self.salt(),
                sign: None,
            }),
        )
    }

    fn request(&self, app: Address, volume: u64, trust: u64) -> anyhow::Result<AnyOrder> {
        let who = self.requester.address();
        self.signed(
            &self.requester,
            AnyOrder::Request(RequestOrder {
                app,
                appmaxprice: Nrlc::ZERO,
                dataset: Address::ZERO,
                datasetmaxprice: Nrlc::ZERO,
                workerpool: self.pool,
                workerpoolmaxprice: Nrlc::from_u64(Nrlc::PER_RLC),
                requester: who,
                volume: U256::from(volume),
                tag: B256::ZERO,
                category: U256::from(CATEGORY),
                trust: U256::from(trust),
                beneficiary: who,
                callback: Address::ZERO,
                params: "{\"iexec_args\":\"bench\"}".into(),
                salt: self.salt(),
                sign: None,
            }),
        )
    }

    /// A fresh worker key with gas money and 1,000 RLC deposited (its stake).
    async fn worker_key(&self) -> anyhow::Result<PrivateKeySigner> {
        let key = PrivateKeySigner::random();
        let _: Value = self
            .admin
            .provider
            .raw_request("anvil_setBalance".into(), (key.address(), U256::from(10u128.pow(20))))
            .await?;
        let who = Account::new(&self.url, &key)?;
        setup::fund(&self.d, &self.admin, &[&who], U256::from(1_000 * Nrlc::PER_RLC)).await?;
        Ok(key)
    }

    async fn get(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        let r = self.http.get(url).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }
}

/// The exchange in process, settling with the operator key.
struct Exchange {
    base: String,
    chain_id: u64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Exchange {
    async fn start(env: &Env, db: String) -> anyhow::Result<Exchange> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut c = Config::new(addr, db, env.url.clone(), env.d.clone());
        c.limits.per_ip_per_second = 1_000_000;
        c.limits.per_address_per_second = 1_000_000;
        c.sync.poll = POLL;
        c.operator_key = Some(OPERATOR.parse()?);
        let listener = std::net::TcpListener::bind(addr)?;
        let state = dragon::server::AppState::connect(&c).await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dragon::server::run(listener, state, async move {
            let _ = rx.await;
        }));
        Ok(Exchange { base: format!("http://{addr}"), chain_id: env.d.chain_id, stop: Some(tx), task })
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}chainId={}", self.base, self.chain_id)
    }

    async fn bearer(&self, env: &Env, key: &PrivateKeySigner) -> anyhow::Result<String> {
        let (_, c) = env.get(&self.url(&format!("/challenge?address={}", key.address()))).await?;
        let text = c["data"]["message"]["challenge"].as_str().context("challenge text")?.to_owned();
        let hash = dragon::api::auth::challenge_hash(self.chain_id, &text);
        let sig = signature::sign_digest(key, &hash)?;
        let r = env
            .http
            .post(self.url("/sessions"))
            .header("authorization", format!("{hash:#x}_{sig}_{}", key.address()))
            .json(&json!({}))
            .send()
            .await?;
        let s: Value = r.json().await?;
        Ok(format!("Bearer {}", s["token"].as_str().context("token")?))
    }

    async fn publish(&self, env: &Env, auth: &str, o: &AnyOrder) -> anyhow::Result<()> {
        let r = env
            .http
            .post(self.url(&format!("/{}orders", o.kind())))
            .header("authorization", auth)
            .json(&json!({"order": o.to_json()}))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "publish: {status} {body}");
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await?
    }
}

type Stopper = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>);

fn start_pool(env: &Env, db: String) -> anyhow::Result<(String, Stopper)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut c = PoolConfig::new(env.pool, env.pool_owner.clone(), env.url.clone(), env.d.clone(), db, addr);
    c.poll = POLL;
    // Every worker of the bench calls from 127.0.0.1: the per-IP limit would measure itself.
    c.limits.per_ip_per_second = 100_000;
    let base = c.public_url.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Ok(dragon::pool::run(c, listener, async move {
            let _ = rx.await;
        })
        .await?)
    });
    Ok((base, (tx, task)))
}

fn start_worker(env: &Env, pool: &str, key: PrivateKeySigner, apps: &[Address], n: usize) -> Stopper {
    let c = WorkerConfig {
        key,
        pool_url: pool.to_owned(),
        rpc_url: env.url.clone(),
        deployment: env.d.clone(),
        executor: ExecutorConfig::Process { allow: apps.to_vec(), user: None },
        work_dir: env.dir.join(format!("worker-{n}")),
        capacity: Capacity { cpu: 1, memory: 1 << 30, gpu: false },
        poll: POLL,
        heartbeat: Duration::from_secs(1),
        app_env: Vec::new(),
        inputs: dragon::worker::inputs::InputPolicy::default(),
        scratch_bytes: dragon::executor::DEFAULT_SCRATCH_BYTES,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Ok(dragon::worker::run(c, async move {
            let _ = rx.await;
        })
        .await?)
    });
    (tx, task)
}

async fn stop_all(parts: Vec<Stopper>) -> anyhow::Result<()> {
    for (tx, task) in parts {
        let _ = tx.send(());
        task.await??;
    }
    Ok(())
}

fn task_id(deal: B256, idx: u64) -> B256 {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(deal.as_slice());
    b[32..].copy_from_slice(&U256::from(idx).to_be_bytes::<32>());
    keccak256(b)
}

async fn until<T>(
    what: &str,
    limit: Duration,
    mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("{what}: not after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(trust: u64) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dragon-bench-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let pg = PgCluster::start(&dir.join("pg"), free_port()?)?;
    let anvil = Anvil::start(free_port()?, &[])?;
    let res = phases(&pg, &anvil, &dir, trust).await;
    anvil.stop()?;
    pg.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    res
}

async fn phases(pg: &PgCluster, anvil: &Anvil, dir: &Path, trust: u64) -> anyhow::Result<()> {
    let url = anvil.url();
    let owner: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&url, owner.clone()).await?;
    let admin = Account::new(&url, &owner)?;
    let requester: PrivateKeySigner = KEY1.parse()?;
    let pool_owner: PrivateKeySigner = KEY2.parse()?;
    let pool_account = Account::new(&url, &pool_owner)?;
    let accounts = [&admin, &Account::new(&url, &requester)?, &pool_account];
    setup::fund(&d, &admin, &accounts, U256::from(1_000_000 * Nrlc::PER_RLC)).await?;
    let pool = setup::create_workerpool(&d, &pool_account, "bench pool").await?;
    drop(pool_account);
    let env = Env {
        domain: Domain::new(U256::from(d.chain_id), d.hub),
        url: url.clone(),
        d,
        owner,
        pool_owner,
        requester,
        admin,
        pool,
        salt: AtomicU64::new(1),
        dir: dir.to_owned(),
        http: reqwest::Client::new(),
    };
    for db in ["exchange", "pool"] {
        dragon::store::ensure_database(&pg.url("postgres"), db).await?;
    }
    let exchange = Exchange::start(&env, pg.url("exchange")).await?;
    let (pool_url, pool_stop) = start_pool(&env, pg.url("pool"))?;
    let owner_auth = exchange.bearer(&env, &env.owner).await?;
    let pool_auth = exchange.bearer(&env, &env.pool_owner).await?;
    let requester_auth = exchange.bearer(&env, &env.requester).await?;
    let (quick, quick_order) = env.app("quick", "").await?;
    let (second, second_order) = env.app("second", "sleep 1").await?;
    exchange.publish(&env, &owner_auth, &quick_order).await?;
    exchange.publish(&env, &owner_auth, &second_order).await?;
    exchange.publish(&env, &pool_auth, &env.pool_order(1_000_000, trust)?).await?;
    let apps = [quick, second];

    // 1. Latency by stage, one request at a time.
    let first_block = env.admin.provider.get_block_number().await?;
    let mut workers = Vec::new();
    for n in 0..trust.max(1) as usize {
        workers.push(start_worker(&env, &pool_url, env.worker_key().await?, &apps, n));
    }
    let mut stages: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for run in 0..LATENCY_RUNS {
        let req = env.request(quick, 1, trust)?;
        let hash = req.order_hash(&env.domain).to_string();
        let posted = now_ms();
        exchange.publish(&env, &requester_auth, &req).await?;
        let proposals = exchange.url(&format!("/proposals?orderHash={hash}"));
        let proposed = until("the proposal", Duration::from_secs(30), async || {
            let (_, b) = env.get(&proposals).await?;
            Ok(b["proposals"].as_array().and_then(|p| p.first()).map(|_| now_ms()))
        })
        .await?;
        let dealid = until("the deal", Duration::from_secs(60), async || {
            let (_, b) = env.get(&proposals).await?;
            Ok(b["proposals"][0]["dealid"].as_str().map(str::to_owned))
        })
        .await?;
        let settled = now_ms();
        let taskid = task_id(dealid.parse()?, 0);
        let result_url = format!("{pool_url}/results/{taskid}");
        let timeline_url = format!("{pool_url}/status/tasks/{taskid}");
        // Available to the requester = finalized (the SDK reads the result link from the task on chain) and served
        // (the archive is served from the upload on, just before finalize).
        let available = until("the result", Duration::from_secs(120), async || {
            let (_, t) = env.get(&timeline_url).await?;
            let completed = t["events"].as_array().is_some_and(|e| e.iter().any(|e| e["status"] == "COMPLETED"));
            Ok((completed && env.http.get(&result_url).send().await?.status().as_u16() == 200).then(now_ms))
        })
        .await?;
        let (_, timeline) = env.get(&timeline_url).await?;
        let events = timeline["events"].as_array().context("events")?;
        let at = |status: &str, worker: bool| -> anyhow::Result<i64> {
            events
                .iter()
                .filter(|e| e["status"] == status && e.get("worker").is_some() == worker)
                .filter_map(|e| e["at"].as_i64())
                .max()
                .with_context(|| format!("{status} in {timeline}"))
        };
        let first = |status: &str| -> anyhow::Result<i64> {
            events
                .iter()
                .filter(|e| e["status"] == status && e.get("worker").is_some())
                .filter_map(|e| e["at"].as_i64())
                .min()
                .with_context(|| format!("{status} in {timeline}"))
        };
        let mut put = |k, v: i64| stages.entry(k).or_default().push(v as f64);
        put("1 match (POST → proposal)", proposed - posted);
        put("2 settle (proposal → deal mined and recorded by the pool)¹", at("RECEIVED", false)? - proposed);
        put("2b (the exchange's own sync sees the deal: proposal → settled)", settled - proposed);
        put("4 initialize (recorded → ACTIVE on chain)¹", at("INITIALIZED", false)? - at("RECEIVED", false)?);
        put("5 hand-out (ACTIVE → a worker has it)²", first("CREATED")? - at("INITIALIZED", false)?);
        put("6 run (app started → result packaged)", at("COMPUTED", true)? - first("COMPUTING")?);
        put("7 contribute + reveal (packaged → last reveal mined)", at("REVEALED", true)? - at("COMPUTED", true)?);
        put("8 upload + finalize (revealed → COMPLETED)¹", at("COMPLETED", false)? - at("REVEALED", true)?);
        put("9 seen by the requester (COMPLETED → seen COMPLETED and served)¹", available - at("COMPLETED", false)?);
        put("POST → result available", available - posted);
        eprintln!("latency run {}/{LATENCY_RUNS}: {} ms", run + 1, available - posted);
    }
    let last_block = env.admin.provider.get_block_number().await?;
    println!("\n## Latency by stage, trust {trust}, {} worker(s), {LATENCY_RUNS} requests of one task", trust.max(1));
    println!("\n| stage | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|");
    for (k, mut v) in stages {
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!("| {k} | {:.0} | {:.0} | {mean:.0} |", pct(&v, 0.5), pct(&v, 0.99));
    }
    println!(
        "\n¹ includes up to one pool poll ({} ms); ² up to one worker poll ({} ms).",
        POLL.as_millis(),
        POLL.as_millis()
    );

    // 3. Gas of what phase 1 sent to the hub, by function.
    let hub = env.d.hub;
    let mut gas: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for n in first_block + 1..=last_block {
        let Some(block) = env.admin.provider.get_block_by_number(n.into()).full().await? else { continue };
        for tx in block.transactions.txns() {
            if tx.to() != Some(hub) {
                continue;
            }
            let input = tx.input();
            let name = function_name(input.get(..4).unwrap_or_default());
            let receipt = env.admin.provider.get_transaction_receipt(tx.tx_hash()).await?.context("receipt")?;
            let e = gas.entry(name).or_default();
            e.0 += 1;
            e.1 += receipt.gas_used;
        }
    }
    println!("\n## Gas per task, trust {trust} ({LATENCY_RUNS} tasks, one per deal)");
    println!("\n| function | transactions | gas per transaction | gas per task |\n|---|---:|---:|---:|");
    let mut per_task_total = 0;
    for (name, (count, used)) in &gas {
        let per_task = used / LATENCY_RUNS as u64;
        // Funding transactions (deposits) show by selector; they are the bench's, not a task's.
        if name != "matchOrders" && !name.starts_with("0x") {
            per_task_total += per_task;
        }
        println!("| {name} | {count} | {} | {per_task} |", used / count);
    }
    println!("| **task lifecycle (all but matchOrders)** | | | **{per_task_total}** |");
    stop_all(workers).await?;

    // 2. Throughput: one deal of TASKS tasks, N workers.
    if trust == 1 {
        println!("\n## Throughput, one deal of {TASKS} tasks through one pool\n");
        println!("| app | workers | deal → all COMPLETED s | tasks/min |\n|---|---:|---:|---:|");
        for (label, app) in [("returns at once", quick), ("computes 1 s", second)] {
            for n in [1usize, 2, 4] {
                let mut workers = Vec::new();
                for i in 0..n {
                    workers.push(start_worker(&env, &pool_url, env.worker_key().await?, &apps, 100 + i));
                }
                let req = env.request(app, TASKS, 1)?;
                let hash = req.order_hash(&env.domain).to_string();
                exchange.publish(&env, &requester_auth, &req).await?;
                let proposals = exchange.url(&format!("/proposals?orderHash={hash}"));
                let dealid: B256 = until("the deal", Duration::from_secs(60), async || {
                    let (_, b) = env.get(&proposals).await?;
                    Ok(b["proposals"][0]["dealid"].as_str().map(str::to_owned))
                })
                .await?
                .parse()?;
                let dealt = Instant::now();
                let hubc = DragonHub::new(hub, &env.admin.provider);
                until("every task COMPLETED", Duration::from_secs(600), async || {
                    for i in (0..TASKS).rev() {
                        if hubc.viewTask(task_id(dealid, i)).call().await?.status != 3 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return Ok(None);
                        }
                    }
                    Ok(Some(()))
                })
                .await?;
                let secs = dealt.elapsed().as_secs_f64();
                println!("| {label} | {n} | {secs:.1} | {:.0} |", TASKS as f64 * 60.0 / secs);
                eprintln!("throughput {label} × {n}: {secs:.1} s");
                stop_all(workers).await?;
            }
        }
    }
    stop_all(vec![pool_stop]).await?;
    exchange.stop().await?;
    Ok(())
}

/// The hub function a call's selector names (those a deal's life sends).
fn function_name(selector: &[u8]) -> String {
    use alloy::sol_types::SolCall;
    use dragon::chain::contracts::hub::DragonHub as H;
    let known: [(&[u8; 4], &str); 8] = [
        (&H::matchOrdersCall::SELECTOR, "matchOrders"),
        (&H::initializeCall::SELECTOR, "initialize"),
        (&H::initializeArrayCall::SELECTOR, "initializeArray"),
        (&H::contributeCall::SELECTOR, "contribute"),
        (&H::revealCall::SELECTOR, "reveal"),
        (&H::finalizeCall::SELECTOR, "finalize"),
        (&H::reopenCall::SELECTOR, "reopen"),
        (&H::claimCall::SELECTOR, "claim"),
    ];
    known
        .iter()
        .find(|(s, _)| s.as_slice() == selector)
        .map_or_else(|| format!("0x{}", alloy::hex::encode(selector)), |(_, n)| (*n).to_owned())
}
