//! Track records against a scripted history on anvil: deals matched directly on chain, tasks finalized by the
//! pool owner itself (`contributeAndFinalize`, trust 1), one task claimed after its final deadline, one left
//! unclaimed past it (failed), and time moved past 30 days. Every figure is asserted exactly, the median from
//! the block times the test reads from the chain itself. Then the engine: a request asking a minimum track
//! record is not matched with a pool whose record falls short, is with one whose record meets it, and is
//! matched as soon as a pool's record improves on chain, without any new order.

use crate::market::{Server, World, app_order_of, pool_order_of, provider, request_of, signed_in};
use crate::settle::until;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::chain::setup;
use dragon::order::AnyOrder;
use serde_json::{Value, json};

fn task_of(deal: B256, idx: u64) -> B256 {
    dragon::ids::TaskId::of(dragon::ids::DealId(deal), idx).0
}

/// The time of the block a receipt is in.
async fn time_of(w: &World, block: Option<u64>) -> u64 {
    let p = provider(&w.node.url(), &w.owner);
    p.get_block_by_number(block.expect("mined").into()).await.expect("block").expect("exists").header.timestamp
}

/// A deal of `volume` tasks between `pool` (owned by `owner`) and a requester, made directly on chain; returns
/// the deal id and its block's time.
async fn deal(w: &World, owner: &PrivateKeySigner, pool: Address, volume: u64, salt: u8) -> (B256, u64) {
    let app = w.signed(&w.owner, app_order_of(w.app, 1, volume, salt));
    let po = signed_in(&w.domain, owner, pool_order_of(pool, 10, volume, 0, salt));
    let req = w.signed(&w.requester, request_of(w.requester.address(), w.app, [1, 10], volume, 0, "{}", salt));
    let id = w.match_directly(&w.requester, &app, &po, &req).await;
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let start = hub.viewDeal(id).call().await.expect("viewDeal").startTime;
    (id, u64::try_from(start).expect("u64"))
}

async fn initialize(w: &World, deal: B256, idx: u64) {
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let r = hub.initialize(deal, U256::from(idx)).send().await.expect("initialize").get_receipt().await.expect("mined");
    assert!(r.status(), "initialized");
}

/// Initializes and finalizes a task (see [`contribute_and_finalize`]); returns the finalize block's time.
async fn finalize(w: &World, owner: &PrivateKeySigner, deal: B256, idx: u64) -> u64 {
    initialize(w, deal, idx).await;
    contribute_and_finalize(w, owner, task_of(deal, idx)).await
}

/// Finalizes an initialized task of a trust-1 deal, the pool's owner being its own worker (`contributeAndFinalize`,
/// authorized by the owner's EIP-191 signature); returns the finalize block's time.
pub async fn contribute_and_finalize(w: &World, owner: &PrivateKeySigner, task: B256) -> u64 {
    let digest = alloy::primitives::keccak256(format!("result {task}"));
    let auth =
        alloy::primitives::keccak256([owner.address().as_slice(), task.as_slice(), Address::ZERO.as_slice()].concat());
    let sign = owner.sign_message_sync(auth.as_slice()).expect("sign");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), owner));
    let r = hub
        .contributeAndFinalize(
            task,
            digest,
            Bytes::from_static(b"ipfs://r"),
            Bytes::new(),
            Address::ZERO,
            Bytes::new(),
            Bytes::from(sign.as_bytes().to_vec()),
        )
        .send()
        .await
        .expect("contributeAndFinalize")
        .get_receipt()
        .await
        .expect("mined");
    assert!(r.status(), "finalized");
    time_of(w, r.block_number).await
}

async fn claim(w: &World, deal: B256, idx: u64) {
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let r = hub.claim(task_of(deal, idx)).send().await.expect("claim").get_receipt().await.expect("mined");
    assert!(r.status(), "claimed");
}

/// Moves the chain's clock forward and mines a block.
async fn advance(w: &World, seconds: u64) {
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p.raw_request("evm_increaseTime".into(), (seconds,)).await.expect("evm_increaseTime");
    let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
}

