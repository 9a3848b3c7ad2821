//! The pool runtime when things go wrong, with real components (anvil with Dragon's contracts, PostgreSQL, the
//! pool and its workers in process or as `dragon worker` processes, the `process` executor and
//! `tests/fixtures/pool/app.sh`): a dishonest worker outvoted and slashed under replication, a worker process
//! killed (SIGKILL) mid-task replaced by another, and tasks past their final deadline claimed so that the requester
//! is refunded. Deals are made directly on chain (the exchange plays no part in what happens after the deal).

use crate::harness::{database, dragon_bin, until_within as until};
use crate::market::{World, pool_order_of, provider, request_of};
use crate::pool::{
    Pool, Worker, funded_worker, native_app, pool_completed, replicate_in, unzip_entry, work_dir, worker_config,
};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use dragon::chain::contracts::hub::DragonHub;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The folder `work_dir(name)` gave (without emptying it again).
fn work_dir_of(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dragon-pool-{}-{name}", std::process::id()))
}

/// A request for `app` at `trust` (its own beneficiary), paying at most `pool_price` to the workerpool.
fn request_at(w: &World, app: Address, trust: u64, pool_price: u64, volume: u64, args: &str, salt: u8) -> AnyOrder {
    let params = json!({"iexec_args": args}).to_string();
    let mut r = request_of(w.requester.address(), app, [1, pool_price], volume, 1, &params, salt);
    if let AnyOrder::Request(r) = &mut r {
        r.trust = U256::from(trust);
    }
    w.signed(&w.requester, r)
}

/// A workerpool order of the World's pool at `trust`.
fn pool_order_at(w: &World, trust: u64, price: u64, salt: u8) -> AnyOrder {
    let mut o = pool_order_of(w.pool, price, 10, 1, salt);
    if let AnyOrder::Workerpool(o) = &mut o {
        o.trust = U256::from(trust);
    }
    w.signed(&w.owner, o)
}

fn hub(w: &World) -> DragonHub::DragonHubInstance<alloy::providers::DynProvider> {
    DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner))
}

/// The hub account of `who`: (stake, locked) in nRLC.
async fn account(w: &World, who: Address) -> (U256, U256) {
    let a = hub(w).viewAccount(who).call().await.expect("viewAccount");
    (a.stake, a.locked)
}

/// The only task of a deal (index 0).
fn task_of(deal: B256, idx: u64) -> B256 {
    dragon::ids::TaskId::of(dragon::ids::DealId(deal), idx).0
}

async fn task_on_chain(
    w: &World,
    task: B256,
    status: u8,
    limit: Duration,
) -> dragon::chain::contracts::hub::IexecLibCore_v5::Task {
    let h = hub(w);
    until(&format!("task {task:#x} in status {status} on chain"), limit, async || {
        let t = h.viewTask(task).call().await.expect("viewTask");
        (t.status == status).then_some(t)
    })
    .await
}

