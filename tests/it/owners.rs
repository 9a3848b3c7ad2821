//! Category books owned by one instance at a time (issue 19): leases in PostgreSQL, fenced writes, orders routed to
//! the owner over NATS, app and dataset volume reserved in the store. Real servers, PostgreSQL, anvil and
//! `nats-server`; the process faults (kill -9, SIGSTOP) run real `dragon serve` binaries.

use crate::cluster::Nats;
use crate::harness::{database, until_within};
use crate::market::{Server, World};
use dragon::cluster::LeaseConfig;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The five categories the test deployment creates.
const CATEGORIES: [u64; 5] = [0, 1, 2, 3, 4];

pub(crate) fn fast() -> LeaseConfig {
    LeaseConfig { renew_ms: 200, ttl_ms: 1_000 }
}

async fn start(w: &World, db: &str, nats: &Nats, lease: LeaseConfig) -> Server {
    let mut c = w.config(db.to_owned());
    c.nats.url = Some(nats.url());
    c.lease = lease;
    Server::start(c).await
}

/// The categories an instance says it owns (`/health`, cached for up to a second).
pub(crate) async fn owned(s: &Server) -> BTreeSet<u64> {
    let (_, h) = s.get("/health").await;
    h["categories"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

/// Waits until every category is owned by exactly one of `servers`; returns each one's share.
pub(crate) async fn spread(servers: &[&Server]) -> Vec<BTreeSet<u64>> {
    until_within("every category owned once", Duration::from_secs(30), async || {
        let mut shares = Vec::new();
        for s in servers {
            shares.push(owned(s).await);
        }
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let all: BTreeSet<u64> = shares.iter().flatten().copied().collect();
        (total == CATEGORIES.len() && all == CATEGORIES.into_iter().collect()).then_some(shares)
    })
    .await
}

/// Whether `s` lists the app order `hash` in its book (`GET /apporders/{hash}` would also answer from the store).
async fn lists_app_order(s: &Server, w: &World, hash: &str) -> bool {
    let (_, list) = s.get(&format!("/apporders?app={}", w.app)).await;
    list["orders"].as_array().is_some_and(|a| a.iter().any(|o| o["orderHash"] == hash))
}

async fn connect(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Proposals stored for an order (any role), whatever their status.
async fn proposals_of(db: &tokio_postgres::Client, hash: &str) -> i64 {
    let h = alloy::hex::decode(hash.trim_start_matches("0x")).expect("hex");
    db.query_one(
        "SELECT count(*) FROM deal_proposals
         WHERE app_hash = $1 OR workerpool_hash = $1 OR request_hash = $1 OR dataset_hash = $1",
        &[&h],
    )
    .await
    .expect("count")
    .get(0)
}

async fn stored(db: &tokio_postgres::Client, hash: &str) -> bool {
    let h = alloy::hex::decode(hash.trim_start_matches("0x")).expect("hex");
    db.query_opt("SELECT 1 FROM orders WHERE order_hash = $1", &[&h]).await.expect("query").is_some()
}

fn h(w: &World, o: &dragon::order::AnyOrder) -> String {
    o.order_hash(&w.domain).to_string()
}

/// Three instances, one PostgreSQL, one NATS: the categories are spread over them, one owner each. Orders of
/// every category posted to different instances match each other; every instance lists every category's
/// orders, and unpublishes them wherever they are owned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_categories_and_match_orders_posted_to_any_of_them() {
    let mut nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let servers =
        [start(&w, &db, &nats, fast()).await, start(&w, &db, &nats, fast()).await, start(&w, &db, &nats, fast()).await];
    let shares = spread(&servers.iter().collect::<Vec<_>>()).await;
    let pg = connect(&db).await;

    let app = w.app_order(2, 100, 1);
    assert_eq!(servers[0].publish(&w.owner, &app).await.0, 200);
    let mut requests = Vec::new();
    for (i, c) in CATEGORIES.into_iter().enumerate() {
        // The pool order to one instance, the request to another: at most one of them owns the category.
        let pool = w.pool_order(5, 1, c, 10 + i as u8);
        let (s, b) = servers[(i + 1) % 3].publish(&w.owner, &pool).await;
        assert_eq!(s, 200, "{b}");
        let req = w.request(&w.requester, 8, 1, c, 20 + i as u8);
        let (s, b) = servers[(i + 2) % 3].publish(&w.requester, &req).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["published"]["orderHash"], h(&w, &req));
        requests.push(h(&w, &req));
    }
    for r in &requests {
        until_within("each request matched", Duration::from_secs(10), async || {
            (proposals_of(&pg, r).await == 1).then_some(())
        })
        .await;
    }

    // An unmatched pool order of each category, posted to one instance, is listed by all three.
    let mut resting = Vec::new();
    for (i, c) in CATEGORIES.into_iter().enumerate() {
        let pool = w.pool_order(50, 1, c, 40 + i as u8);
        let (s, b) = servers[i % 3].publish(&w.owner, &pool).await;
        assert_eq!(s, 200, "{b}");
        resting.push((c, h(&w, &pool)));
    }
    for (c, hash) in &resting {
        for s in &servers {
            until_within("every instance lists every category", Duration::from_secs(10), async || {
                let (_, list) = s.get(&format!("/workerpoolorders?category={c}")).await;
                let hashes: Vec<&str> =
                    list["orders"].as_array()?.iter().filter_map(|o| o["orderHash"].as_str()).collect();
                hashes.contains(&hash.as_str()).then_some(())
            })
            .await;
        }
    }
    // Unpublished through an instance that does not own its category (when there is one).
    let (c, hash) = &resting[0];
    let stranger = (0..3).find(|i| !shares[*i].contains(c)).unwrap_or(0);
    let auth = servers[stranger].login(&w.owner).await;
    let (s, b) = servers[stranger]
        .send(
            reqwest::Method::PUT,
            "/workerpoolorders",
            &auth,
            &json!({"target": "unpublish_orderHash", "orderHash": hash}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["unpublished"], json!([hash]));
    assert!(!stored(&pg, hash).await, "unpublished orders leave the store");
    for s in &servers {
        until_within("gone from every instance", Duration::from_secs(10), async || {
            let (status, _) = s.get(&format!("/workerpoolorders/{hash}")).await;
            (status == 404).then_some(())
        })
        .await;
    }

    // A fourth instance joining does not fail the proposals the others' engines hold (no settler runs here, so
    // they stay pending): only the first instance of a cluster resolves what an earlier stop left pending.
    let fourth = start(&w, &db, &nats, fast()).await;
    let failed: i64 =
        pg.query_one("SELECT count(*) FROM deal_proposals WHERE status = 'failed'", &[]).await.expect("count").get(0);
    assert_eq!(failed, 0, "a joining instance failed the cluster's pending proposals");
    fourth.shutdown().await;

    // NATS away: an app order published meanwhile (no routing needed) is not carried to the others, whose read
    // index gets it from the store when they reconnect.
    nats.stop();
    let offline = w.app_order(3, 5, 50);
    let (s, b) = servers[0].publish(&w.owner, &offline).await;
    assert_eq!(s, 200, "{b}");
    let offline_hash = h(&w, &offline);

    // NATS restarts: routing comes back by itself (the owners subscribe again), within the router's patience.
    nats.restart();
    let c = CATEGORIES.into_iter().find(|c| !shares[0].contains(c)).unwrap_or(0);
    let (pool, req) = (w.pool_order(5, 1, c, 60), w.request(&w.requester, 8, 1, c, 61));
    let (s, b) = servers[0].publish(&w.owner, &pool).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = servers[0].publish(&w.requester, &req).await;
    assert_eq!(s, 200, "{b}");
    let r = h(&w, &req);
    until_within("matched after NATS restarted", Duration::from_secs(10), async || {
        (proposals_of(&pg, &r).await == 1).then_some(())
    })
    .await;
    for s in &servers {
        until_within("the order made while NATS was away", Duration::from_secs(10), async || {
            lists_app_order(s, &w, &offline_hash).await.then_some(())
        })
        .await;
    }
    for s in servers {
        s.shutdown().await;
    }
}

/// An app order is offered in every category, so several owners may match it at once: its volume is reserved
/// in the store, and a unit is never promised twice. One unit, two requests in two categories owned by two
/// instances, their pool orders sent at the same moment, three rounds: exactly one proposal each time (the race
/// happens: the loser's write is refused, counted, and its engine rebuilt), and the other request, left with no
/// app order, dies as with the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_order_shared_by_two_owners_is_never_promised_twice() {
    crate::harness::capture_logs();
    let nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let (a, b) = (start(&w, &db, &nats, fast()).await, start(&w, &db, &nats, fast()).await);
    let shares = spread(&[&a, &b]).await;
    let pg = connect(&db).await;
    // A category of each, when the spread gave both some (two members: it does, with five categories, unless
    // the hash gave all five to one; then the race is within one engine, which is also checked).
    let ca = *shares[0].first().unwrap_or_else(|| shares[1].first().expect("a category"));
    let cb =
        *shares[1].iter().find(|c| **c != ca).unwrap_or_else(|| shares[0].iter().find(|c| **c != ca).expect("another"));

    for round in 0..3u8 {
        let app = w.app_order(2, 1, 60 + round);
        assert_eq!(a.publish(&w.owner, &app).await.0, 200);
        // B learns of A's app order through NATS (a request needs one to be published).
        let app_hash = h(&w, &app);
        until_within("B to list the app order", Duration::from_secs(5), async || {
            lists_app_order(&b, &w, &app_hash).await.then_some(())
        })
        .await;
        let ra = w.request(&w.requester, 8, 1, ca, 70 + round);
        let rb = w.request(&w.requester, 8, 1, cb, 80 + round);
        let (s, body) = a.publish(&w.requester, &ra).await;
        assert_eq!(s, 200, "{body}");
        let (s, body) = b.publish(&w.requester, &rb).await;
        assert_eq!(s, 200, "{body}");
        let (pa, pb) = (w.pool_order(5, 1, ca, 90 + round), w.pool_order(5, 1, cb, 100 + round));
        let (x, y) = tokio::join!(a.publish(&w.owner, &pa), b.publish(&w.owner, &pb));
        assert_eq!((x.0, y.0), (200, 200), "{x:?} {y:?}");
        until_within("one proposal", Duration::from_secs(10), async || {
            (proposals_of(&pg, &app_hash).await >= 1).then_some(())
        })
        .await;
        // Whatever the engines believed, the store holds one promise of the one unit.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(proposals_of(&pg, &app_hash).await, 1, "round {round}: the unit was promised twice");
        let (ha, hb) = (h(&w, &ra), h(&w, &rb));
        let matched = proposals_of(&pg, &ha).await + proposals_of(&pg, &hb).await;
        assert_eq!(matched, 1, "round {round}");
        // The request left over has no app order to serve it any more: it dies, as with the peer, on whichever
        // instance owns it (also when that instance's engine had matched it and was refused).
        let left = if proposals_of(&pg, &ha).await == 0 { ha } else { hb };
        let hex = alloy::hex::decode(left.trim_start_matches("0x")).expect("hex");
        until_within("the request left over dies", Duration::from_secs(10), async || {
            let row = pg.query_one("SELECT status FROM orders WHERE order_hash = $1", &[&hex]).await.expect("order");
            (row.get::<_, String>(0) == "dead").then_some(())
        })
        .await;
        // The pool order left over would serve the next round's first request: unpublished (through A, which
        // routes it to its category's owner), and gone from both books before the next round.
        let auth = a.login(&w.owner).await;
        let body = json!({"target": "unpublish_all", "workerpool": w.pool.to_string()});
        let (s, gone) = a.send(reqwest::Method::PUT, "/workerpoolorders", &auth, &body).await;
        assert_eq!((s, gone["unpublished"].as_array().map(Vec::len)), (200, Some(1)), "{gone}");
        for x in [&a, &b] {
            until_within("no pool order left", Duration::from_secs(5), async || {
                let (_, list) = x.get(&format!("/workerpoolorders?workerpool={}", w.pool)).await;
                (list["count"] == 0).then_some(())
            })
            .await;
        }
    }
    let refused = metric(&a, "dragon_fenced_writes_total").await + metric(&b, "dragon_fenced_writes_total").await;
    eprintln!("shared app order: {refused} engine write(s) refused over 3 rounds");
    a.shutdown().await;
    b.shutdown().await;
}

/// A stale owner's writes are refused by the fence, not by its own belief: the lease of a category is taken
/// over in the database behind the owner's back (its keeper renews only every 10 s, so it still believes it
/// owns the category). Its publication of that category's order is refused in the same transaction, nothing is
/// stored, and once no owner is reachable the caller gets a clear 503; other categories go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owners_writes_are_refused_by_the_fence() {
    let nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let slow = LeaseConfig { renew_ms: 10_000, ttl_ms: 30_000 };
    let a = start(&w, &db, &nats, slow).await;
    spread(&[&a]).await;
    let pg = connect(&db).await;
    let app = w.app_order(2, 100, 1);
    assert_eq!(a.publish(&w.owner, &app).await.0, 200);

    // Category 1 taken by another holder, with a higher epoch, for a long time, right after a renewal: the owner
    // renews again only 10 s later, and believes it owns the category until then.
    let name = format!("category:{}:1", w.deployment.chain_id);
    let renewed = || async {
        let row = pg.query_one("SELECT renewed_at::text FROM leases WHERE name = $1", &[&name]).await.expect("lease");
        row.get::<_, String>(0)
    };
    let first = renewed().await;
    until_within("a renewal", Duration::from_secs(15), async || (renewed().await != first).then_some(())).await;
    let n = pg
        .execute(
            "UPDATE leases SET holder = 'someone-else', epoch = epoch + 1,
                    expires_at = clock_timestamp() + interval '60 seconds' WHERE name = $1",
            &[&name],
        )
        .await
        .expect("steal");
    assert_eq!(n, 1);

    let pool = w.pool_order(5, 1, 1, 2);
    let started = Instant::now();
    let (s, body) = a.publish(&w.owner, &pool).await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["code"], "no_category_owner", "{body}");
    assert!(!stored(&pg, &h(&w, &pool)).await, "a fenced write stored nothing");
    assert!(started.elapsed() < Duration::from_secs(30), "the wait for an owner is bounded");
    // The instance steps down from category 1 at its next renewal (its keeper finds the lease taken) and keeps
    // the others.
    let now = until_within("stepping down", Duration::from_secs(15), async || {
        let now = owned(&a).await;
        (!now.contains(&1)).then_some(now)
    })
    .await;
    assert!(now.contains(&2), "{now:?}");
    let other = w.pool_order(5, 1, 2, 3);
    let (s, body) = a.publish(&w.owner, &other).await;
    assert_eq!(s, 200, "{body}");
    let fenced = metric(&a, "dragon_fenced_writes_total").await;
    assert!(fenced >= 1, "the refusal is counted: {fenced}");
    a.shutdown().await;
}

