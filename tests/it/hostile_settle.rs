//! Issue 16, findings 8 and 9: the settler against a hostile world, with the real `dragon serve` binary (killed
//! with SIGKILL or stopped with SIGTERM while a settlement is in flight), a real anvil and PostgreSQL.
//!
//! - A restart must never fail a proposal whose transaction may still land: the transaction is stored signed
//!   before it is broadcast, and a restarted server follows it (sending the identical bytes again when the node
//!   lost them), so exactly one deal lands; only a transaction whose nonce went to another one is dead.
//! - A flood of zero-priced deals between an attacker's own app, pool and requests cannot drain the operator's
//!   gas money: settlement spends at most the configured gas budgets, the excess stays deferred (its volume
//!   reserved), and an honest paid deal still settles meanwhile.

use crate::harness::database;
use crate::market::{Server, World, app_order_of, pool_order_of, provider, request_of};
use crate::settle::{OPERATOR, operator, requester_with, until};
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::chain::setup;
use dragon::order::AnyOrder;
use serde_json::Value;
use std::time::Duration;

/// `dragon serve` as its own process, with the operator key (it settles) and a TOML file.
struct Dragon {
    api: Server,
    child: tokio::process::Child,
}

impl Dragon {
    async fn start(w: &World, db: &str, settlement: &str) -> Dragon {
        let log = std::env::var("DRAGON_IT_SERVE_LOG").unwrap_or_else(|_| "warn,dragon::chain=info".into());
        let env = [("DRAGON_OPERATOR_KEY", OPERATOR.to_owned()), ("RUST_LOG", log)];
        let crate::crash::Child { base, child } = crate::crash::spawn_with_env(w, db, settlement, &env).await;
        Dragon { api: Server::attach(&base, w.deployment.chain_id), child }
    }

