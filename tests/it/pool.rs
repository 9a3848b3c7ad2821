//! The pool runtime end to end, with real components: anvil with Dragon's contracts, a settling exchange
//! (`dragon serve` in process), the pool's scheduler and API (`dragon pool` in process, its own PostgreSQL
//! database) and one worker (`dragon worker` in process) running a native shell-script app with the `process`
//! executor. A request posted to the exchange becomes a deal, the pool initializes its task, the worker
//! computes, contributes and reveals, the pool finalizes, and iExec's own SDK downloads the result from the pool.

use crate::fixtures::KEY1;
use crate::harness::{database, dragon_bin, root, until_within as until};
use crate::market::{Server, World, app_order_of, provider, request_of};
use crate::settle::settling;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::chain::setup;
use dragon::executor::ExecutorConfig;
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use dragon::pool::PoolConfig;
use dragon::pool::protocol::Capacity;
use dragon::worker::WorkerConfig;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls `f` until it gives a value, for at most `limit`.
/// A `dragon pool` running in this process.
pub struct Pool {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), dragon::pool::PoolError>>,
}

impl Pool {
    pub fn config(w: &World, db: String) -> PoolConfig {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let mut c = PoolConfig::new(w.pool, w.owner.clone(), w.node.url(), w.deployment.clone(), db, addr);
        c.poll = Duration::from_millis(200);
        c
    }

    pub fn start(config: PoolConfig) -> Pool {
        crate::harness::capture_logs();
        let listener = TcpListener::bind(config.listen).expect("bind the pool's port");
        let base = config.public_url.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dragon::pool::run(config, listener, async move {
            let _ = rx.await;
        }));
        Pool { base, stop: Some(tx), task }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.expect("pool request");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    pub(crate) async fn status(&self) -> Value {
        let (s, b) = self.get("/status").await;
        assert_eq!(s, 200, "{b}");
        serde_json::from_str(&b).expect("status JSON")
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("pool task").expect("pool ran cleanly");
    }
}

/// A `dragon worker` running in this process.
pub struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), dragon::worker::WorkerError>>,
}

impl Worker {
    pub fn start(config: WorkerConfig) -> Worker {
        crate::harness::capture_logs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dragon::worker::run(config, async move {
            let _ = rx.await;
        }));
        Worker { stop: Some(tx), task }
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("worker task").expect("worker ran cleanly");
    }
}

pub(crate) fn app_script() -> PathBuf {
    root().join("tests/fixtures/pool/app.sh")
}

/// A fresh worker key with gas money and stake in the hub.
pub async fn funded_worker(w: &World) -> PrivateKeySigner {
    let key = PrivateKeySigner::random();
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p
        .raw_request("anvil_setBalance".into(), (key.address(), U256::from(10u128.pow(20))))
        .await
        .expect("anvil_setBalance");
    let url = w.node.url();
    let who = setup::Account::new(&url, &key).expect("account");
    // The token's minter is the World's owner, which is also the workerpool owner: a pool running in this test
    // sends its own transactions with that key, so a mint can lose the nonce race. Only the mint can (the
    // worker's own approve and deposit have no other sender), and a refused mint changed nothing: try again.
    for attempt in 1.. {
        let minter = setup::Account::new(&url, &w.owner).expect("account");
        match setup::fund(&w.deployment, &minter, &[&who], U256::from(1_000 * Nrlc::PER_RLC)).await {
            Ok(()) => break,
            // Lost to the pool's transaction of the same nonce: "nonce too low" once it is mined, "replacement
            // transaction underpriced" while it is pending.
            Err(e)
                if attempt < 5
                    && ["nonce", "underpriced", "already known"].iter().any(|m| e.to_string().contains(m)) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("fund: {e}"),
        }
    }
    key
}

pub fn worker_config(w: &World, pool: &Pool, key: PrivateKeySigner, app: Address, dir: PathBuf) -> WorkerConfig {
    WorkerConfig {
        key,
        pool_url: pool.base.clone(),
        rpc_url: w.node.url(),
        deployment: w.deployment.clone(),
        executor: ExecutorConfig::Process { allow: vec![app], user: None },
        work_dir: dir,
        capacity: Capacity { cpu: 1, memory: 1 << 30, gpu: false },
        poll: Duration::from_millis(200),
        heartbeat: Duration::from_secs(10),
        app_env: Vec::new(),
        inputs: dragon::worker::inputs::InputPolicy::default(),
        scratch_bytes: dragon::executor::DEFAULT_SCRATCH_BYTES,
    }
}

