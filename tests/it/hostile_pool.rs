//! The pool's worker API against hostile workers and clients (issue 16, findings 2, 3 and the pool's part of 6),
//! with real components: anvil with Dragon's contracts, PostgreSQL, `dragon pool` (in process, or the binary
//! where its flags are the point), honest `dragon worker`s in process, and the hostile side driven by hand over
//! HTTP (or raw TCP where the bytes on the wire are the point). Each attack runs beside an honest worker, which
//! must still get its task done.

use crate::harness::{database, dragon_bin, until_within as until};
use crate::market::{Server, World, pool_order_of, provider, request_of};
use crate::pool::{
    Pool, Worker, completed_tasks, deal_of, funded_worker, native_app, request, sdk_fetch_results, unzip_entry,
    work_dir, worker_config,
};
use crate::settle::settling;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::executor::result::{result_hash, result_seal};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A worker (or a stranger) driven by hand over the pool's protocol.
struct Hand {
    http: reqwest::Client,
    base: String,
    token: String,
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.expect("GET");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `GET /challenge` for `address`: (status, body).
async fn challenge(base: &str, address: Address) -> (u16, Value) {
    get(base, &format!("/challenge?address={address:#x}")).await
}

fn sign(key: &PrivateKeySigner, text: &str) -> String {
    alloy::hex::encode_prefixed(key.sign_message_sync(text.as_bytes()).expect("sign").as_bytes())
}

/// `POST /workers/login` with `text` signed by `key`: (status, body).
async fn login_with(base: &str, key: &PrivateKeySigner, text: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/workers/login"))
        .json(&json!({"address": key.address(), "challenge": text, "signature": sign(key, text)}))
        .send()
        .await
        .expect("login");
    let s = r.status().as_u16();
    (s, r.json().await.expect("JSON body"))
}

impl Hand {
    /// Challenge, signature, token; the refusal as (status, body).
    async fn login(base: &str, key: &PrivateKeySigner) -> Result<Hand, (u16, Value)> {
        let (s, b) = challenge(base, key.address()).await;
        if s != 200 {
            return Err((s, b));
        }
        let text = b["challenge"].as_str().expect("challenge text").to_owned();
        let (s, b) = login_with(base, key, &text).await;
        if s != 200 {
            return Err((s, b));
        }
        let token = b["token"].as_str().expect("token").to_owned();
        Ok(Hand { http: reqwest::Client::new(), base: base.to_owned(), token })
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, cpu: u64, memory: u64) -> (u16, Value) {
        self.post("/workers/register", json!({"cpu": cpu, "memory": memory, "gpu": false})).await
    }

    /// Asks for work until the pool hands some out.
    async fn take_task(&self) -> Value {
        until("a task for the hand-driven worker", Duration::from_secs(30), async || {
            let (s, w) = self.post("/workers/work", json!({})).await;
            assert_eq!(s, 200, "{w}");
            (!w["work"].is_null()).then(|| w["work"].clone())
        })
        .await
    }

    async fn report(&self, task: B256, status: &str, mut extra: Value) -> (u16, Value) {
        extra["taskid"] = json!(task);
        extra["status"] = json!(status);
        self.post("/workers/status", extra).await
    }

    async fn upload(&self, task: B256, zip: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/results/{task:#x}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .expect("upload");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

fn code(b: &Value) -> &str {
    b["code"].as_str().unwrap_or("<no code>")
}

/// Asserts a refusal: a 4xx with the pool's stable error body and `code`.
#[track_caller]
fn refused(what: &str, (s, b): &(u16, Value), status: u16, want: &str) {
    assert_eq!((*s, code(b)), (status, want), "{what} must be refused with {status} {want}: {s} {b}");
    assert_eq!(b["ok"], false, "{what}: the stable error body: {b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: a message for people: {b}");
}

/// A category whose tasks take `secs` (the hub's owner, the World's, may create one): deadlines in seconds, so
/// that a rule derived from the category's time runs within a test.
async fn short_category(w: &World, secs: u64) -> u64 {
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let id = hub.countCategory().call().await.expect("countCategory");
    hub.createCategory("hostile-test".into(), "{}".into(), U256::from(secs))
        .send()
        .await
        .expect("createCategory")
        .get_receipt()
        .await
        .expect("mined");
    u64::try_from(id).expect("category id")
}

fn task_of(deal: B256, idx: u64) -> B256 {
    dragon::ids::TaskId::of(dragon::ids::DealId(deal), idx).0
}

fn hub(w: &World) -> DragonHub::DragonHubInstance<alloy::providers::DynProvider> {
    DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner))
}

/// The replicate of `worker` in the pool's status, if any.
async fn replicate_of(pool: &Pool, worker: Address) -> Option<Value> {
    let s = pool.status().await;
    s["replicates"].as_array()?.iter().find(|r| r["worker"] == worker.to_checksum(None)).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_at_login_and_capacity_claims_are_bounded() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));

