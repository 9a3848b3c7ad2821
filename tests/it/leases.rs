//! Issue 19: leases with epoch fencing in PostgreSQL, and the settler as a fenced leader of a cluster of real
//! `dragon serve` processes on one PostgreSQL and one anvil.
//!
//! - The store: candidates racing for a lease, epochs, expiry by the database's clock, a stale holder's fenced
//!   write refused, a takeover waiting for the fenced writes in flight.
//! - The keeper: its renewal connection terminated by `pg_terminate_backend`, it steps down and another takes over,
//!   never two holders at once.
//! - The processes: only the leader settles; the leader stopped (SIGSTOP) past its TTL or killed (SIGKILL) with a
//!   settlement sent and not yet mined: the other instance takes over, sends the identical bytes again, exactly
//!   one deal lands; the stopped leader, continued, steps down and settles nothing.

use crate::harness::database;
use crate::market::{Server, World, provider};
use crate::settle::{OPERATOR, until};
use alloy::primitives::B256;
use alloy::providers::Provider;
use dragon::cluster::{Fence, LeaseConfig, LeaseKeeper};
use dragon::store::leases;
use dragon::store::{Store, StoreConfig, StoreError};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn store(db: &str) -> Store {
    Store::connect(db, StoreConfig::default()).await.expect("store")
}