pub fn work_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dragon-pool-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The native app registered on chain by the World's owner, with the script's absolute path as multiaddr, and
/// an app order for it.
pub(crate) async fn native_app(w: &World) -> (Address, AnyOrder) {
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let script = app_script();
    let app = setup::create_app(&w.deployment, &owner, "pool-hello", script.to_str().expect("utf-8").as_bytes())
        .await
        .expect("create app");
    (app, w.signed(&w.owner, app_order_of(app, 1, 100, 0x51)))
}

pub(crate) fn request(w: &World, app: Address, volume: u64, args: &str, salt: u8) -> AnyOrder {
    let params = json!({"iexec_args": args}).to_string();
    w.signed(&w.requester, request_of(w.requester.address(), app, [1, 5], volume, 1, &params, salt))
}

/// Publishes the orders and waits for the deal on chain; returns its id.
pub(crate) async fn deal_of(w: &World, server: &Server, orders: &[&AnyOrder]) -> String {
    for o in orders {
        let key = if matches!(o, AnyOrder::Request(_)) { &w.requester } else { &w.owner };
        let (s, b) = server.publish(key, o).await;
        assert_eq!(s, 200, "{b}");
    }
    let req = orders.iter().find(|o| matches!(o, AnyOrder::Request(_))).expect("a request");
    let hash = req.order_hash(&w.domain).to_string();
    until("the deal on chain", Duration::from_secs(30), async || {
        let (_, b) = server.get(&format!("/deals?requestorderHash={hash}")).await;
        b["deals"][0]["dealid"].as_str().map(str::to_owned)
    })
    .await
}

/// Waits until every task of the deal is COMPLETED in the exchange's deal view; returns the task ids.
pub(crate) async fn completed_tasks(server: &Server, dealid: &str, limit: Duration) -> Vec<String> {
    until("the tasks COMPLETED in GET /deals/{id}", limit, async || {
        let (s, one) = server.get(&format!("/deals/{dealid}")).await;
        assert_eq!(s, 200, "{one}");
        let tasks = one["tasks"].as_array()?;
        let done = !tasks.is_empty() && tasks.iter().all(|t| t["status"] == "COMPLETED");
        done.then(|| tasks.iter().map(|t| t["taskid"].as_str().expect("taskid").to_owned()).collect())
    })
    .await
}

/// The pool's status once it shows `n` tasks COMPLETED (the exchange can see a finalize before the pool has
/// recorded its receipt).
pub(crate) async fn pool_completed(pool: &Pool, n: usize) -> Value {
    until("the tasks COMPLETED in the pool's status", Duration::from_secs(30), async || {
        let s = pool.status().await;
        let done = s["tasks"].as_array()?.iter().filter(|t| t["status"] == "COMPLETED").count();
        (done == n).then_some(s)
    })
    .await
}

/// Runs the SDK's `results` flow: iExec's `task.fetchResults` with the pool as its IPFS gateway.
pub(crate) async fn sdk_fetch_results(w: &World, server: &Server, pool: &Pool, taskid: &str) -> Value {
    sdk_fetch_results_with(w, server, pool, taskid, 8).await
}

/// The same with SDK `version` (8 or 9).
async fn sdk_fetch_results_with(w: &World, server: &Server, pool: &Pool, taskid: &str, version: u8) -> Value {
    assert!(
        root().join("tests/sdk/node_modules/iexec8").exists(),
        "iExec's SDK is not installed: run scripts/setup.sh (npm ci in tests/sdk)"
    );
    let cfg = json!({
        "flow": "results",
        "rpc": w.node.url(),
        "hub": w.deployment.hub.to_checksum(None),
        "api": server.base,
        "chainId": server.chain_id,
        "keys": {"requester": KEY1},
        "taskid": taskid,
        "ipfsGatewayURL": pool.base,
        "sdk": version,
    });
    crate::sdk::run_flow(cfg).await.unwrap_or_else(|e| panic!("flow results failed: {e}"))
}