/// The track record the server answers once chain sync has applied the chain's head.
async fn record(server: &Server, w: &World, pool: Address) -> Value {
    let head = provider(&w.node.url(), &w.owner).get_block_number().await.expect("head");
    until("the track record at the chain's head", async || {
        let (s, b) = server.get(&format!("/workerpools/{pool}")).await;
        assert_eq!(s, 200, "{b}");
        (b["trackRecord"]["asOf"]["blockNumber"].as_u64()? >= head).then_some(b["trackRecord"].clone())
    })
    .await
}

/// Waits until the book shows `expected` beside the pool's order (the book's copy follows chain sync), and
/// panics with what it shows otherwise.
async fn listed(server: &Server, pool: Address, expected: &Value) {
    let start = std::time::Instant::now();
    loop {
        let (s, list) = server.get(&format!("/workerpoolorders?workerpool={pool}")).await;
        assert_eq!(s, 200, "{list}");
        let shown = &list["orders"][0]["trackRecord"];
        if shown == expected {
            return;
        }
        assert!(start.elapsed().as_secs() < 30, "the listing shows {shown}, not {expected}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn figures(deals: u64, tasks: u64, completed: u64, claimed: u64, failed: u64, median: Option<u64>) -> Value {
    let finished = completed + claimed + failed;
    json!({
        "deals": deals, "tasks": tasks, "completed": completed, "claimed": claimed, "failed": failed,
        "finished": finished,
        "completedRate": if finished > 0 { json!(completed as f64 / finished as f64) } else { Value::Null },
        "medianSecondsToFinalize": median,
    })
}

/// The lower median, as `percentile_disc(0.5)`: the middle value, or the lower of the two middle ones.
fn lower_median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_records_match_a_scripted_history_exactly() {
    let w = World::new().await;
    let db = crate::harness::database().await;
    let mut config = w.config(db.clone());
    config.sync.poll = std::time::Duration::from_millis(100);
    let server = Server::start(config.clone()).await;
    let pool = w.pool;
    let empty = figures(0, 0, 0, 0, 0, None);
    let r = record(&server, &w, pool).await;
    assert_eq!((&r["allTime"], &r["last30Days"]), (&empty, &empty), "no deal yet: {r}");
    let order = w.pool_order(50, 5, 0, 0x40);
    let (s, b) = server.publish(&w.owner, &order).await;
    assert_eq!(s, 200, "{b}");
    listed(&server, pool, &json!({"allTime": empty, "last30Days": empty})).await;

    // Deal 1, three tasks: two completed, the third never started. Deal 2, two tasks: one completed, one
    // started and left.
    // The clock moves between steps so that the three durations differ (about 100, 150 and 400 s).
    let (d1, t1) = deal(&w, &w.owner, pool, 3, 0x31).await;
    advance(&w, 100).await;
    let f1a = finalize(&w, &w.owner, d1, 0).await;
    advance(&w, 50).await;
    let f1b = finalize(&w, &w.owner, d1, 1).await;
    let (d2, t2) = deal(&w, &w.owner, pool, 2, 0x32).await;
    advance(&w, 400).await;
    let f2a = finalize(&w, &w.owner, d2, 0).await;
    initialize(&w, d2, 1).await;
    // Deal start times are their blocks' times (the requests ask no later start).
    let durations = vec![f1a - t1, f1b - t1, f2a - t2];
    let median = lower_median(durations.clone());
    assert!(median.is_some_and(|m| (150..400).contains(&m)), "the middle duration: {durations:?}");
    let r = record(&server, &w, pool).await;
    let now = figures(2, 5, 3, 0, 0, median);
    assert_eq!((&r["allTime"], &r["last30Days"]), (&now, &now), "before the deadlines ({durations:?}): {r}");
    listed(&server, pool, &json!({"allTime": now, "last30Days": now})).await;

    // Past the final deadline (category 0: 10 x 300 s after the start): the two unfinished tasks failed.
    advance(&w, 3_001).await;
    let r = record(&server, &w, pool).await;
    let now = figures(2, 5, 3, 0, 2, median);
    assert_eq!((&r["allTime"], &r["last30Days"]), (&now, &now), "past the deadlines: {r}");
    listed(&server, pool, &json!({"allTime": now, "last30Days": now})).await;
    // The started one is claimed (the requester refunded): failed becomes claimed.
    claim(&w, d2, 1).await;
    let r = record(&server, &w, pool).await;
    let now = figures(2, 5, 3, 1, 1, median);
    assert_eq!((&r["allTime"], &r["last30Days"]), (&now, &now), "after the claim: {r}");
    listed(&server, pool, &json!({"allTime": now, "last30Days": now})).await;

    // The book shows the same figures beside the pool's orders, in listings and by hash.
    let (s, list) = server.get(&format!("/workerpoolorders?workerpool={pool}")).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["orders"][0]["trackRecord"]["allTime"], now, "{list}");
    let hash = order.order_hash(&w.domain).to_string();
    let (s, one) = server.get(&format!("/workerpoolorders/{hash}")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["trackRecord"]["allTime"], now, "{one}");
    assert!(one["trackRecord"].get("asOf").is_none(), "the book's copy has no asOf: {one}");

    // 31 days later, a third deal, completed: the last 30 days hold only it.
    advance(&w, 31 * 24 * 3600).await;
    let (d3, t3) = deal(&w, &w.owner, pool, 1, 0x33).await;
    advance(&w, 7).await;
    let f3 = finalize(&w, &w.owner, d3, 0).await;
    let mut all = durations.clone();
    all.push(f3 - t3);
    let r = record(&server, &w, pool).await;
    assert_eq!(r["allTime"], figures(3, 6, 4, 1, 1, lower_median(all)), "{r}");
    assert_eq!(r["last30Days"], figures(1, 1, 1, 0, 0, Some(f3 - t3)), "{r}");
    let head = provider(&w.node.url(), &w.owner).get_block_number().await.expect("head");
    assert_eq!(r["asOf"]["blockNumber"], head, "{r}");
    // The listing follows the chain (the book's copy moved with the deal and the window).
    listed(&server, pool, &json!({"allTime": r["allTime"], "last30Days": r["last30Days"]})).await;

    // A store written before task events kept their block's time (schema 0010): the start-up backfill reads
    // them from the headers, and the figures come back the same.
    server.shutdown().await;
    let (pg, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let n = pg.execute("UPDATE task_events SET block_timestamp = NULL", &[]).await.expect("forget the times");
    assert!(n >= 8, "the history's task events: {n}");
    let server = Server::start(config).await;
    let again = record(&server, &w, pool).await;
    assert_eq!((&again["allTime"], &again["last30Days"]), (&r["allTime"], &r["last30Days"]), "{again}");
    let untimed: i64 = pg
        .query_one("SELECT count(*) FROM task_events WHERE block_timestamp IS NULL", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(untimed, 0);

    // Another pool, never dealt with: empty figures. A malformed address: 400.
    let (s, b) = server.get(&format!("/workerpools/{}", Address::repeat_byte(9))).await;
    assert_eq!((s, &b["trackRecord"]["allTime"]), (200, &empty), "{b}");
    let (s, b) = server.get("/workerpools/0x1234").await;
    assert_eq!((s, b["ok"].as_bool()), (400, Some(false)), "{b}");
    server.shutdown().await;
}

async fn proposals_of(server: &Server, order: &AnyOrder, w: &World) -> Vec<Value> {
    let (s, b) = server.get(&format!("/proposals?orderHash={}", order.order_hash(&w.domain))).await;
    assert_eq!(s, 200, "{b}");
    b["proposals"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_minimum_track_record_match_only_pools_that_meet_it() {
    let w = World::new().await;
    // A second workerpool, of KEY2: five tasks, all completed.
    let other = setup::Account::new(&w.node.url(), &w.other).expect("account");
    let good = setup::create_workerpool(&w.deployment, &other, "good pool").await.expect("pool");
    let (d, _) = deal(&w, &w.other, good, 5, 0x51).await;
    for i in 0..5 {
        finalize(&w, &w.other, d, i).await;
    }
    // The World's pool: one completed, one claimed past its deadline (1 of 2).
    let poor = w.pool;
    let (d, _) = deal(&w, &w.owner, poor, 2, 0x52).await;
    finalize(&w, &w.owner, d, 0).await;
    initialize(&w, d, 1).await;
    advance(&w, 3_001).await;
    claim(&w, d, 1).await;

    let mut config = w.config(crate::harness::database().await);
    config.sync.poll = std::time::Duration::from_millis(100);
    let server = Server::start(config).await;
    assert_eq!(record(&server, &w, good).await["allTime"]["completed"], 5);
    assert_eq!(record(&server, &w, poor).await["allTime"]["finished"], 2);

    let app = w.app_order(1, 100, 0x60);
    let cheap = w.pool_order(5, 10, 0, 0x61);
    for o in [&app, &cheap] {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{b}");
    }
    let ask = |need: &str, salt: u8| {
        let params = format!("{{\"iexec_args\":\"x\",\"dragon_min_track_record\":{need}}}");
        w.signed(&w.requester, request_of(w.requester.address(), w.app, [1, 20], 1, 0, &params, salt))
    };

    // A malformed requirement is refused at publication, with its code.
    let (s, b) = server.publish(&w.requester, &ask(r#"{"tasks":5,"completed":95}"#, 0x62)).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_track_record")), "{b}");

    // 95% over at least 5 tasks: the cheaper pool (1 of 2) is passed over; the request waits.
    let demanding = ask(r#"{"tasks":5,"completed":0.95}"#, 0x63);
    let (s, b) = server.publish(&w.requester, &demanding).await;
    assert_eq!(s, 200, "{b}");
    // A request without a requirement, published after, takes the cheap pool at once: the book is live.
    let plain = w.signed(&w.requester, request_of(w.requester.address(), w.app, [1, 20], 1, 0, "{}", 0x64));
    let (s, b) = server.publish(&w.requester, &plain).await;
    assert_eq!(s, 200, "{b}");
    let p = until("the plain request's proposal", async || proposals_of(&server, &plain, &w).await.pop()).await;
    assert_eq!(p["workerpoolorderHash"], cheap.order_hash(&w.domain).to_string(), "{p}");
    assert!(proposals_of(&server, &demanding, &w).await.is_empty(), "the poor pool's order was not proposed");

    // The good pool's dearer order arrives: the demanding request takes it, not the cheaper one.
    let dear = signed_in(&w.domain, &w.other, pool_order_of(good, 8, 1, 0, 0x65));
    let (s, b) = server.publish(&w.other, &dear).await;
    assert_eq!(s, 200, "{b}");
    let p = until("the demanding request's proposal", async || proposals_of(&server, &demanding, &w).await.pop()).await;
    assert_eq!(p["workerpoolorderHash"], dear.order_hash(&w.domain).to_string(), "{p}");

    // At least 3 tasks, half completed: the poor pool (2 finished) falls short, the good pool's order is used
    // up; the request rests. One more task completed on chain (2 of 3 finished) and it takes the poor
    // pool's resting order, with no order arriving: the engine heard the new record from chain sync.
    let modest = ask(r#"{"tasks":3,"completed":0.5}"#, 0x66);
    let (s, b) = server.publish(&w.requester, &modest).await;
    assert_eq!(s, 200, "{b}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(proposals_of(&server, &modest, &w).await.is_empty(), "2 finished tasks are fewer than 3");
    // Explain names the track record as what keeps it from the poor pool's order (issue 21, both halves).
    let (s, why) = server.get(&format!("/requestorders/{}/explain", modest.order_hash(&w.domain))).await;
    assert_eq!(s, 200, "{why}");
    let cheap_hash = cheap.order_hash(&w.domain).to_string();
    let with_cheap = why["combinations"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["workerpoolorder"]["orderHash"] == cheap_hash.as_str()))
        .unwrap_or_else(|| panic!("the poor pool's order is among the counter-orders: {why}"));
    let codes: Vec<&str> =
        with_cheap["blockers"].as_array().map_or(vec![], |b| b.iter().filter_map(|x| x["code"].as_str()).collect());
    assert_eq!(codes, ["track_record"], "{why}");
    let (d, _) = deal(&w, &w.owner, poor, 1, 0x67).await;
    finalize(&w, &w.owner, d, 0).await;
    let p = until("the modest request's proposal", async || proposals_of(&server, &modest, &w).await.pop()).await;
    assert_eq!(p["workerpoolorderHash"], cheap.order_hash(&w.domain).to_string(), "{p}");
    let r = record(&server, &w, poor).await;
    assert_eq!(r["allTime"], figures(2, 3, 2, 1, 0, r["allTime"]["medianSecondsToFinalize"].as_u64()), "{r}");
    server.shutdown().await;
}