async fn metric(s: &Server, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", s.base)).await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Every database session of the cluster terminated at once (a failover of PostgreSQL, an operator's
/// `pg_terminate_backend`): the leases' keepers step down, the categories are taken again, and publication
/// and matching go on through either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_database_sessions_terminated_the_categories_are_owned_again_and_matching_goes_on() {
    let nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let (a, b) = (start(&w, &db, &nats, fast()).await, start(&w, &db, &nats, fast()).await);
    spread(&[&a, &b]).await;
    let pg = connect(&db).await;
    let app = w.app_order(2, 100, 1);
    assert_eq!(a.publish(&w.owner, &app).await.0, 200);

    let killed: i64 = pg
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 4, "the instances' sessions, the leases' own among them: {killed}");

    spread(&[&a, &b]).await;
    for (i, c) in CATEGORIES.into_iter().enumerate() {
        let pool = w.pool_order(5, 1, c, 10 + i as u8);
        let req = w.request(&w.requester, 8, 1, c, 20 + i as u8);
        let (x, y) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (s, body) = x.publish(&w.owner, &pool).await;
        assert_eq!(s, 200, "{body}");
        let (s, body) = y.publish(&w.requester, &req).await;
        assert_eq!(s, 200, "{body}");
        let r = h(&w, &req);
        until_within("matched after the sessions died", Duration::from_secs(10), async || {
            (proposals_of(&pg, &r).await == 1).then_some(())
        })
        .await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

// --- Real `dragon serve` processes: kill -9 and SIGSTOP of a category's owner ---

struct Proc {
    api: Server,
    child: tokio::process::Child,
}

impl Proc {
    async fn start(w: &World, db: &str, nats: &Nats) -> Proc {
        let toml = format!("[lease]\nrenew_ms = 200\nttl_ms = 1000\n[nats]\nurl = \"{}\"\n", nats.url());
        let log = std::env::var("DRAGON_IT_SERVE_LOG").unwrap_or_else(|_| "warn".into());
        let crate::crash::Child { base, child } =
            crate::crash::spawn_with_env(w, db, &toml, &[("RUST_LOG", log)]).await;
        Proc { api: Server::attach(&base, w.deployment.chain_id), child }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid");
        let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
        assert!(ok.success());
    }
}

/// A pool order of `category` unique by `n` (price and salt), cheap enough for [`request_n`].
fn pool_n(w: &World, category: u64, n: usize) -> dragon::order::AnyOrder {
    let o = crate::market::pool_order_of(w.pool, 1 + (n / 256) as u64 % 8, 1, category, (n % 256) as u8);
    w.signed(&w.owner, o)
}

/// A request of `category` unique by `n` (its params).
fn request_n(w: &World, category: u64, n: usize) -> dragon::order::AnyOrder {
    let params = format!("{{\"iexec_args\":\"{n}\"}}");
    let r = crate::market::request_of(w.requester.address(), w.app, [10, 9], 1, category, &params, 0);
    w.signed(&w.requester, r)
}

/// Publishes as [`Server::publish`] does, but a dead server is an answer (`None`), not a panic.
async fn try_publish(
    base: &str,
    chain_id: u64,
    key: &alloy::signers::local::PrivateKeySigner,
    o: &dragon::order::AnyOrder,
) -> Option<u16> {
    let http = reqwest::Client::new();
    let url = format!("{base}/challenge?chainId={chain_id}&address={}", key.address());
    let c: Value = http.get(url).send().await.ok()?.json().await.ok()?;
    let text = c["data"]["message"]["challenge"].as_str()?;
    let hash = dragon::api::auth::challenge_hash(chain_id, text);
    let sig = dragon::order::signature::sign_digest(key, &hash).ok()?;
    let auth = format!("{hash:#x}_{sig}_{}", key.address());
    let r = http
        .post(format!("{base}/{}orders?chainId={chain_id}", o.kind()))
        .header("authorization", auth)
        .json(&json!({"order": o.to_json()}))
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

/// No order promised beyond its volume, by proposals still standing (proposed, submitted or settled): the
/// store's own count, over every order.
async fn overpromised(pg: &tokio_postgres::Client) -> Vec<String> {
    pg.query(
        "SELECT encode(o.order_hash, 'hex') FROM orders o
         JOIN deal_proposals p ON o.order_hash IN (p.app_hash, p.dataset_hash, p.workerpool_hash, p.request_hash)
         WHERE p.status <> 'failed'
         GROUP BY o.order_hash, o.volume HAVING SUM(p.volume) > o.volume",
        &[],
    )
    .await
    .expect("query")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// kill -9 of a category's owner while orders of that category are being published to it and, routed, to
/// another instance: every order acknowledged (200) is in the store, the category is owned again and matches
/// within 15 s (the bound: a 1 s lease, then a rebuild from the store; `cargo bench --bench cluster` measures
/// it), and no order is promised twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_while_publishing_loses_no_acknowledged_order_and_matching_resumes() {
    let nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let mut procs =
        vec![Proc::start(&w, &db, &nats).await, Proc::start(&w, &db, &nats).await, Proc::start(&w, &db, &nats).await];
    let shares = spread(&procs.iter().map(|p| &p.api).collect::<Vec<_>>()).await;
    let pg = connect(&db).await;
    // The victim: the owner of the most categories; the category: its first.
    let victim = (0..3).max_by_key(|i| shares[*i].len()).expect("an owner");
    let category = *shares[victim].first().expect("a category");
    let survivor = (victim + 1) % 3;
    let app = w.app_order(2, 10_000, 1);
    assert_eq!(procs[survivor].api.publish(&w.owner, &app).await.0, 200);
    let app_hash = h(&w, &app);
    until_within("every instance has the app order", Duration::from_secs(5), async || {
        for p in &procs {
            if !lists_app_order(&p.api, &w, &app_hash).await {
                return None;
            }
        }
        Some(())
    })
    .await;

    // Publishers: to the victim (the owner itself) and to the survivor (routed to the owner), pool orders and
    // requests of the category, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for (lane, target) in [(0usize, victim), (1, survivor)] {
        let (base, chain_id) = (procs[target].api.base.clone(), w.deployment.chain_id);
        // Signed before, so that the publishers only publish.
        let orders: Vec<(alloy::signers::local::PrivateKeySigner, dragon::order::AnyOrder, String)> = (0..600)
            .flat_map(|i| {
                let n = lane * 1_000 + i;
                let (p, r) = (pool_n(&w, category, n), request_n(&w, category, n));
                let (hp, hr) = (h(&w, &p), h(&w, &r));
                [(w.owner.clone(), p, hp), (w.requester.clone(), r, hr)]
            })
            .collect();
        let stop = stop.clone();
        publishers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for (key, o, hash) in orders {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let sent = tokio::time::timeout(Duration::from_secs(15), try_publish(&base, chain_id, &key, &o)).await;
                if let Ok(Some(200)) = sent {
                    acked.push(hash);
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    procs[victim].signal("-9");
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for p in publishers {
        acked.extend(p.await.expect("publisher"));
    }
    assert!(acked.len() >= 10, "orders were acknowledged around the kill: {}", acked.len());
    for hash in &acked {
        assert!(stored(&pg, hash).await, "acknowledged order {hash} lost");
    }

    let dead = procs.remove(victim);
    drop(dead);
    let left: Vec<&Server> = procs.iter().map(|p| &p.api).collect();
    let shares = spread(&left).await;
    assert!(shares.iter().any(|s| s.contains(&category)));
    // Matching resumes on the new owner: a fresh pair through the other survivor.
    let (pool, req) = (pool_n(&w, category, 50_000), request_n(&w, category, 50_000));
    let (s, b) = left[1].publish(&w.owner, &pool).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = left[1].publish(&w.requester, &req).await;
    assert_eq!(s, 200, "{b}");
    let r = h(&w, &req);
    until_within("a match on the new owner", Duration::from_secs(15), async || {
        (proposals_of(&pg, &r).await == 1).then_some(())
    })
    .await;
    eprintln!("kill -9: {} orders acknowledged, new match {:?} after the kill", acked.len(), killed_at.elapsed());
    assert_eq!(overpromised(&pg).await, Vec::<String>::new(), "an order promised beyond its volume");
}

/// SIGSTOP of a category's owner past its lease: another instance takes the category and matches; after
/// SIGCONT the stale owner steps down before it acts, and whatever it still tries to write is refused by the
/// fence: an order sent to it while it was stopped is published once (by the owner), and no order is promised
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stopped_past_its_lease_is_replaced_and_once_continued_writes_nothing_stale() {
    let nats = Nats::start();
    let w = World::new().await;
    let db = database().await;
    let procs = [Proc::start(&w, &db, &nats).await, Proc::start(&w, &db, &nats).await];
    let shares = spread(&[&procs[0].api, &procs[1].api]).await;
    let pg = connect(&db).await;
    let stopped = usize::from(shares[0].is_empty());
    let other = 1 - stopped;
    let category = *shares[stopped].first().expect("a category");
    let app = w.app_order(2, 10_000, 1);
    assert_eq!(procs[other].api.publish(&w.owner, &app).await.0, 200);
    let app_hash = h(&w, &app);
    until_within("both have the app order", Duration::from_secs(5), async || {
        lists_app_order(&procs[stopped].api, &w, &app_hash).await.then_some(())
    })
    .await;

    procs[stopped].signal("-STOP");
    until_within("the other instance takes the category", Duration::from_secs(15), async || {
        owned(&procs[other].api).await.contains(&category).then_some(())
    })
    .await;
    let (pool, req) = (pool_n(&w, category, 1), request_n(&w, category, 1));
    assert_eq!(procs[other].api.publish(&w.owner, &pool).await.0, 200);
    assert_eq!(procs[other].api.publish(&w.requester, &req).await.0, 200);
    let r = h(&w, &req);
    until_within("matched by the new owner", Duration::from_secs(10), async || {
        (proposals_of(&pg, &r).await == 1).then_some(())
    })
    .await;

    // An order sent to the stopped owner waits in its socket, then SIGCONT.
    let late = pool_n(&w, category, 2);
    let to_stopped = Server::attach(&procs[stopped].api.base, w.deployment.chain_id);
    let auth = procs[other].api.login(&w.owner).await;
    let body = json!({"order": late.to_json()});
    let sending =
        tokio::spawn(async move { to_stopped.send(reqwest::Method::POST, "/workerpoolorders", &auth, &body).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    procs[stopped].signal("-CONT");
    let (s, b) = sending.await.expect("send");
    assert_eq!(s, 200, "{b}");
    let hex = alloy::hex::decode(h(&w, &late).trim_start_matches("0x")).expect("hex");
    let rows: i64 =
        pg.query_one("SELECT count(*) FROM orders WHERE order_hash = $1", &[&hex]).await.expect("count").get(0);
    assert_eq!(rows, 1);
    // A request for it, through the resumed instance: matched once, wherever the category is owned now.
    let req2 = request_n(&w, category, 2);
    let (s, b) = procs[stopped].api.publish(&w.requester, &req2).await;
    assert_eq!(s, 200, "{b}");
    let r2 = h(&w, &req2);
    until_within("matched after the resume", Duration::from_secs(15), async || {
        (proposals_of(&pg, &r2).await == 1).then_some(())
    })
    .await;
    spread(&[&procs[0].api, &procs[1].api]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(overpromised(&pg).await, Vec::<String>::new(), "an order promised beyond its volume");
    let fenced = metric(&procs[stopped].api, "dragon_fenced_writes_total").await;
    eprintln!("SIGSTOP: the resumed owner had {fenced} write(s) refused by the fence");
}

/// Two clusters on one NATS server (two databases for the same chain and hub, as staging beside production or a
/// benchmark's runs): each is named by its database's identity, so neither hears the other's orders, routes or
/// feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_on_one_nats_never_hear_each_other() {
    let nats = Nats::start();
    let w = World::new().await;
    let (db1, db2) = (database().await, database().await);
    let (x, y) = (start(&w, &db1, &nats, fast()).await, start(&w, &db2, &nats, fast()).await);
    // Each owns every category of its own cluster.
    spread(&[&x]).await;
    spread(&[&y]).await;
    let mut on_y = crate::cluster::subscriber(&y).await;
    let app = w.app_order(2, 10, 1);
    assert_eq!(x.publish(&w.owner, &app).await.0, 200);
    let pool = w.pool_order(5, 1, 1, 2);
    assert_eq!(x.publish(&w.owner, &pool).await.0, 200);
    let seen = crate::cluster::events(&mut on_y, Duration::from_millis(1500)).await;
    assert!(seen.is_empty(), "the other cluster's feed carried: {seen:?}");
    assert!(!lists_app_order(&y, &w, &h(&w, &app)).await);
    assert_eq!(y.get("/workerpoolorders?category=1").await.1["count"], 0);
    assert!(lists_app_order(&x, &w, &h(&w, &app)).await);
    x.shutdown().await;
    y.shutdown().await;
}