pub(crate) fn unzip_entry(zip: &[u8], name: &str) -> String {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip archive");
    let mut f = z.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive"));
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).expect("inflate");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_runs_through_the_pool_and_the_sdk_downloads_the_result() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let worker_address = key.address();
    let worker = Worker::start(worker_config(&w, &pool, key, app, work_dir("e2e")));

    let posted = Instant::now();
    let pool_order = w.pool_order(5, 10, 1, 0x52);
    let req = request(&w, app, 1, "world", 0x53);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let dealt = posted.elapsed();
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let completed = posted.elapsed();
    eprintln!("pool e2e: POST to deal {dealt:?}, POST to COMPLETED {completed:?}");
    assert_eq!(tasks.len(), 1);
    let taskid = &tasks[0];

    // On chain: COMPLETED, with the result link iExec's SDK decodes.
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let t = hub.viewTask(taskid.parse().expect("taskid")).call().await.expect("viewTask");
    assert_eq!(t.status, 3);
    let link: Value = serde_json::from_slice(&t.results).expect("results are JSON");
    assert_eq!(link, json!({"storage": "ipfs", "location": format!("/results/{taskid}")}));
    assert_eq!(t.contributors, vec![worker_address]);

    // The pool's view: the task, its replicate, the worker; and its metrics.
    let status = pool_completed(&pool, 1).await;
    assert_eq!(status["tasks"][0]["taskid"], taskid.as_str(), "{status}");
    assert_eq!(status["tasks"][0]["status"], "COMPLETED", "{status}");
    assert_eq!(status["replicates"][0]["status"], "COMPLETED", "{status}");
    assert_eq!(status["workers"][0]["address"], worker_address.to_checksum(None), "{status}");
    assert_eq!(status["workers"][0]["alive"], true, "{status}");
    let (s, timeline) = pool.get(&format!("/status/tasks/{taskid}")).await;
    assert_eq!(s, 200, "{timeline}");
    let timeline: Value = serde_json::from_str(&timeline).expect("JSON");
    let events = timeline["events"].as_array().expect("events");
    let of = |worker: bool| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.get("worker").is_some() == worker)
            .map(|e| e["status"].as_str().expect("s"))
            .collect()
    };
    let replicate = ["CREATED", "COMPUTING", "COMPUTED", "CONTRIBUTING", "CONTRIBUTED", "REVEALING", "REVEALED"];
    assert_eq!(of(true), [&replicate[..], &["RESULT_UPLOADED"]].concat(), "{timeline}");
    let task = of(false);
    assert_eq!(task[..3], ["RECEIVED", "INITIALIZED", "RUNNING"], "{timeline}");
    assert_eq!(task[task.len() - 2..], ["FINALIZING", "COMPLETED"], "{timeline}");
    let at = |status: &str, worker: bool| -> i64 {
        events
            .iter()
            .find(|e| e["status"] == status && e.get("worker").is_some() == worker)
            .and_then(|e| e["at"].as_i64())
            .unwrap_or_else(|| panic!("{status} in {timeline}"))
    };
    eprintln!(
        "pool e2e stages (ms): initialize {}, hand-out {}, run {}, contribute {}, reveal {}, upload {}, finalize {}",
        at("INITIALIZED", false) - at("RECEIVED", false),
        at("CREATED", true) - at("INITIALIZED", false),
        at("COMPUTED", true) - at("COMPUTING", true),
        at("CONTRIBUTED", true) - at("CONTRIBUTING", true),
        at("REVEALED", true) - at("REVEALING", true),
        at("RESULT_UPLOADED", true) - at("REVEALED", true),
        at("COMPLETED", false) - at("RESULT_UPLOADED", true),
    );
    let (s, metrics) = pool.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(metrics.contains("dragon_pool_tasks{status=\"COMPLETED\"} 1"), "{metrics}");
    assert!(metrics.contains("dragon_pool_workers{state=\"alive\"} 1"), "{metrics}");
    assert!(metrics.contains("dragon_pool_queue_depth 0"), "{metrics}");

    // iExec's SDK downloads exactly the archive the pool serves, and it holds the app's output.
    let (s, _) = pool.get(&format!("/results/{taskid}")).await;
    assert_eq!(s, 200);
    let served = reqwest::get(format!("{}/results/{taskid}", pool.base)).await.expect("get").bytes().await.expect("b");
    let fetched = sdk_fetch_results(&w, &server, &pool, taskid).await;
    let zip = alloy::hex::decode(fetched["hex"].as_str().expect("hex")).expect("hex archive");
    assert_eq!(zip, served.to_vec());
    assert_eq!(fetched["bytes"], zip.len());
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello world\n");
    let fetched9 = sdk_fetch_results_with(&w, &server, &pool, taskid, 9).await;
    assert_eq!(fetched9["sha256"], fetched["sha256"], "SDK 9 downloads the same bytes");
    let (s, body) = pool.get(&format!("/results/{}", B256::repeat_byte(7))).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("\"code\":\"not_found\""), "{body}");

    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_restarted_mid_deal_finishes_the_deal() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool_db = database().await;
    let config = Pool::config(&w, pool_db);
    let pool = Pool::start(config.clone());
    let (app, app_order) = native_app(&w).await;

    // No worker yet: the pool initializes the tasks, then stops.
    let pool_order = w.pool_order(5, 10, 1, 0x54);
    let req = request(&w, app, 2, "again", 0x55);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    until("both tasks INITIALIZED", Duration::from_secs(30), async || {
        let s = pool.status().await;
        let tasks = s["tasks"].as_array()?;
        (tasks.len() == 2 && tasks.iter().all(|t| t["status"] == "INITIALIZED")).then_some(())
    })
    .await;
    let (_, metrics) = pool.get("/metrics").await;
    assert!(metrics.contains("dragon_pool_queue_depth 2"), "{metrics}");
    pool.shutdown().await;

    // A new pool process on the same database, and a worker: the deal completes.
    let pool = Pool::start(config);
    let key = funded_worker(&w).await;
    let worker = Worker::start(worker_config(&w, &pool, key, app, work_dir("restart")));
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(90)).await;
    assert_eq!(tasks.len(), 2);
    let status = pool_completed(&pool, 2).await;
    assert!(status["tasks"].as_array().expect("tasks").iter().all(|t| t["status"] == "COMPLETED"), "{status}");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