    // A fresh key, nothing deposited in the hub: no member of a public pool.
    let stranger = PrivateKeySigner::random();
    let refusal = Hand::login(&pool.base, &stranger)
        .await
        .err()
        .unwrap_or_else(|| panic!("a stranger without stake must be refused at login, and was given a token"));
    refused("a login without stake", &refusal, 403, "not_member");

    // A worker with stake joins; a capacity past the bounds is refused, and changes nothing.
    let key = funded_worker(&w).await;
    let liar = Hand::login(&pool.base, &key).await.expect("a staked worker logs in");
    refused("cpu = i32::MAX", &liar.register(i32::MAX as u64, 1 << 30).await, 400, "bad_request");
    refused("cpu = 2^32 - 1", &liar.register(u64::from(u32::MAX), 1 << 30).await, 400, "bad_request");
    refused("memory = 2^62 bytes", &liar.register(1, 1 << 62).await, 400, "bad_request");
    let (s, b) = liar.register(64, 1 << 30).await;
    assert_eq!(s, 200, "64 CPUs are within the bound: {b}");

    // The liar claims 64 CPUs and has done nothing yet: the bot is not sold 64 slots on its word.
    let (s, cap) = get(&pool.base, "/capacity").await;
    assert_eq!(s, 200, "{cap}");
    assert_eq!((cap["alive"].as_i64(), cap["slots"].as_i64()), (Some(1), Some(1)), "unproven CPUs: {cap}");
    let status = pool.status().await;
    assert_eq!(status["workers"][0]["cpu"], 64, "what it claimed is shown as such: {status}");
    pool.shutdown().await;
}

/// A private pool, as `dragon pool --worker-allow ADDR` makes it: only the listed workers, with or without stake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_pool_admits_only_its_allow_list() {
    let w = World::new().await;
    let member = PrivateKeySigner::random();
    let staked_stranger = funded_worker(&w).await;
    let port = dragon::local::free_port().expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let mut pool = tokio::process::Command::new(dragon_bin())
        .args(["pool", "--workerpool", &w.pool.to_string(), "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--worker-allow", &member.address().to_string()])
        .env("DRAGON_POOL_KEY", crate::fixtures::KEY0)
        .env("DATABASE_URL", database().await)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon pool");
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/status")).await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if let Ok(Some(exit)) = pool.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = pool.stderr.take() {
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("dragon pool --worker-allow exited ({exit}): {err}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "dragon pool did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stake does not make a member of a private pool; the allow-list does (no challenge is even issued).
    refused(
        "a challenge for a worker off the list",
        &challenge(&base, staked_stranger.address()).await,
        403,
        "not_member",
    );
    let hand = Hand::login(&base, &member).await.expect("a listed worker logs in");
    let (s, b) = hand.register(1, 1 << 30).await;
    assert_eq!(s, 200, "{b}");
    let pid = pool.id().expect("pid");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
    let exit = tokio::time::timeout(Duration::from_secs(30), pool.wait()).await.expect("exit").expect("wait");
    assert!(exit.success(), "{exit}");
}