async fn connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_racing_for_a_free_lease_make_exactly_one_holder() {
    let db = database().await;
    let _ = store(&db).await;
    let ttl = Duration::from_secs(5);
    // Each candidate on its own connection, all at once.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&db).await);
    }
    let racers = clients.iter().enumerate().map(|(i, c)| async move {
        (format!("holder-{i}"), leases::acquire(c, "settler:1", &format!("holder-{i}"), ttl).await.expect("acquire"))
    });
    let results = futures_util::future::join_all(racers).await;
    let winners: Vec<_> = results.iter().filter(|(_, e)| e.is_some()).collect();
    assert_eq!(winners.len(), 1, "exactly one candidate holds the lease: {results:?}");
    let (winner, epoch) = (&winners[0].0, winners[0].1);
    assert_eq!(epoch, Some(1));
    // Renewing a live lease keeps the tenure; the others still get nothing.
    let c = &clients[0];
    assert_eq!(leases::acquire(c, "settler:1", winner, ttl).await.expect("renew"), Some(1));
    let loser = if winner == "holder-0" { "holder-1" } else { "holder-0" };
    assert_eq!(leases::acquire(c, "settler:1", loser, ttl).await.expect("try"), None);
    // Another lease is independent.
    assert_eq!(leases::acquire(c, &leases::category(1, 0), loser, ttl).await.expect("other"), Some(1));
    let l = leases::get(c, "settler:1").await.expect("get").expect("row");
    assert_eq!((l.holder.as_str(), l.epoch, l.live), (winner.as_str(), 1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_with_a_higher_epoch_and_the_stale_holder_is_fenced() {
    let db = database().await;
    let s = store(&db).await;
    let c = connect(&db).await;
    let short = Duration::from_millis(300);
    let a = Fence { name: "settler:7".into(), holder: "a".into(), epoch: 1 };
    assert_eq!(leases::acquire(&c, &a.name, "a", short).await.expect("a"), Some(1));
    assert_eq!(leases::acquire(&c, &a.name, "b", short).await.expect("b early"), None);
    leases::check(&c, &a).await.expect("a's fence passes while its lease is live");

    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired by the database's clock: even with nobody else in, the stale tenure's fence fails.
    assert!(matches!(leases::check(&c, &a).await, Err(StoreError::Fenced { .. })));
    assert_eq!(leases::acquire(&c, &a.name, "b", Duration::from_secs(5)).await.expect("b"), Some(2));
    // A's write, fenced in its own transaction, is refused and leaves nothing behind.
    let mut client = s.client().await.expect("client");
    let tx = client.transaction().await.expect("tx");
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fenced_writes (who TEXT)").await.expect("table");
    tx.commit().await.expect("commit");
    let tx = client.transaction().await.expect("tx");
    let refused = leases::check(&*tx, &a).await;
    assert!(matches!(&refused, Err(StoreError::Fenced { lease, epoch: 1 }) if lease == "settler:7"), "{refused:?}");
    assert!(refused.as_ref().err().is_some_and(StoreError::is_fenced));
    drop(tx);
    // A coming back cannot take the lease while B's is live, and its re-take after B's end is a new epoch.
    assert_eq!(leases::acquire(&c, &a.name, "a", short).await.expect("a again"), None);
    let b = Fence { name: a.name.clone(), holder: "b".into(), epoch: 2 };
    assert!(leases::release(&c, &b).await.expect("release"));
    assert!(!leases::release(&c, &b).await.expect("released once"));
    assert_eq!(leases::acquire(&c, &a.name, "a", short).await.expect("a after b"), Some(3));
    // The same holder taking its own expired lease again is a new tenure too: its old writes must not pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(leases::acquire(&c, &a.name, "a", short).await.expect("a renews late"), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_the_fenced_writes_in_flight_and_later_ones_are_refused() {
    let db = database().await;
    let _ = store(&db).await;
    let (mut a_conn, b_conn) = (connect(&db).await, connect(&db).await);
    let a = Fence { name: "settler:9".into(), holder: "a".into(), epoch: 1 };
    assert_eq!(leases::acquire(&a_conn, &a.name, "a", Duration::from_millis(300)).await.expect("a"), Some(1));
    a_conn.batch_execute("CREATE TABLE w (epoch BIGINT)").await.expect("table");
    // A's fenced transaction passes its check while live, then stays open past the lease's expiry.
    let tx = a_conn.transaction().await.expect("tx");
    leases::check(&tx, &a).await.expect("fence");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let takeover = tokio::spawn(async move {
        let got = leases::acquire(&b_conn, "settler:9", "b", Duration::from_secs(5)).await.expect("b");
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!takeover.is_finished(), "the takeover must wait for the fenced transaction in flight");
    tx.execute("INSERT INTO w VALUES (1)", &[]).await.expect("write");
    let committed = Instant::now();
    tx.commit().await.expect("commit");
    let (got, at) = takeover.await.expect("takeover");
    assert_eq!(got, Some(2));
    assert!(at >= committed, "the takeover completed only after the stale tenure's write committed");
    // From now on, A's writes are refused.
    let tx = a_conn.transaction().await.expect("tx");
    assert!(leases::check(&tx, &a).await.is_err_and(|e| e.is_fenced()));
}

fn fast() -> LeaseConfig {
    LeaseConfig { renew_ms: 100, ttl_ms: 600 }
}

fn keeper(db: &str, app: &str, holder: &str) -> (LeaseKeeper, tokio::sync::oneshot::Sender<()>) {
    let mut pg = dragon::store::pg_config(db, StoreConfig::default()).expect("pg");
    pg.application_name(app);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (k, _task) = LeaseKeeper::spawn(pg, "settler:3".into(), holder.into(), fast(), async move {
        let _ = stopped.await;
    });
    (k, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_session_is_terminated_steps_down_and_the_other_takes_over_never_both() {
    let db = database().await;
    let _ = store(&db).await;
    let (a, _stop_a) = keeper(&db, "lease-a", "a");
    let (b, stop_b) = keeper(&db, "lease-b", "b");
    // Watch both, every few milliseconds, for the whole test: never two tenures at once.
    let (wa, wb) = (a.tenure.clone(), b.tenure.clone());
    let overlap = tokio::spawn(async move {
        let mut seen = 0u32;
        loop {
            let both = wa.borrow().is_some() && wb.borrow().is_some();
            assert!(!both, "two holders at once");
            seen += 1;
            if wa.has_changed().is_err() || wb.has_changed().is_err() || seen > 4_000 {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let first = until("a first holder", async || match (a.tenure.borrow().clone(), b.tenure.borrow().clone()) {
        (Some(f), _) => Some(("lease-a", f)),
        (_, Some(f)) => Some(("lease-b", f)),
        _ => None,
    })
    .await;
    let (app, fence) = first;
    let other = if app == "lease-a" { &b } else { &a };
    let holder = if app == "lease-a" { &a } else { &b };
    let c = connect(&db).await;
    let killed = Instant::now();
    let n: i64 = c
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(n, 1, "the holder's renewal connection");
    until("the holder to step down", async || holder.tenure.borrow().is_none().then_some(())).await;
    let down = killed.elapsed();
    let taken = until("the other to take over", async || other.tenure.borrow().clone()).await;
    let over = killed.elapsed();
    assert!(taken.epoch > fence.epoch, "{taken:?} after {fence:?}");
    assert!(leases::check(&c, &fence).await.is_err_and(|e| e.is_fenced()), "the old tenure is fenced");
    eprintln!("terminated session: stepped down after {down:?}, taken over after {over:?}");
    let _ = stop_b.send(());
    let seen = overlap.await.expect("never two holders");
    assert!(seen > 10);
}

// --- Two `dragon serve` processes on one PostgreSQL and one anvil, both with the operator key ---

const LEASE: &str = "[lease]\nrenew_ms = 200\nttl_ms = 1000\n";

struct Dragon {
    api: Server,
    child: tokio::process::Child,
}

impl Dragon {
    async fn start(w: &World, db: &str) -> Dragon {
        let log = std::env::var("DRAGON_IT_SERVE_LOG").unwrap_or_else(|_| "warn".into());
        let env = [("DRAGON_OPERATOR_KEY", OPERATOR.to_owned()), ("RUST_LOG", log)];
        let crate::crash::Child { base, child } = crate::crash::spawn_with_env(w, db, LEASE, &env).await;
        Dragon { api: Server::attach(&base, w.deployment.chain_id), child }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid");
        let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    async fn health(&self) -> Value {
        self.api.get("/health").await.1
    }

    async fn leading(&self) -> bool {
        self.health().await["settler"]["leading"] == true
    }

    async fn metric(&self, name: &str) -> u64 {
        let text =
            reqwest::get(format!("{}/metrics", self.api.base)).await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }
}

async fn rpc(w: &World, method: &'static str, params: impl serde::Serialize) -> Value {
    let p = provider(&w.node.url(), &w.owner);
    let params = serde_json::to_value(params).expect("params");
    p.raw_request::<_, Value>(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn node_knows(w: &World, tx: &str) -> bool {
    !rpc(w, "eth_getTransactionByHash", (tx,)).await.is_null()
}

/// `OrdersMatched` of a request on chain, with their transactions.
async fn deals_on_chain(w: &World, request: &str) -> Vec<(B256, B256)> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    use dragon::chain::contracts::hub::DragonHub;
    let p = provider(&w.node.url(), &w.owner);
    let filter = Filter::new()
        .address(w.deployment.hub)
        .event_signature(DragonHub::OrdersMatched::SIGNATURE_HASH)
        .from_block(w.deployment.block_number);
    let logs = p.get_logs(&filter).await.expect("logs");
    let request: B256 = request.parse().expect("hash");
    logs.iter()
        .filter_map(|l| Some((l.log_decode::<DragonHub::OrdersMatched>().ok()?, l.transaction_hash?)))
        .filter(|(e, _)| e.inner.data.requestHash == request)
        .map(|(e, tx)| (e.inner.data.dealid, tx))
        .collect()
}

async fn operator_nonce(w: &World) -> u64 {
    let p = provider(&w.node.url(), &w.owner);
    let op: alloy::signers::local::PrivateKeySigner = OPERATOR.parse().expect("key");
    p.get_transaction_count(op.address()).await.expect("nonce")
}

/// A leader (`a`) and a follower (`b`), both up; the leader settles a first deal alone (the follower sends
/// nothing), then proposes a second one with blocks stopped, so that its transaction is sent and not mined.
/// Returns the second request's hash and its transaction.
async fn a_cluster_with_a_settlement_in_flight(w: &World, db: &str) -> (Dragon, Dragon, String, String) {
    let a = Dragon::start(w, db).await;
    until("a to lead", async || a.leading().await.then_some(())).await;
    // B starts with an empty book (A publishes after), so only A's engine proposes: the deals are A's.
    let b = Dragon::start(w, db).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    for o in [&app, &pool] {
        let (s, body) = a.api.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{body}");
    }
    let first = w.request(&w.requester, 8, 1, 1, 3);
    assert_eq!(a.api.publish(&w.requester, &first).await.0, 200);
    let h1 = first.order_hash(&w.domain).to_string();
    until("the first deal", async || (deals_on_chain(w, &h1).await.len() == 1).then_some(())).await;
    assert!(!b.leading().await, "one leader");
    assert_eq!(b.metric("dragon_settle_transactions_total").await, 0, "the follower sent nothing");
    assert!(a.metric("dragon_settle_transactions_total").await >= 1);

    rpc(w, "evm_setAutomine", (false,)).await;
    let second = w.request(&w.requester, 8, 2, 1, 4);
    assert_eq!(a.api.publish(&w.requester, &second).await.0, 200);
    let h2 = second.order_hash(&w.domain).to_string();
    let tx = until("the settlement transaction", async || {
        let (_, p) = a.api.get(&format!("/proposals?orderHash={h2}")).await;
        p["proposals"][0]["transactionHash"].as_str().map(str::to_owned)
    })
    .await;
    until("the node to hold it", async || node_knows(w, &tx).await.then_some(())).await;
    (a, b, h2, tx)
}

/// What the store says: one proposal for the request, carried by exactly one transaction (one nonce), settled.
async fn settled_once(db: &str, w: &World, request: &str, tx: &str) {
    let c = connect(db).await;
    let req = alloy::hex::decode(request.trim_start_matches("0x")).expect("hex");
    let rows =
        c.query("SELECT id, status FROM deal_proposals WHERE request_hash = $1", &[&req]).await.expect("proposals");
    assert_eq!(rows.len(), 1, "one proposal for the request");
    let id: i64 = rows[0].get(0);
    let nonces: Vec<i64> = c
        .query("SELECT DISTINCT nonce FROM settlement_txs WHERE $1 = ANY(proposals)", &[&id])
        .await
        .expect("txs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nonces.len(), 1, "one nonce (one transaction, never a second one) for the proposal: {nonces:?}");
    let on_chain = deals_on_chain(w, request).await;
    assert_eq!(on_chain.len(), 1, "exactly one deal on chain: {on_chain:?}");
    assert_eq!(format!("{:#x}", on_chain[0].1), tx, "the transaction signed by the first leader landed");
    until("the proposal settled", async || {
        let s: String = c.query_one("SELECT status FROM deal_proposals WHERE id = $1", &[&id]).await.ok()?.get(0);
        (s == "settled").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_lease_is_replaced_and_once_continued_writes_nothing() {
    let w = World::new().await;
    let db = database().await;
    let (a, b, request, tx) = a_cluster_with_a_settlement_in_flight(&w, &db).await;
    let nonce_before = operator_nonce(&w).await;

    a.signal("-STOP");
    let stopped = Instant::now();
    // The node loses the transaction: only a resend of the stored bytes can bring it back.
    rpc(&w, "anvil_dropTransaction", (&tx,)).await;
    until("b to lead", async || b.leading().await.then_some(())).await;
    let led = stopped.elapsed();
    until("b to send the identical bytes again", async || node_knows(&w, &tx).await.then_some(())).await;
    let resent = stopped.elapsed();
    rpc(&w, "evm_setAutomine", (true,)).await;
    rpc(&w, "evm_mine", ()).await;
    settled_once(&db, &w, &request, &tx).await;

    // A continues: its tenure is over by its own clock and by the fence; it must not lead nor send.
    a.signal("-CONT");
    until("a to step down", async || (!a.leading().await).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!a.leading().await && b.leading().await, "b still leads");
    settled_once(&db, &w, &request, &tx).await;
    // The mined count before the stop excluded the transaction in flight: it, and nothing else, was mined since.
    assert_eq!(operator_nonce(&w).await, nonce_before + 1, "no other operator transaction was mined");
    let c = connect(&db).await;
    let l = leases::get(&c, &leases::settler(w.deployment.chain_id)).await.expect("lease").expect("row");
    assert!(l.epoch >= 2 && l.live, "{l:?}");
    assert_eq!(Some(l.epoch), b.health().await["settler"]["epoch"].as_i64());
    eprintln!("SIGSTOP failover: b led after {led:?}, resent the stored settlement after {resent:?}");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_between_send_and_record_leaves_exactly_one_deal() {
    let w = World::new().await;
    let db = database().await;
    let (mut a, b, request, tx) = a_cluster_with_a_settlement_in_flight(&w, &db).await;
    a.child.start_kill().expect("kill -9");
    let killed = Instant::now();
    let _ = a.child.wait().await;
    rpc(&w, "anvil_dropTransaction", (&tx,)).await;
    until("b to lead", async || b.leading().await.then_some(())).await;
    let led = killed.elapsed();
    until("b to send the identical bytes again", async || node_knows(&w, &tx).await.then_some(())).await;
    let resent = killed.elapsed();
    rpc(&w, "evm_setAutomine", (true,)).await;
    rpc(&w, "evm_mine", ()).await;
    settled_once(&db, &w, &request, &tx).await;
    let settled = killed.elapsed();
    eprintln!("SIGKILL failover: b led after {led:?}, resent after {resent:?}, deal recorded after {settled:?}");
    drop(b);
}