/// The first replicate in the pool's status that has `status`.
pub(crate) async fn replicate_in(pool: &Pool, status: &str) -> Value {
    until(&format!("a replicate {status}"), Duration::from_secs(30), async || {
        let s = pool.status().await;
        s["replicates"].as_array()?.iter().find(|r| r["status"] == status).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_mid_run_resumes_its_replicate() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let dir = work_dir("worker-restart");
    let worker = Worker::start(worker_config(&w, &pool, key.clone(), app, dir.clone()));

    // The app sleeps 3 s: the worker is stopped while it runs (its process group is killed with it).
    let pool_order = w.pool_order(5, 10, 1, 0x56);
    let req = request(&w, app, 1, "slow 3", 0x57);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let replicate = replicate_in(&pool, "COMPUTING").await;
    worker.shutdown().await;
    let taskid: B256 = replicate["taskid"].as_str().expect("taskid").parse().expect("taskid");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    assert_eq!(hub.viewTask(taskid).call().await.expect("viewTask").status, 1, "still ACTIVE, nobody contributed");

    // The same worker (key and work dir) starts again: the pool hands its replicate back, and it finishes.
    let worker = Worker::start(worker_config(&w, &pool, key.clone(), app, dir));
    completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let t = hub.viewTask(taskid).call().await.expect("viewTask");
    assert_eq!(t.contributors, vec![key.address()]);
    let status = pool_completed(&pool, 1).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    assert_eq!(replicates.len(), 1, "one replicate, handed back rather than a second one: {status}");
    assert_eq!(replicates[0]["status"], "COMPLETED", "{status}");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_api_answers_refusals_with_stable_codes() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let http = reqwest::Client::new();
    // A member: a public pool takes workers with stake in the hub (strangers: tests/it/hostile_pool.rs).
    let key = funded_worker(&w).await;
    let code = |v: &Value| v["code"].as_str().map(str::to_owned);
    let post = async |path: &str, token: Option<&str>, body: Value| -> (u16, Value) {
        let mut req = http.post(format!("{}{path}", pool.base)).json(&body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.expect("request");
        (resp.status().as_u16(), resp.json().await.expect("JSON body"))
    };
    let challenge = async || -> String {
        let (s, b) = pool.get(&format!("/challenge?address={}", key.address())).await;
        assert_eq!(s, 200, "{b}");
        serde_json::from_str::<Value>(&b).expect("JSON")["challenge"].as_str().expect("challenge").to_owned()
    };
    let sign = |text: &str, k: &PrivateKeySigner| {
        use alloy::signers::SignerSync;
        alloy::hex::encode_prefixed(k.sign_message_sync(text.as_bytes()).expect("sign").as_bytes())
    };

    // No token, a bad token.
    let (s, b) = post("/workers/work", None, json!({})).await;
    assert_eq!((s, code(&b).as_deref()), (401, Some("unauthorized")), "{b}");
    let (s, b) = post("/workers/ping", Some("nope"), json!({})).await;
    assert_eq!((s, code(&b).as_deref()), (401, Some("unauthorized")), "{b}");
    // A challenge signed by someone else, then a challenge used twice.
    let text = challenge().await;
    let other = PrivateKeySigner::random();
    let login = json!({"address": key.address(), "challenge": text, "signature": sign(&text, &other)});
    let (s, b) = post("/workers/login", None, login).await;
    assert_eq!((s, code(&b).as_deref()), (401, Some("unauthorized")), "{b}");
    let login = json!({"address": key.address(), "challenge": text, "signature": sign(&text, &key)});
    let (s, b) = post("/workers/login", None, login).await;
    assert_eq!((s, code(&b).as_deref()), (401, Some("unauthorized")), "a challenge is single-use: {b}");
    // A good login; work before registering; a malformed body; an upload for a task it does not run.
    let text = challenge().await;
    let login = json!({"address": key.address(), "challenge": text, "signature": sign(&text, &key)});
    let (s, b) = post("/workers/login", None, login).await;
    assert_eq!(s, 200, "{b}");
    let token = b["token"].as_str().expect("token").to_owned();
    let (s, b) = post("/workers/work", Some(&token), json!({})).await;
    assert_eq!((s, code(&b).as_deref()), (409, Some("not_registered")), "{b}");
    let (s, b) = post("/workers/register", Some(&token), json!({"cpu": "many"})).await;
    assert_eq!((s, code(&b).as_deref()), (400, Some("bad_request")), "{b}");
    let (s, b) = post("/workers/register", Some(&token), json!({"cpu": 2, "memory": 1024, "gpu": false})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = post("/workers/work", Some(&token), json!({})).await;
    assert_eq!((s, &b["work"]), (200, &Value::Null), "no deal, no work: {b}");
    let resp = http
        .post(format!("{}/results/{}", pool.base, B256::repeat_byte(3)))
        .header("authorization", format!("Bearer {token}"))
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status().as_u16(), 403);
    let b: Value = resp.json().await.expect("JSON");
    assert_eq!(code(&b).as_deref(), Some("forbidden"), "{b}");
    let status = pool.status().await;
    assert_eq!(status["workers"][0]["cpu"], 2, "{status}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_runs_in_docker_through_the_pool() {
    // The executor tests' engine and image (busybox with their app.sh as entrypoint).
    crate::executor::docker().await;
    let host = tokio::task::spawn_blocking(crate::executor::engine_host).await.expect("engine");
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let image = crate::executor::IMAGE;
    let app = setup::create_app(&w.deployment, &owner, "pool-docker", image.as_bytes()).await.expect("app");
    let app_order = w.signed(&w.owner, app_order_of(app, 1, 10, 0x58));
    let key = funded_worker(&w).await;
    let mut config = worker_config(&w, &pool, key.clone(), app, work_dir("docker"));
    config.executor =
        ExecutorConfig::Docker { host: Some(host.to_owned()), network: None, owner: Some("dragon-pool-test".into()) };
    let worker = Worker::start(config);

    let posted = Instant::now();
    let pool_order = w.pool_order(5, 10, 1, 0x59);
    let req = request(&w, app, 1, "in a container", 0x5a);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(90)).await;
    eprintln!("pool docker e2e: POST to COMPLETED {:?}", posted.elapsed());
    let taskid = &tasks[0];
    let fetched = sdk_fetch_results(&w, &server, &pool, taskid).await;
    let zip = alloy::hex::decode(fetched["hex"].as_str().expect("hex")).expect("hex archive");
    // The app saw the task through the container's mounts and wrote its answer under /iexec_out/result.
    assert_eq!(unzip_entry(&zip, "result/answer.txt"), format!("answer of {taskid}\n"));
    assert_eq!(unzip_entry(&zip, "args.txt"), "[in]\n[a]\n[container]\n");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_of_ten_tasks_completes_through_one_worker() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let worker = Worker::start(worker_config(&w, &pool, key, app, work_dir("ten")));
    let posted = Instant::now();
    let pool_order = w.pool_order(5, 10, 1, 0x5b);
    let req = request(&w, app, 10, "many", 0x5c);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(120)).await;
    let took = posted.elapsed();
    eprintln!(
        "pool throughput: 10 tasks, one worker, POST to all COMPLETED {took:?} ({:.0} tasks/min)",
        600.0 / took.as_secs_f64()
    );
    assert_eq!(tasks.len(), 10);
    let status = pool_completed(&pool, 10).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    assert_eq!(replicates.len(), 10, "{status}");
    assert!(replicates.iter().all(|r| r["status"] == "COMPLETED"), "{status}");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_down_while_its_worker_computes_finalizes_when_it_is_back() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let config = Pool::config(&w, database().await);
    let pool = Pool::start(config.clone());
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let worker = Worker::start(worker_config(&w, &pool, key.clone(), app, work_dir("pool-down")));

    let pool_order = w.pool_order(5, 10, 1, 0x5d);
    let req = request(&w, app, 1, "offline 2", 0x5e);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let replicate = replicate_in(&pool, "COMPUTING").await;
    pool.shutdown().await;
    // Without its pool the worker still contributes and reveals on chain; only the upload has to wait.
    let taskid: B256 = replicate["taskid"].as_str().expect("taskid").parse().expect("taskid");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    until("the reveal on chain while the pool is down", Duration::from_secs(30), async || {
        let t = hub.viewTask(taskid).call().await.expect("viewTask");
        (t.status == 2 && t.revealCounter == U256::from(1)).then_some(())
    })
    .await;
    // The pool comes back on the same address and database: the worker uploads, the pool finalizes.
    let pool = Pool::start(config);
    completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let status = pool_completed(&pool, 1).await;
    assert_eq!(status["replicates"][0]["status"], "COMPLETED", "{status}");
    assert_eq!(hub.viewTask(taskid).call().await.expect("viewTask").contributors, vec![key.address()]);
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_and_worker_commands_run_a_task_and_stop_on_sigterm() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let port = dragon::local::free_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    // Keys and the database URL from the environment only; everything else from flags.
    let mut pool = tokio::process::Command::new(dragon_bin())
        .args(["pool", "--workerpool", &w.pool.to_string(), "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--poll-ms", "200"])
        .env("DRAGON_POOL_KEY", crate::fixtures::KEY0)
        .env("DATABASE_URL", database().await)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon pool");
    let dir = work_dir("commands");
    let mut worker = tokio::process::Command::new(dragon_bin())
        .args(["worker", "--pool", &base, "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--executor", "process", "--allow-app", &app.to_string(), "--poll-ms", "200", "--work-dir"])
        .arg(&dir)
        .env("DRAGON_WORKER_KEY", alloy::hex::encode_prefixed(key.to_bytes()))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon worker");
    let worker_seen = async || -> Option<()> {
        let s: Value = reqwest::get(format!("{base}/status")).await.ok()?.json().await.ok()?;
        (s["workers"][0]["address"] == key.address().to_checksum(None)).then_some(())
    };
    until("the worker registered with the pool", Duration::from_secs(60), worker_seen).await;

    let pool_order = w.pool_order(5, 10, 1, 0x5f);
    let req = request(&w, app, 1, "processes", 0x60);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let zip = reqwest::get(format!("{base}/results/{}", tasks[0])).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello processes\n");

    for (name, child) in [("worker", &mut worker), ("pool", &mut pool)] {
        let pid = child.id().expect("pid");
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exit").expect("wait");
        assert!(status.success(), "dragon {name} stops cleanly on SIGTERM: {status}");
    }
    server.shutdown().await;
}

/// The pool and its workers send from accounts whose transactions the hub sometimes refuses at estimation (a
/// task someone else initialized, a contribution already made). Such a refusal must not cost a nonce: with a
/// gap, every later transaction of the account would wait behind it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_refused_at_estimation_leaves_no_nonce_gap() {
    let w = World::new().await;
    let account = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let hub = DragonHub::new(w.deployment.hub, &account.provider);
    for _ in 0..3 {
        let refused = account.one_at_a_time(hub.initialize(B256::repeat_byte(7), U256::ZERO).send()).await;
        let e = refused.expect_err("initializing an unknown deal is refused");
        assert!(e.as_revert_data().is_some(), "refused by the hub, at estimation: {e}");
    }
    let token = dragon::chain::contracts::token::RLC::new(w.deployment.token, &account.provider);
    let mined = tokio::time::timeout(Duration::from_secs(20), async {
        let pending = account.one_at_a_time(token.approve(w.deployment.hub, U256::from(1)).send()).await;
        pending.expect("sent").get_receipt().await
    })
    .await
    .expect("the next transaction is mined, not stuck behind a nonce gap")
    .expect("approve");
    assert!(mined.status());
}