/// The task once COMPLETED on chain; on timeout, fails with what the chain and the pool show of it.
async fn task_completed_or_dump(
    w: &World,
    pool: &Pool,
    task: B256,
    limit: Duration,
) -> dragon::chain::contracts::hub::IexecLibCore_v5::Task {
    let h = hub(w);
    let start = Instant::now();
    loop {
        let t = h.viewTask(task).call().await.expect("viewTask");
        if t.status == 3 {
            return t;
        }
        if start.elapsed() > limit {
            let status = pool.status().await;
            panic!(
                "task {task:#x} not COMPLETED after {limit:?}: on chain status {}, contributors {:?}, reveals {}/{}, \
                 consensus {:#x}; the pool's status: {status:#}",
                t.status, t.contributors, t.revealCounter, t.winnerCounter, t.consensusValue
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Gas used by the hub's transactions from block `from` on, by the first task event each one emitted.
async fn gas_by_step(w: &World, from: u64) -> BTreeMap<&'static str, (u64, u64)> {
    let p = provider(&w.node.url(), &w.owner);
    let logs = p.get_logs(&Filter::new().address(w.deployment.hub).from_block(from)).await.expect("logs");
    let steps = [
        (DragonHub::TaskInitialize::SIGNATURE_HASH, "initialize"),
        (DragonHub::TaskContribute::SIGNATURE_HASH, "contribute"),
        (DragonHub::TaskReveal::SIGNATURE_HASH, "reveal"),
        (DragonHub::TaskFinalize::SIGNATURE_HASH, "finalize"),
    ];
    let mut seen = std::collections::HashSet::new();
    let mut out: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for l in &logs {
        let Some((_, step)) = steps.iter().find(|(sig, _)| l.topic0() == Some(sig)) else { continue };
        let tx = l.transaction_hash.expect("tx hash");
        if !seen.insert(tx) {
            continue;
        }
        let r = p.get_transaction_receipt(tx).await.expect("receipt").expect("mined");
        let e = out.entry(step).or_default();
        e.0 += 1;
        e.1 += r.gas_used;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_outvotes_and_slashes_a_dishonest_worker() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let price = 1_000;
    let stake = U256::from(price * 30 / 100); // the workerpool's worker stake ratio: 30%
    let keys = [funded_worker(&w).await, funded_worker(&w).await, funded_worker(&w).await, funded_worker(&w).await];
    let before: Vec<_> = futures_util::future::join_all(keys.iter().map(|k| account(&w, k.address()))).await;

    // The dishonest worker computes with another greeting, so its result differs; it starts first, so that it
    // contributes before any consensus (later, the hub takes no more contributions).
    let mut bad = worker_config(&w, &pool, keys[0].clone(), app, work_dir("bad"));
    bad.app_env = vec![("GREETING".into(), "goodbye".into())];
    let bad = Worker::start(bad);
    let start_block = provider(&w.node.url(), &w.owner).get_block_number().await.expect("block");
    let deal = w
        .match_directly(
            &w.requester,
            &app_order,
            &pool_order_at(&w, 3, price, 0x71),
            &request_at(&w, app, 3, price, 1, "replicas", 0x72),
        )
        .await;
    let task = task_of(deal, 0);
    until("the dishonest contribution on chain", Duration::from_secs(30), async || {
        let t = hub(&w).viewTask(task).call().await.expect("viewTask");
        (t.contributors == vec![keys[0].address()]).then_some(())
    })
    .await;
    // At trust 3 two newcomers that agree make a consensus; with one dissenter the pool must hand out more.
    let honest: Vec<Worker> = keys[1..]
        .iter()
        .enumerate()
        .map(|(i, k)| Worker::start(worker_config(&w, &pool, k.clone(), app, work_dir(&format!("honest{i}")))))
        .collect();

    let t = task_completed_or_dump(&w, &pool, task, Duration::from_secs(90)).await;
    let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    assert_eq!(t.contributors.len(), 4, "one dissenter and three agreeing workers contributed: {:?}", t.contributors);
    assert_eq!(t.contributors[0], addresses[0]);
    assert_eq!(t.revealCounter, U256::from(3));
    assert_eq!(t.winnerCounter, U256::from(3));
    // The majority's result is the task's, and the pool serves it.
    let (s, _) = pool.get(&format!("/results/{task}")).await;
    assert_eq!(s, 200);
    let zip = reqwest::get(format!("{}/results/{task}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello replicas\n");
    let digest = dragon::pool::results::archive_digest(&zip, task, false).expect("digest");
    assert_eq!(digest, t.resultDigest);

    // On chain: the dishonest worker lost its stake and gained no score; the others got theirs back, a reward,
    // and a point of score each.
    let h = hub(&w);
    let (bad_stake, bad_locked) = account(&w, addresses[0]).await;
    assert_eq!((bad_stake, bad_locked), (before[0].0 - stake, U256::ZERO), "the dishonest worker is slashed");
    assert_eq!(h.viewScore(addresses[0]).call().await.expect("score"), U256::ZERO);
    for (i, a) in addresses.iter().enumerate().skip(1) {
        let (s, l) = account(&w, *a).await;
        assert!(s > before[i].0, "honest worker {i} is rewarded: {s} vs {}", before[i].0);
        assert_eq!(l, U256::ZERO);
        assert_eq!(h.viewScore(*a).call().await.expect("score"), U256::from(1));
    }
    let faulty = provider(&w.node.url(), &w.owner)
        .get_logs(
            &Filter::new()
                .address(w.deployment.hub)
                .event_signature(DragonHub::FaultyContribution::SIGNATURE_HASH)
                .from_block(start_block),
        )
        .await
        .expect("logs");
    assert_eq!(faulty.len(), 1);
    let f = faulty[0].log_decode::<DragonHub::FaultyContribution>().expect("decode");
    assert_eq!(f.inner.data.worker, addresses[0]);

    // The pool's view: four replicates, the dissenter's not a winner.
    let status = pool_completed(&pool, 1).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    assert_eq!(replicates.len(), 4, "{status}");
    let of = |a: Address| replicates.iter().find(|r| r["worker"] == a.to_checksum(None)).expect("replicate");
    assert_eq!(of(addresses[0])["status"], "FAILED", "{status}");
    for a in &addresses[1..] {
        assert_eq!(of(*a)["status"], "COMPLETED", "{status}");
    }

    // The dissenter's own archive (kept in its work dir) is refused: it is not the consensus.
    let bad_zip = std::fs::read(work_dir_of("bad").join(format!("{task:#x}")).join("result.zip")).expect("its zip");
    assert_eq!(unzip_entry(&bad_zip, "result.txt"), "goodbye replicas\n");
    let token = login(&pool, &keys[0]).await;
    let r = reqwest::Client::new()
        .post(format!("{}/results/{task}", pool.base))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(bad_zip)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 403);
    let b: Value = r.json().await.expect("JSON");
    assert_eq!(b["code"], "forbidden", "{b}");
    let served = reqwest::get(format!("{}/results/{task}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(served, zip, "the winners' archive stays");

    let gas = gas_by_step(&w, start_block).await;
    let total: u64 = gas.values().map(|(_, g)| g).sum();
    eprintln!("trust 3 gas per task (1 dissenter, 3 winners): {gas:?}, total {total}");

    bad.shutdown().await;
    for worker in honest {
        worker.shutdown().await;
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_lost_mid_task_is_replaced_and_the_task_completes() {
    let w = World::new().await;
    let mut config = Pool::config(&w, database().await);
    config.worker_lost_after = Duration::from_secs(3);
    let pool = Pool::start(config);
    let (app, app_order) = native_app(&w).await;
    let lost_key = funded_worker(&w).await;
    // A `dragon worker` process, with a long app run (30 s), so that it is killed in the middle of it.
    let mut lost = tokio::process::Command::new(dragon_bin())
        .args(["worker", "--pool", &pool.base, "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--executor", "process", "--allow-app", &app.to_string(), "--poll-ms", "200"])
        .args(["--heartbeat-ms", "500", "--app-env", "APP_DELAY=30", "--work-dir"])
        .arg(work_dir("lost"))
        .env("DRAGON_WORKER_KEY", alloy::hex::encode_prefixed(lost_key.to_bytes()))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon worker");
    let deal = w
        .match_directly(
            &w.requester,
            &app_order,
            &w.pool_order(5, 10, 1, 0x73),
            &request_at(&w, app, 1, 5, 1, "again", 0x74),
        )
        .await;
    let task = task_of(deal, 0);
    replicate_in(&pool, "COMPUTING").await;
    // Killed (SIGKILL): no more heartbeats, no report, no clean-up.
    lost.start_kill().expect("kill -9 the worker");
    let killed = lost.wait().await.expect("wait");
    assert!(!killed.success(), "killed, not exited: {killed}");
    let stopped = Instant::now();
    let key = funded_worker(&w).await;
    let mut config = worker_config(&w, &pool, key.clone(), app, work_dir("replacement"));
    config.heartbeat = Duration::from_millis(500);
    let replacement = Worker::start(config);

    let t = task_on_chain(&w, task, 3, Duration::from_secs(60)).await;
    eprintln!("worker lost: killed to COMPLETED by another worker in {:?}", stopped.elapsed());
    assert_eq!(t.contributors, vec![key.address()], "only the replacement contributed");
    let gas = gas_by_step(&w, 0).await;
    eprintln!("trust 1 gas per task: {gas:?}, total {}", gas.values().map(|(_, g)| g).sum::<u64>());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert!(U256::from(now) < t.finalDeadline, "completed before the deadline");
    let status = pool_completed(&pool, 1).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    let of = |a: Address| replicates.iter().find(|r| r["worker"] == a.to_checksum(None)).expect("replicate");
    assert_eq!(of(lost_key.address())["status"], "WORKER_LOST", "{status}");
    assert_eq!(of(lost_key.address())["error"], "no heartbeat for 3 s", "{status}");
    assert_eq!(of(key.address())["status"], "COMPLETED", "{status}");
    let (_, timeline) = pool.get(&format!("/status/tasks/{task}")).await;
    let timeline: Value = serde_json::from_str(&timeline).expect("JSON");
    let lost_at = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .position(|e| e["status"] == "WORKER_LOST" && e["worker"] == lost_key.address().to_checksum(None))
        .unwrap_or_else(|| panic!("WORKER_LOST in {timeline}"));
    let replaced_at = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .position(|e| e["status"] == "CREATED" && e["worker"] == key.address().to_checksum(None))
        .unwrap_or_else(|| panic!("the replacement's CREATED in {timeline}"));
    assert!(lost_at < replaced_at, "handed out again only once lost: {timeline}");
    replacement.shutdown().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_past_their_final_deadline_are_claimed_and_the_requester_refunded() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let price = 500;
    // No worker: the two tasks are initialized and wait.
    let deal = w
        .match_directly(
            &w.requester,
            &app_order,
            &w.pool_order(price, 10, 1, 0x75),
            &request_at(&w, app, 1, price, 2, "late", 0x76),
        )
        .await;
    let tasks = [task_of(deal, 0), task_of(deal, 1)];
    until("both tasks INITIALIZED", Duration::from_secs(30), async || {
        let s = pool.status().await;
        let t = s["tasks"].as_array()?;
        (t.len() == 2 && t.iter().all(|t| t["status"] == "INITIALIZED")).then_some(())
    })
    .await;
    let (stake0, locked0) = account(&w, w.requester.address()).await;
    let (owner_stake0, owner_locked0) = account(&w, w.owner.address()).await;
    let per_task = U256::from(1 + price); // app price 1 + workerpool price
    assert!(locked0 >= per_task * U256::from(2), "the deal froze the requester's payment: {locked0}");

    // The chain's clock passes the final deadline.
    let deadline = hub(&w).viewTask(tasks[0]).call().await.expect("viewTask").finalDeadline;
    let p = provider(&w.node.url(), &w.owner);
    let next = u64::try_from(deadline).expect("u64") + 1;
    let _: Value = p.raw_request("evm_setNextBlockTimestamp".into(), [next]).await.expect("set time");
    let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("mine");

    let status = until("both tasks FAILED in the pool", Duration::from_secs(30), async || {
        let s = pool.status().await;
        let t = s["tasks"].as_array()?;
        t.iter().all(|t| t["status"] == "FAILED").then_some(s)
    })
    .await;
    for t in status["tasks"].as_array().expect("tasks") {
        assert_eq!(t["error"], "claimed after the final deadline: the requester is refunded", "{status}");
    }
    for t in tasks {
        assert_eq!(hub(&w).viewTask(t).call().await.expect("viewTask").status, 4, "FAILED on chain");
    }
    // Refunded: the frozen payment of both tasks is back in the requester's stake.
    let (stake1, locked1) = account(&w, w.requester.address()).await;
    assert_eq!(locked1, locked0 - per_task * U256::from(2));
    assert_eq!(stake1, stake0 + per_task * U256::from(2));
    // The workerpool's stake for each task (30% of its price) goes to the kitty.
    let (owner_stake1, owner_locked1) = account(&w, w.owner.address()).await;
    let pool_stake = U256::from(price * 30 / 100) * U256::from(2);
    assert_eq!(owner_locked1, owner_locked0 - pool_stake);
    assert_eq!(owner_stake1, owner_stake0);
    // One claimArray for both.
    let claims = p
        .get_logs(
            &Filter::new()
                .address(w.deployment.hub)
                .event_signature(DragonHub::TaskClaimed::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("logs");
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0].transaction_hash, claims[1].transaction_hash, "claimed in one transaction");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_two_cpus_runs_two_tasks_at_once() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let mut config = worker_config(&w, &pool, key, app, work_dir("two-cpus"));
    config.capacity.cpu = 2;
    // Runs long enough to be seen side by side.
    config.app_env = vec![("APP_DELAY".into(), "2".into())];
    let worker = Worker::start(config);
    let started = Instant::now();
    w.match_directly(
        &w.requester,
        &app_order,
        &w.pool_order(5, 10, 1, 0x77),
        &request_at(&w, app, 1, 5, 3, "cpus", 0x78),
    )
    .await;
    let unfinished =
        ["CREATED", "STARTED", "COMPUTING", "COMPUTED", "CONTRIBUTING", "CONTRIBUTED", "REVEALING", "REVEALED"];
    let mut most = 0;
    let status = until("three tasks COMPLETED", Duration::from_secs(60), async || {
        let s = pool.status().await;
        let replicates = s["replicates"].as_array()?;
        let busy = replicates.iter().filter(|r| unfinished.iter().any(|u| r["status"] == *u)).count();
        let computing = replicates.iter().filter(|r| r["status"] == "COMPUTING").count();
        assert!(busy <= 2, "never more replicates than CPUs: {s}");
        most = most.max(computing);
        let done = s["tasks"].as_array()?.iter().filter(|t| t["status"] == "COMPLETED").count();
        (done == 3).then_some(s)
    })
    .await;
    let took = started.elapsed();
    eprintln!("two CPUs: three 2-second tasks in {took:?}");
    assert_eq!(most, 2, "two apps ran at once: {status}");
    worker.shutdown().await;
    pool.shutdown().await;
}

/// Logs in to the pool by hand as `key`; returns the session token.
async fn login(pool: &Pool, key: &alloy::signers::local::PrivateKeySigner) -> String {
    use alloy::signers::SignerSync;
    let http = reqwest::Client::new();
    let (s, b) = pool.get(&format!("/challenge?address={}", key.address())).await;
    assert_eq!(s, 200, "{b}");
    let text = serde_json::from_str::<Value>(&b).expect("JSON")["challenge"].as_str().expect("text").to_owned();
    let sign = alloy::hex::encode_prefixed(key.sign_message_sync(text.as_bytes()).expect("sign").as_bytes());
    let login: Value = http
        .post(format!("{}/workers/login", pool.base))
        .json(&json!({"address": key.address(), "challenge": text, "signature": sign}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    login["token"].as_str().expect("token").to_owned()
}

/// A worker of the pool driven by hand over its HTTP protocol: it logs in, registers and takes a task.
async fn hand_worker(pool: &Pool, key: &alloy::signers::local::PrivateKeySigner) -> (String, Value) {
    let http = reqwest::Client::new();
    let token = login(pool, key).await;
    let post = async |path: &str, body: Value| -> Value {
        let r = http.post(format!("{}{path}", pool.base)).bearer_auth(&token).json(&body).send().await.expect("post");
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.expect("JSON")
    };
    post("/workers/register", json!({"cpu": 1, "memory": 1 << 20, "gpu": false})).await;
    let work = until("a task for the hand-driven worker", Duration::from_secs(30), async || {
        let w = post("/workers/work", json!({})).await;
        (!w["work"].is_null()).then(|| w["work"].clone())
    })
    .await;
    (token, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_winner_never_reveals_is_reopened_and_completed_by_another_worker() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let price = 1_000;
    let deal = w
        .match_directly(
            &w.requester,
            &app_order,
            &w.pool_order(price, 10, 1, 0x79),
            &request_at(&w, app, 1, price, 1, "reopened", 0x7a),
        )
        .await;
    let task = task_of(deal, 0);

    // A worker takes the task, contributes (a consensus at trust 1), reports it, and is never heard of again.
    let silent = funded_worker(&w).await;
    let (token, work) = hand_worker(&pool, &silent).await;
    assert_eq!(work["taskid"], task.to_string());
    let sign: alloy::primitives::Bytes = work["authorization"]["sign"].as_str().expect("sign").parse().expect("hex");
    let (stake0, _) = account(&w, silent.address()).await;
    let digest = B256::repeat_byte(0x42);
    let hash = dragon::executor::result::result_hash(task, digest);
    let seal = dragon::executor::result::result_seal(silent.address(), task, digest);
    DragonHub::new(w.deployment.hub, provider(&w.node.url(), &silent))
        .contribute(task, hash, seal, Address::ZERO, Default::default(), sign)
        .send()
        .await
        .expect("contribute")
        .get_receipt()
        .await
        .expect("mined");
    let report = json!({"taskid": task, "status": "CONTRIBUTED", "resultDigest": digest, "resultHash": hash,
                        "resultSeal": seal});
    let r = reqwest::Client::new()
        .post(format!("{}/workers/status", pool.base))
        .bearer_auth(&token)
        .json(&report)
        .send()
        .await
        .expect("status");
    assert_eq!(r.status().as_u16(), 200);

    // The chain's clock passes the reveal deadline (not the final one): the pool reopens the task.
    let t = task_on_chain(&w, task, 2, Duration::from_secs(10)).await;
    let p = provider(&w.node.url(), &w.owner);
    let next = u64::try_from(t.revealDeadline).expect("u64") + 1;
    let _: Value = p.raw_request("evm_setNextBlockTimestamp".into(), [next]).await.expect("set time");
    let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("mine");
    let key = funded_worker(&w).await;
    let worker = Worker::start(worker_config(&w, &pool, key.clone(), app, work_dir("after-reopen")));

    let t = task_on_chain(&w, task, 3, Duration::from_secs(60)).await;
    assert_eq!(t.contributors, vec![silent.address(), key.address()]);
    let h = hub(&w);
    assert_eq!(h.viewContribution(task, silent.address()).call().await.expect("contribution").status, 3, "REJECTED");
    let reopens = p
        .get_logs(
            &Filter::new()
                .address(w.deployment.hub)
                .event_signature(DragonHub::TaskReopen::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .expect("logs");
    assert_eq!(reopens.len(), 1);
    // The silent winner lost its stake at finalize (30% of the workerpool price).
    let (stake1, locked1) = account(&w, silent.address()).await;
    assert_eq!((stake1, locked1), (stake0 - U256::from(price * 30 / 100), U256::ZERO));
    let zip = reqwest::get(format!("{}/results/{task}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello reopened\n");

    let status = pool_completed(&pool, 1).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    let of = |a: Address| replicates.iter().find(|r| r["worker"] == a.to_checksum(None)).expect("replicate");
    assert_eq!(of(silent.address())["status"], "ABORTED", "{status}");
    assert_eq!(
        of(silent.address())["error"],
        "contributed the consensus but did not reveal in time: rejected at reopen",
        "{status}"
    );
    assert_eq!(of(key.address())["status"], "COMPLETED", "{status}");
    let (_, timeline) = pool.get(&format!("/status/tasks/{task}")).await;
    assert!(timeline.contains("\"REOPENED\""), "{timeline}");
    worker.shutdown().await;
    pool.shutdown().await;
}