    /// SIGKILL: no chance to clean up.
    async fn kill_9(mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// SIGTERM: the graceful stop (the settler is aborted wherever it is).
    async fn stop(mut self) {
        let pid = self.child.id().expect("pid");
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
        let status = self.child.wait().await.expect("wait");
        assert!(status.success(), "graceful stop exits 0: {status}");
    }
}

fn h(w: &World, o: &AnyOrder) -> String {
    o.order_hash(&w.domain).to_string()
}

async fn rpc(w: &World, method: &'static str, params: impl serde::Serialize) -> Value {
    let p = provider(&w.node.url(), &w.owner);
    let params = serde_json::to_value(params).expect("params");
    p.raw_request::<_, Value>(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn automine(w: &World, on: bool) {
    rpc(w, "evm_setAutomine", (on,)).await;
}

async fn mine(w: &World) {
    rpc(w, "evm_mine", ()).await;
}

/// Whether the node knows the transaction (in its pool or mined).
async fn node_knows(w: &World, tx: &str) -> bool {
    let v = rpc(w, "eth_getTransactionByHash", (tx,)).await;
    !v.is_null()
}

async fn proposals(server: &Server, hash: &str) -> Vec<Value> {
    let (s, b) = server.get(&format!("/proposals?orderHash={hash}")).await;
    assert_eq!(s, 200, "{b}");
    b["proposals"].as_array().cloned().unwrap_or_default()
}

async fn deals_of(server: &Server, request: &str) -> Vec<Value> {
    let (s, b) = server.get(&format!("/deals?requestorderHash={request}")).await;
    assert_eq!(s, 200, "{b}");
    b["deals"].as_array().cloned().unwrap_or_default()
}

async fn consumed(w: &World, hash: &str) -> U256 {
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    hub.viewConsumed(hash.parse().expect("hash")).call().await.expect("viewConsumed")
}

/// `OrdersMatched` events on chain for a request, whoever sent them.
async fn deals_on_chain(w: &World, request: &str) -> Vec<(B256, B256)> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    let p = provider(&w.node.url(), &w.owner);
    let logs = p
        .get_logs(
            &Filter::new()
                .address(w.deployment.hub)
                .event_signature(DragonHub::OrdersMatched::SIGNATURE_HASH)
                .from_block(w.deployment.block_number),
        )
        .await
        .expect("logs");
    let request: B256 = request.parse().expect("hash");
    logs.iter()
        .filter_map(|l| Some((l.log_decode::<DragonHub::OrdersMatched>().ok()?, l.transaction_hash?)))
        .filter(|(e, _)| e.inner.data.requestHash == request)
        .map(|(e, tx)| (e.inner.data.dealid, tx))
        .collect()
}

/// A deal proposed with blocks stopped: its transaction waits in the node's pool. Returns the request and the
/// transaction's hash.
async fn a_deal_in_flight(w: &World, server: &Server) -> (AnyOrder, String) {
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    for o in [&app, &pool] {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{b}");
    }
    automine(w, false).await;
    let req = w.request(&w.requester, 8, 2, 1, 3);
    let (s, b) = server.publish(&w.requester, &req).await;
    assert_eq!(s, 200, "{b}");
    let tx = until("the settlement transaction", async || {
        proposals(server, &h(w, &req)).await.into_iter().find_map(|p| p["transactionHash"].as_str().map(str::to_owned))
    })
    .await;
    until("the node to hold the transaction", async || node_knows(w, &tx).await.then_some(())).await;
    (req, tx)
}

/// After a restart, the proposal is the same one, still waiting for its transaction (not failed, not proposed
/// again), for a while.
async fn still_in_flight(w: &World, server: &Server, req: &AnyOrder, tx: &str) {
    for _ in 0..15 {
        let p = proposals(server, &h(w, req)).await;
        assert_eq!(p.len(), 1, "one proposal, not failed and not proposed again: {p:?}");
        assert_eq!(p[0]["status"], "submitted", "the restart must not give up a transaction that may land: {p:?}");
        assert_eq!(p[0]["transactionHash"], tx, "{p:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Blocks come back: exactly one deal lands, from `tx`, and the proposal is settled with it.
async fn lands_once(w: &World, server: &Server, req: &AnyOrder, tx: &str) {
    automine(w, true).await;
    mine(w).await;
    let deal = until("the deal", async || deals_of(server, &h(w, req)).await.into_iter().next()).await;
    assert_eq!(deal["transactionHash"], tx, "the transaction signed before the restart landed: {deal}");
    until("the proposal settled", async || {
        let p = proposals(server, &h(w, req)).await;
        (p.len() == 1 && p[0]["status"] == "settled").then_some(())
    })
    .await;
    // A few more blocks: nothing else lands for this request.
    for _ in 0..3 {
        mine(w).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let on_chain = deals_on_chain(w, &h(w, req)).await;
    assert_eq!(on_chain.len(), 1, "exactly one deal on chain: {on_chain:?}");
    assert_eq!(consumed(w, &h(w, req)).await, U256::from(2));
    let p = proposals(server, &h(w, req)).await;
    assert_eq!((p.len(), p[0]["status"].as_str()), (1, Some("settled")), "{p:?}");
    assert_eq!(deals_of(server, &h(w, req)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_in_flight_at_a_kill_9_is_followed_after_the_restart_and_lands_once() {
    let w = World::new().await;
    let db = database().await;
    let server = Dragon::start(&w, &db, "").await;
    let (req, tx) = a_deal_in_flight(&w, &server.api).await;
    server.kill_9().await;

    let server = Dragon::start(&w, &db, "").await;
    still_in_flight(&w, &server.api, &req, &tx).await;
    // A graceful stop while it is still in flight loses nothing either.
    server.stop().await;
    let server = Dragon::start(&w, &db, "").await;
    still_in_flight(&w, &server.api, &req, &tx).await;
    lands_once(&w, &server.api, &req, &tx).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_the_node_dropped_is_sent_again_byte_for_byte_after_the_restart() {
    let w = World::new().await;
    let db = database().await;
    let server = Dragon::start(&w, &db, "").await;
    let (req, tx) = a_deal_in_flight(&w, &server.api).await;
    server.kill_9().await;
    // The node forgets it (a restarted node, an evicted transaction).
    rpc(&w, "anvil_dropTransaction", (&tx,)).await;
    assert!(!node_knows(&w, &tx).await, "dropped");

    let server = Dragon::start(&w, &db, "").await;
    until("the identical bytes sent again", async || node_knows(&w, &tx).await.then_some(())).await;
    still_in_flight(&w, &server.api, &req, &tx).await;
    lands_once(&w, &server.api, &req, &tx).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_whose_nonce_went_to_another_transaction_fails_and_is_settled_again_once() {
    let w = World::new().await;
    let db = database().await;
    let server = Dragon::start(&w, &db, "").await;
    let (req, tx) = a_deal_in_flight(&w, &server.api).await;
    server.kill_9().await;
    // The operator key is used elsewhere: another transaction takes the settlement's nonce and is mined.
    let p = provider(&w.node.url(), &w.owner);
    let ours = p.get_transaction_by_hash(tx.parse().expect("hash")).await.expect("get").expect("pending");
    let nonce = {
        use alloy::consensus::Transaction as _;
        ours.inner.nonce()
    };
    rpc(&w, "anvil_dropTransaction", (&tx,)).await;
    automine(&w, true).await;
    let op = operator();
    let other = provider(&w.node.url(), &op)
        .send_transaction(
            TransactionRequest::default().with_to(op.address()).with_value(U256::from(1)).with_nonce(nonce),
        )
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("mined");
    assert!(other.status());

    // The stored transaction is dead: its proposal fails for that reason, the deal is proposed again, and it
    // settles once.
    let server = Dragon::start(&w, &db, "").await;
    let failed = until("the dead transaction's proposal to fail", async || {
        proposals(&server.api, &h(&w, &req)).await.into_iter().find(|p| p["status"] == "failed")
    })
    .await;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("nonce {nonce}")) && reason.contains("another transaction"), "{failed}");
    let deal = until("the deal", async || deals_of(&server.api, &h(&w, &req)).await.into_iter().next()).await;
    assert_ne!(deal["transactionHash"], tx);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(deals_on_chain(&w, &h(&w, &req)).await.len(), 1, "settled once");
    assert_eq!(consumed(&w, &h(&w, &req)).await, U256::from(2));
    let p = proposals(&server.api, &h(&w, &req)).await;
    let settled: Vec<_> = p.iter().filter(|p| p["status"] == "settled").collect();
    assert_eq!((p.len(), settled.len()), (2, 1), "{p:?}");
    server.stop().await;
}

/// Small budgets for the flood test: free deals together may use 1.2 M gas an hour (about five deals), the
/// whole operator 3 M; requesters and pool owners keep generous budgets.
const BUDGETS: &str = "[settlement]\nbudget_window_secs = 3600\noperator_gas_budget = 3000000\n\
                       free_deal_gas_budget = 1200000\n";
const OPERATOR_BUDGET: u64 = 3_000_000;
const FREE_BUDGET: u64 = 1_200_000;

/// Every transaction the operator sent from `from` on: (gasUsed, wei paid).
async fn operator_spending(w: &World, from: u64) -> Vec<(u64, U256)> {
    let p = provider(&w.node.url(), &w.owner);
    let head = p.get_block_number().await.expect("head");
    let op = operator().address();
    let mut out = Vec::new();
    for n in from..=head {
        let block = p.get_block_by_number(n.into()).full().await.expect("block").expect("exists");
        for tx in block.transactions.txns() {
            if tx.inner.signer() == op {
                let r = p.get_transaction_receipt(*tx.inner.tx_hash()).await.expect("receipt").expect("mined");
                out.push((r.gas_used, U256::from(r.gas_used) * U256::from(r.effective_gas_price)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_free_self_dealing_cannot_drain_the_operator_and_honest_deals_still_settle() {
    const FLOOD: usize = 30;
    let w = World::new().await;
    let db = database().await;
    let server = Dragon::start(&w, &db, BUDGETS).await;
    let api = &server.api;

    // The attacker: its own app and workerpool (registered with its own gas money), orders at price 0, the pool
    // restricted to itself, and many requests of one task each.
    let attacker = PrivateKeySigner::random();
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p
        .raw_request("anvil_setBalance".into(), (attacker.address(), U256::from(10u128.pow(20))))
        .await
        .expect("anvil_setBalance");
    let account = setup::Account::new(&w.node.url(), &attacker).expect("account");
    let app = setup::create_app(&w.deployment, &account, "free", b"docker.io/x/free:1").await.expect("app");
    let pool = setup::create_workerpool(&w.deployment, &account, "free pool").await.expect("pool");
    let app_order = w.signed(&attacker, app_order_of(app, 0, 1_000, 1));
    let mut pool_order = pool_order_of(pool, 0, 1_000, 1, 2);
    if let AnyOrder::Workerpool(o) = &mut pool_order {
        o.requesterrestrict = attacker.address();
    }
    let pool_order = w.signed(&attacker, pool_order);

    let start_block = p.get_block_number().await.expect("block") + 1;
    let balance_before = p.get_balance(operator().address()).await.expect("balance");
    for o in [&app_order, &pool_order] {
        let (s, b) = api.publish(&attacker, o).await;
        assert_eq!(s, 200, "{b}");
    }
    let mut flood = Vec::new();
    for i in 0..FLOOD {
        let r = w.signed(&attacker, request_of(attacker.address(), app, [0, 0], 1, 1, "{}", 10 + i as u8));
        let (s, b) = api.publish(&attacker, &r).await;
        assert_eq!(s, 200, "{b}");
        flood.push(h(&w, &r));
    }
    // Meanwhile an honest requester buys a paid task from someone else's app and pool.
    let honest_app = w.app_order(2, 100, 1);
    let honest_pool = w.pool_order(5, 10, 1, 2);
    for o in [&honest_app, &honest_pool] {
        assert_eq!(api.publish(&w.owner, o).await.0, 200);
    }
    let honest = w.request(&w.requester, 8, 1, 1, 3);
    assert_eq!(api.publish(&w.requester, &honest).await.0, 200);
    let deal = until("the honest deal", async || deals_of(api, &h(&w, &honest)).await.into_iter().next()).await;
    assert_eq!(deal["requester"], w.requester.address().to_checksum(None));

    // Every free deal is either settled or deferred (still proposed: its volume stays reserved).
    let (settled, deferred) = until("the flood settled or deferred", async || {
        let (mut settled, mut deferred) = (0, Vec::new());
        for r in &flood {
            let ps = proposals(api, r).await;
            match ps.first() {
                Some(p) if p["status"] == "settled" => settled += 1,
                Some(p)
                    if p["status"] == "proposed"
                        && p["reason"].as_str().is_some_and(|r| r.starts_with("deferred: ")) =>
                {
                    deferred.push(p.clone())
                }
                _ => return None,
            }
        }
        Some((settled, deferred))
    })
    .await;
    // Nothing more goes out later in the window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spending = operator_spending(&w, start_block).await;
    let balance_after = p.get_balance(operator().address()).await.expect("balance");
    let spent = balance_before - balance_after;
    let gas: u64 = spending.iter().map(|s| s.0).sum();
    let wei = spending.iter().fold(U256::ZERO, |a, s| a + s.1);
    let max_price = spending.iter().map(|s| s.1 / U256::from(s.0)).max().unwrap_or_default();
    eprintln!(
        "flood of {FLOOD} free deals: {settled} settled, {} deferred; operator spent {gas} gas in {} transactions, \
         {spent} wei (budget {OPERATOR_BUDGET} gas, free deals {FREE_BUDGET} gas)",
        deferred.len(),
        spending.len()
    );
    assert_eq!(spent, wei, "the operator paid for its settlements only");
    assert!(gas <= OPERATOR_BUDGET, "the operator spent {gas} gas, over its budget of {OPERATOR_BUDGET}");
    assert!(spent <= U256::from(OPERATOR_BUDGET) * max_price, "spent {spent} wei");
    assert!(settled < FLOOD && !deferred.is_empty(), "the flood was cut: {settled} of {FLOOD} settled");
    assert!(settled >= 1, "free deals are allowed within their budget");
    let reason = deferred[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("gas budget") && reason.contains("until "), "{reason}");
    // The deferred volume is still reserved: the requests are not back in the book, no new proposal.
    let (_, book) = api.get(&format!("/requestorders?app={app}&requester={}", attacker.address())).await;
    assert_eq!(book["count"], 0, "{book}");
    assert_eq!(proposals(api, &flood[FLOOD - 1]).await.len(), 1);
    let _ = Address::ZERO;
    server.stop().await;
}

/// The settlement log and the charges, against PostgreSQL: what the settler and start-up rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settlement_log_and_the_budget_window_in_the_store() {
    use dragon::store::settlement_charges::{self, Budget};
    use dragon::store::settlement_txs::{self, Mined, NewTx};
    let store = dragon::store::Store::connect(&database().await, Default::default()).await.expect("store");
    let c = store.client().await.expect("client");
    let op = Address::repeat_byte(7);
    let row = |nonce: u64, hash: u8, proposals: &'static [i64]| NewTx {
        chain_id: 5,
        operator: op,
        nonce,
        hash: B256::repeat_byte(hash),
        raw: &[1, 2, 3],
        proposals,
        gas_limit: 300_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: u128::from(u64::MAX) + 1,
    };
    let a = settlement_txs::insert(&**c, &row(3, 1, &[10, 11])).await.expect("insert");
    let b = settlement_txs::insert(&**c, &row(3, 2, &[10, 11])).await.expect("replacement");
    let other = settlement_txs::insert(&**c, &row(4, 3, &[12])).await.expect("insert");
    let pending = settlement_txs::pending(&**c, 5).await.expect("pending");
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b, other]);
    assert_eq!(pending[0].max_priority_fee_per_gas, u128::from(u64::MAX) + 1, "fees beyond u64 round-trip");
    assert_eq!(pending[0].raw, vec![1, 2, 3]);
    let mut flying = settlement_txs::in_flight(&**c, 5, &[10, 11, 12, 13]).await.expect("in flight");
    flying.sort();
    assert_eq!(flying, vec![10, 11, 12]);
    assert!(settlement_txs::known(&**c, B256::repeat_byte(2)).await.expect("known"));
    // The replacement is mined: the original of its nonce is dead, the proposals stay in flight (sync settles
    // them) because it succeeded.
    let m = Mined { succeeded: true, block_number: 40, gas_used: 250_000, effective_gas_price: 1_000_000_007 };
    settlement_txs::mark_mined(&**c, b, &m).await.expect("mined");
    let rows = settlement_txs::at_nonce(&**c, 5, op, 3).await.expect("rows");
    assert_eq!(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), vec!["dead", "mined"]);
    assert_eq!(settlement_txs::in_flight(&**c, 5, &[10]).await.expect("in flight"), vec![10]);
    // Nonce 4 went to someone else.
    settlement_txs::mark_nonce_dead(&**c, 5, op, 4, "nonce 4 used by another transaction").await.expect("dead");
    assert!(settlement_txs::in_flight(&**c, 5, &[12]).await.expect("in flight").is_empty());
    assert!(settlement_txs::pending(&**c, 5).await.expect("pending").is_empty());
    // A reorg above block 40 reopens the mined row and the one it replaced.
    let reopened = settlement_txs::reopen_from(&**c, 5, 40).await.expect("reopen");
    let mut ids: Vec<i64> = reopened.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, vec![a, b]);
    assert!(reopened.iter().all(|r| r.status == "pending"));

    // Charges: 3 in the window, the budget sums and when they make room.
    for (who, gas, free, age) in [(1u8, 100u64, true, 50i64), (2, 200, false, 20), (1, 300, true, 10)] {
        c.execute(
            "INSERT INTO settlement_charges (chain_id, tx_id, proposal_id, requester, workerpool_owner, free, gas,
                                             wei, charged_at)
             VALUES (5, $1, 1, $2, $3, $4, $5, 0, now() - $6::bigint * interval '1 second')",
            &[
                &b,
                &Address::repeat_byte(who).as_slice(),
                &Address::repeat_byte(9).as_slice(),
                &free,
                &(gas as i64),
                &age,
            ],
        )
        .await
        .expect("charge");
    }
    let s = settlement_charges::spent(&**c, 5, 60, &[Address::repeat_byte(1)], &[Address::repeat_byte(9)])
        .await
        .expect("spent");
    assert_eq!((s.operator, s.free), (600, 400));
    assert_eq!(s.requesters[&Address::repeat_byte(1)], 400);
    assert_eq!(s.workerpool_owners[&Address::repeat_byte(9)], 600);
    assert_eq!(settlement_charges::spent(&**c, 5, 15, &[], &[]).await.expect("spent").operator, 300);
    // At most 300 may stay charged: once the oldest (100, 50 s ago) and the next (200, 20 s ago) leave.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_millis() as i64;
    let at = settlement_charges::fits_at(&**c, 5, 60, Budget::Operator, 300).await.expect("fits").expect("a time");
    assert!((at - (now_ms + 40_000)).abs() < 5_000, "the 20 s old charge leaves in about 40 s: {}", at - now_ms);
    let at = settlement_charges::fits_at(&**c, 5, 60, Budget::Free, 300).await.expect("fits").expect("a time");
    assert!((at - (now_ms + 10_000)).abs() < 5_000, "the 50 s old free charge leaves in about 10 s");
    let at = settlement_charges::fits_at(&**c, 5, 60, Budget::Requester(Address::repeat_byte(2)), 0)
        .await
        .expect("fits")
        .expect("a time");
    assert!((at - (now_ms + 40_000)).abs() < 5_000);
    assert_eq!(settlement_charges::prune(&**c, 5, 30).await.expect("prune"), 1);

    // When the engine is rebuilt, pending proposals that no transaction carries fail; one in flight stays, and
    // one sent before the log existed is left to the start-up (only the chain can tell).
    use dragon::store::proposals;
    use dragon_matching as m;
    let deal = |b: u8| m::Deal {
        id: m::ProposalId(0),
        app: m::OrderHash([b; 32]),
        dataset: None,
        workerpool: m::OrderHash([b + 1; 32]),
        request: m::OrderHash([b + 2; 32]),
        volume: 1,
        app_price: m::Nrlc(0),
        dataset_price: m::Nrlc(0),
        workerpool_price: m::Nrlc(0),
        category: 0,
    };
    let ids = proposals::insert(&**c, 5, &[deal(1), deal(4), deal(7)]).await.expect("proposals");
    let carried = [ids[0]];
    let flying = NewTx { nonce: 9, hash: B256::repeat_byte(9), proposals: &carried, ..row(9, 9, &[1]) };
    settlement_txs::insert(&**c, &flying).await.expect("insert");
    proposals::mark_submitted(&**c, &carried, B256::repeat_byte(9)).await.expect("submitted");
    proposals::mark_submitted(&**c, &[ids[2]], B256::repeat_byte(0xee)).await.expect("submitted");
    let failed = proposals::fail_unsent(&**c, 5, "not sent before the engine restarted").await.expect("fail");
    assert_eq!(failed.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ids[1]]);
}

/// A deferred proposal keeps its volume reserved for as long as the window says; a proposal failing beside it on
/// the same workerpool order must give the engine back all of its own volume (the engine's cap for an order is
/// what it may hold, reserved included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_failing_beside_a_deferred_one_gives_all_its_volume_back() {
    let w = World::new().await;
    let db = database().await;
    // Each requester gets one deal per hour.
    let server = Dragon::start(&w, &db, "[settlement]\nrequester_gas_budget = 1\n").await;
    let api = &server.api;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    for o in [&app, &pool] {
        assert_eq!(api.publish(&w.owner, o).await.0, 200);
    }
    let first = w.request(&w.requester, 8, 1, 1, 3);
    assert_eq!(api.publish(&w.requester, &first).await.0, 200);
    until("the first deal", async || deals_of(api, &h(&w, &first)).await.into_iter().next()).await;
    // The same requester again: deferred, 3 of the pool's volume reserved.
    let waiting = w.request(&w.requester, 8, 3, 1, 4);
    assert_eq!(api.publish(&w.requester, &waiting).await.0, 200);
    until("the deferral", async || {
        let p = proposals(api, &h(&w, &waiting)).await;
        p.first().and_then(|p| p["reason"].as_str()).is_some_and(|r| r.starts_with("deferred: ")).then_some(())
    })
    .await;
    // Another requester's deal takes the pool's last 6 while the operator has no gas money, then the rest of its
    // request is withdrawn: the proposal fails and its 6 go back.
    let op = operator().address();
    let balance = provider(&w.node.url(), &w.owner).get_balance(op).await.expect("balance");
    rpc(&w, "anvil_setBalance", (op, U256::ZERO)).await;
    until("the operator without gas money", async || {
        let v = rpc(&w, "eth_getBalance", (op, "latest")).await;
        (v == "0x0").then_some(())
    })
    .await;
    let withdrawn = w.request(&w.other, 8, 8, 1, 5);
    assert_eq!(api.publish(&w.other, &withdrawn).await.0, 200);
    until("its proposal", async || proposals(api, &h(&w, &withdrawn)).await.into_iter().next()).await;
    let auth = api.login(&w.other).await;
    let body = serde_json::json!({"target": "unpublish_orderHash", "orderHash": h(&w, &withdrawn)});
    let (s, b) = api.send(reqwest::Method::PUT, "/requestorders", &auth, &body).await;
    assert_eq!(s, 200, "{b}");
    // The settler retries while the money is gone; one retry may have read the request before it was withdrawn.
    // Money comes back only once every retry reads it withdrawn.
    let (s, o) = api.get(&format!("/requestorders/{}", h(&w, &withdrawn))).await;
    assert_eq!(s, 404, "an unpublished record is deleted, as the peer does: {o}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    rpc(&w, "anvil_setBalance", (op, balance)).await;
    until("the withdrawn request's proposal to fail", async || {
        proposals(api, &h(&w, &withdrawn)).await.into_iter().find(|p| p["status"] == "failed")
    })
    .await;
    let (_, o) = api.get(&format!("/workerpoolorders/{}", h(&w, &pool))).await;
    assert_eq!(o["remaining"], 6, "10 - 1 settled - 3 deferred: {o}");
    // All of the 6 match a new request at once.
    let buyer = requester_with(&w, 1_000).await;
    let last = w.request(&buyer, 8, 6, 1, 6);
    let (s, b) = api.publish(&buyer, &last).await;
    assert_eq!(s, 200, "{b}");
    let p = until("the new proposal", async || proposals(api, &h(&w, &last)).await.into_iter().next()).await;
    assert_eq!(p["volume"], 6, "the engine holds what the store says is left: {p}");
    let deal = until("its deal", async || deals_of(api, &h(&w, &last)).await.into_iter().next()).await;
    assert_eq!(deal["volume"], 6);
    server.stop().await;
}

/// A reorg that orphans the block of a settlement does not give up its proposal: the transaction may be mined
/// again (it is, with the same bytes), so the proposal goes back to `submitted` until it lands, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_orphaned_by_a_reorg_is_followed_again_and_lands_once() {
    crate::harness::capture_logs();
    let w = World::new().await;
    let server = Server::start(crate::settle::settling(&w, database().await)).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    for o in [&app, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    let req = w.request(&w.requester, 8, 2, 1, 3);
    assert_eq!(server.publish(&w.requester, &req).await.0, 200);
    let deal = until("the deal", async || deals_of(&server, &h(&w, &req)).await.into_iter().next()).await;
    let tx = deal["transactionHash"].as_str().expect("tx").to_owned();
    let block = deal["blockNumber"].as_u64().expect("block");
    let p = provider(&w.node.url(), &w.owner);
    let head = p.get_block_number().await.expect("head");
    until("sync at the head", async || {
        let (_, health) = server.get("/health").await;
        (health["sync"]["block"].as_u64() >= Some(head)).then_some(())
    })
    .await;
    // The deal's block and everything after it are replaced by empty blocks.
    rpc(&w, "anvil_reorg", (head - block + 1, Vec::<Value>::new())).await;
    until("the reorg undone", async || {
        let (_, health) = server.get("/health").await;
        (health["sync"]["reorgs"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    // The same transaction lands again; the proposal was never failed.
    let again = until("the deal again", async || deals_of(&server, &h(&w, &req)).await.into_iter().next()).await;
    assert_eq!(again["transactionHash"], tx.as_str(), "the same bytes landed: {again}");
    until("the proposal settled", async || {
        let p = proposals(&server, &h(&w, &req)).await;
        (p.len() == 1 && p[0]["status"] == "settled").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = proposals(&server, &h(&w, &req)).await;
    assert_eq!((p.len(), p[0]["status"].as_str()), (1, Some("settled")), "never failed, never proposed again: {p:?}");
    assert_eq!(deals_on_chain(&w, &h(&w, &req)).await.len(), 1);
    assert_eq!(consumed(&w, &h(&w, &req)).await, U256::from(2));
    server.shutdown().await;
}