/// "A stranger's worker never holds a task it cannot finish": a worker takes a task, reports what it did not do,
/// and sits on it while it keeps pinging. Its lies are refused and change nothing; it loses the task once the
/// category's time (and the margin) has passed without a contribution, and an honest worker completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lies_about_progress_are_refused_and_a_task_held_without_progress_goes_to_an_honest_worker() {
    let w = World::new().await;
    let category = short_category(&w, 5).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let params = json!({"iexec_args": "squatted"}).to_string();
    let deal = w
        .match_directly(
            &w.requester,
            &app_order,
            &w.signed(&w.owner, pool_order_of(w.pool, 5, 10, category, 0x91)),
            &w.signed(&w.requester, request_of(w.requester.address(), app, [1, 5], 1, category, &params, 0x92)),
        )
        .await;
    let task = task_of(deal, 0);

    let hostile_key = funded_worker(&w).await;
    let hostile = Hand::login(&pool.base, &hostile_key).await.expect("login");
    let (s, b) = hostile.register(1, 1 << 30).await;
    assert_eq!(s, 200, "{b}");
    let work = hostile.take_task().await;
    assert_eq!(work["taskid"], task.to_string());

    // Statuses only the pool sets.
    for status in ["COMPLETED", "CREATED", "WORKER_LOST"] {
        refused(
            &format!("a report of {status}"),
            &hostile.report(task, status, json!({})).await,
            400,
            "status_not_allowed",
        );
    }
    // Claims the chain refutes: nothing was contributed, so nothing was revealed or uploaded.
    let digest = B256::repeat_byte(0x66);
    let made_up = json!({"resultDigest": digest, "resultHash": result_hash(task, digest),
                         "resultSeal": result_seal(hostile_key.address(), task, digest)});
    for status in ["CONTRIBUTED", "REVEALING", "REVEALED", "RESULT_UPLOADED"] {
        refused(
            &format!("{status} without a contribution"),
            &hostile.report(task, status, made_up.clone()).await,
            409,
            "not_on_chain",
        );
    }
    // Text PostgreSQL cannot store is no internal error.
    let (s, b) = hostile.report(task, "STARTED", json!({"error": "a NUL \u{0} and more".repeat(500)})).await;
    assert_eq!(s, 200, "{b}");
    // Forward only: a step back is taken and ignored.
    for status in ["COMPUTING", "COMPUTED", "COMPUTING", "STARTED"] {
        let (s, b) = hostile.report(task, status, json!({})).await;
        assert_eq!(s, 200, "{status}: {b}");
    }
    let r = replicate_of(&pool, hostile_key.address()).await.expect("its replicate");
    assert_eq!(r["status"], "COMPUTED", "no step back, no lie taken: {r}");
    let (_, timeline) = pool.get(&format!("/status/tasks/{task}")).await;
    let timeline: Value = serde_json::from_str(&timeline).expect("JSON");
    let mine: Vec<&str> = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["worker"] == hostile_key.address().to_checksum(None))
        .map(|e| e["status"].as_str().expect("status"))
        .collect();
    assert_eq!(mine, ["CREATED", "STARTED", "COMPUTING", "COMPUTED"], "{timeline}");

    // It keeps pinging and asking for work with the task "running", and never contributes.
    let pinger = {
        let (http, base, token) = (hostile.http.clone(), hostile.base.clone(), hostile.token.clone());
        tokio::spawn(async move {
            loop {
                let _ = http.post(format!("{base}/workers/ping")).bearer_auth(&token).json(&json!({})).send().await;
                let _ = http
                    .post(format!("{base}/workers/work"))
                    .bearer_auth(&token)
                    .json(&json!({"running": [task]}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let honest_key = funded_worker(&w).await;
    let honest = Worker::start(worker_config(&w, &pool, honest_key.clone(), app, work_dir("hostile-sat-on")));
    let h = hub(&w);
    let t = until("the task COMPLETED on chain by the honest worker", Duration::from_secs(60), async || {
        let t = h.viewTask(task).call().await.expect("viewTask");
        (t.status == 3).then_some(t)
    })
    .await;
    assert_eq!(t.contributors, vec![honest_key.address()], "only the honest worker contributed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert!(U256::from(now) < t.contributionDeadline, "done with time to spare");
    let r = replicate_of(&pool, hostile_key.address()).await.expect("its replicate");
    assert_eq!(r["status"], "WORKER_LOST", "{r}");
    assert!(r["error"].as_str().is_some_and(|e| e.contains("no contribution within 15 s")), "{r}");
    let status = pool.status().await;
    let alive = status["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .find(|x| x["address"] == hostile_key.address().to_checksum(None))
        .expect("it");
    assert_eq!(alive["alive"], true, "it lost the task while still pinging: {status}");
    pinger.abort();
    honest.shutdown().await;
    pool.shutdown().await;
}

/// Unpacks `zip` and packs it again with one more file: the deterministic file, hence the digest, is unchanged.
fn forged(zip: &[u8]) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("zip");
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..src.len() {
        let mut f = src.by_index(i).expect("entry");
        let name = f.name().expect("entry name").into_owned();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).expect("inflate");
        out.start_file(name, opts).expect("entry");
        out.write_all(&bytes).expect("write");
    }
    out.start_file("stolen-credentials.txt", opts).expect("entry");
    out.write_all(b"download me").expect("write");
    out.finish().expect("zip").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_archive_never_replaces_the_winners() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let mut config = Pool::config(&w, database().await);
    config.worker_lost_after = Duration::from_secs(3);
    let pool = Pool::start(config);
    let (app, app_order) = native_app(&w).await;

    // The loser takes the task, then falls silent (no contribution): it is lost, and an honest worker wins.
    let loser_key = funded_worker(&w).await;
    let loser = Hand::login(&pool.base, &loser_key).await.expect("login");
    assert_eq!(loser.register(1, 1 << 30).await.0, 200);
    let req = request(&w, app, 1, "winners", 0x93);
    let dealid = deal_of(&w, &server, &[&app_order, &w.pool_order(5, 10, 1, 0x94), &req]).await;
    let work = loser.take_task().await;
    let task: B256 = work["taskid"].as_str().expect("taskid").parse().expect("taskid");
    assert_eq!(loser.report(task, "COMPUTING", json!({})).await.0, 200);
    let winner_key = funded_worker(&w).await;
    let winner = Worker::start(worker_config(&w, &pool, winner_key.clone(), app, work_dir("hostile-winner")));
    completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let served = reqwest::get(format!("{}/results/{task}", pool.base)).await.expect("get").bytes().await.expect("zip");
    let digest = hub(&w).viewTask(task).call().await.expect("viewTask").resultDigest;

    // Same deterministic file, one more file: the digest matches the consensus.
    let fake = forged(&served);
    assert_ne!(fake, served.to_vec());
    assert_eq!(dragon::pool::results::archive_digest(&fake, task, false).expect("digest"), digest);

    // The loser says it computed the consensus, and uploads the forgery.
    let loser = Hand::login(&pool.base, &loser_key).await.expect("login again");
    let claim = json!({"resultDigest": digest, "resultHash": result_hash(task, digest),
                       "resultSeal": result_seal(loser_key.address(), task, digest)});
    let (s, b) = loser.report(task, "COMPUTED", claim).await;
    assert!(s < 500, "{s} {b}");
    refused("a loser's archive", &loser.upload(task, fake.clone()).await, 403, "forbidden");
    // The winner itself cannot replace its archive either: the first accepted one is final.
    let again = Hand::login(&pool.base, &winner_key).await.expect("login as the winner");
    refused("a second archive", &again.upload(task, fake.clone()).await, 409, "result_exists");

    let now = reqwest::get(format!("{}/results/{task}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(now, served, "the pool serves the winner's archive");
    let fetched = sdk_fetch_results(&w, &server, &pool, &task.to_string()).await;
    let sdk = alloy::hex::decode(fetched["hex"].as_str().expect("hex")).expect("hex archive");
    assert_eq!(sdk, served.to_vec(), "iExec's SDK downloads the winner's archive, byte for byte");
    assert_eq!(unzip_entry(&sdk, "result.txt"), "hello winners\n");
    winner.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

/// Sends a request head announcing a `length`-byte body and no body at all; returns the pool's answer (status
/// line and JSON body) if it comes while the body is still unsent.
async fn answer_before_body(base: &str, path: &str, auth: Option<&str>, length: u64) -> Option<(u16, Value)> {
    let addr = base.strip_prefix("http://").expect("http base");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/zip\r\nContent-Length: {length}\r\n"
    );
    if let Some(t) = auth {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write the head");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((h, body)) = text.split_once("\r\n\r\n") {
                let want = h
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok());
                if want.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    })
    .await;
    if read.is_err() && got.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_refused_before_its_body_is_read() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let path = format!("/results/{:#x}", B256::repeat_byte(5));
    // 32 MiB announced, within the archive bound: the server would read them all before answering.
    let big = 32 << 20;
    let no_token = answer_before_body(&pool.base, &path, None, big)
        .await
        .expect("an upload without a token is answered before its body is sent");
    refused("an upload without a token", &no_token, 401, "unauthorized");
    let bad = answer_before_body(&pool.base, &path, Some("0123abcd"), big)
        .await
        .expect("an upload with a bad token is answered before its body is sent");
    refused("an upload with a bad token", &bad, 401, "unauthorized");
    // A member with no right to upload that task: refused too, before the body.
    let key = funded_worker(&w).await;
    let hand = Hand::login(&pool.base, &key).await.expect("login");
    let not_mine = answer_before_body(&pool.base, &path, Some(&hand.token), big)
        .await
        .expect("an upload for another's task is answered before its body is sent");
    refused("an upload of a task it has no replicate of", &not_mine, 403, "forbidden");
    // Announcing more than the archive bound is refused as such, from the headers.
    let huge = answer_before_body(&pool.base, &path, Some(&hand.token), 1 << 40).await.expect("answered");
    refused("a terabyte announced", &huge, 413, "body_too_large");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_challenges_cannot_be_overwritten_and_sessions_are_bounded() {
    let w = World::new().await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let key = funded_worker(&w).await;

    // The worker asks for a challenge; a stranger then asks for many in its name.
    let (s, b) = challenge(&pool.base, key.address()).await;
    assert_eq!(s, 200, "{b}");
    let mine = b["challenge"].as_str().expect("text").to_owned();
    for _ in 0..50 {
        assert_eq!(challenge(&pool.base, key.address()).await.0, 200);
    }
    let (s, b) = login_with(&pool.base, &key, &mine).await;
    assert_eq!(s, 200, "the worker's own challenge still logs it in: {b}");
    // One use.
    refused("a challenge used twice", &login_with(&pool.base, &key, &mine).await, 401, "unauthorized");
    // Text the pool never issued.
    let text = mine.replace("nonce 0x", "nonce 0x00");
    refused("an unknown challenge", &login_with(&pool.base, &key, &text).await, 401, "unauthorized");
    refused("garbage", &login_with(&pool.base, &key, "let me in").await, 401, "unauthorized");

    // Logging in again and again keeps only the newest sessions of a worker.
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(Hand::login(&pool.base, &key).await.expect("login").token);
    }
    let ping = async |t: &str| {
        let r = reqwest::Client::new()
            .post(format!("{}/workers/ping", pool.base))
            .bearer_auth(t)
            .json(&json!({}))
            .send()
            .await
            .expect("ping");
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    refused("the oldest session", &ping(&tokens[0]).await, 401, "unauthorized");
    let (s, b) = ping(tokens.last().expect("newest")).await;
    assert_eq!((s, code(&b)), (409, "not_registered"), "the newest session works (not registered yet): {b}");

    // A request of work cannot be made huge.
    let hand = Hand::login(&pool.base, &key).await.expect("login");
    assert_eq!(hand.register(1, 1 << 30).await.0, 200);
    let running: Vec<B256> = (0..500u32).map(|i| B256::left_padding_from(&i.to_be_bytes())).collect();
    refused("500 running tasks", &hand.post("/workers/work", json!({"running": running})).await, 400, "bad_request");
    pool.shutdown().await;
}

/// The challenge book is bounded: a flood (here from one address, the per-IP limit raised) pushes out the
/// oldest challenges and never grows the book past its bound; a fresh challenge still logs a worker in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_flood_is_bounded_and_fresh_logins_still_work() {
    let w = World::new().await;
    let mut config = Pool::config(&w, database().await);
    config.limits.max_challenges = 100;
    config.limits.per_ip_per_second = 100_000;
    let pool = Pool::start(config);
    let key = funded_worker(&w).await;
    let (s, b) = challenge(&pool.base, key.address()).await;
    assert_eq!(s, 200, "{b}");
    let old = b["challenge"].as_str().expect("text").to_owned();
    let http = reqwest::Client::new();
    let flood = (0..300u32).map(|i| {
        let who = Address::left_padding_from(&i.to_be_bytes());
        let (http, url) = (http.clone(), format!("{}/challenge?address={who:#x}", pool.base));
        async move { http.get(url).send().await.expect("request").status().as_u16() }
    });
    let answers = futures_util::future::join_all(flood).await;
    assert!(answers.iter().all(|s| *s == 200), "challenges are always issued: {answers:?}");
    refused("a challenge pushed out by the flood", &login_with(&pool.base, &key, &old).await, 401, "unauthorized");
    let hand = Hand::login(&pool.base, &key).await.expect("a fresh challenge logs the worker in");
    assert_eq!(hand.register(1, 1 << 30).await.0, 200);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_and_the_honest_worker_finishes() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let honest = Worker::start(worker_config(&w, &pool, key, app, work_dir("hostile-flood")));
    let req = request(&w, app, 1, "flooded", 0x95);
    let dealid = deal_of(&w, &server, &[&app_order, &w.pool_order(5, 10, 1, 0x96), &req]).await;

    // A thousand anonymous challenges at once, from one address.
    let http = reqwest::Client::new();
    let flood = (0..1000u32).map(|i| {
        let who = Address::left_padding_from(&i.to_be_bytes());
        let (http, url) = (http.clone(), format!("{}/challenge?address={who:#x}", pool.base));
        async move {
            let r = http.get(url).send().await.expect("request");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let answers = futures_util::future::join_all(flood).await;
    let limited: Vec<&(u16, Value)> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert!(
        !limited.is_empty(),
        "a flood from one address meets the per-IP limit: {} answers, none 429",
        answers.len()
    );
    refused("a request over the per-IP limit", limited[0], 429, "rate_limited");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 429), "nothing but 200 and 429");

    // The honest worker (on the same address here) rides it out and finishes its task.
    completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    honest.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}
