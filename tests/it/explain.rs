//! Why an order does not match (issue 21), end to end: a real server, PostgreSQL and anvil. A request is
//! blocked for each reason in turn, published (GET `/{kind}orders/{hash}/explain`) or as a draft (POST
//! `/explain`), and the explanation names exactly that reason; a draft that would match says so, and is matched
//! once published.

use crate::market::{Server, World, app_order_of, dataset_order_of, pool_order_of, request_of};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::setup;
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use serde_json::{Value, json};

fn codes(combination: &Value) -> Vec<String> {
    combination["blockers"]
        .as_array()
        .map(|b| b.iter().filter_map(|x| x["code"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn draft(server: &Server, kind: &str, order: &AnyOrder) -> Value {
    let (s, b) =
        server.send(reqwest::Method::POST, "/explain", "", &json!({"kind": kind, "order": order.to_json()})).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// A request of the test's requester for `app`, category 1, trust 1, paying up to 20 for the workerpool and 10
/// for the app.
fn base(w: &World, app: Address, salt: u8) -> AnyOrder {
    request_of(w.requester.address(), app, [10, 20], 1, 1, "{}", salt)
}

fn with(mut o: AnyOrder, f: impl FnOnce(&mut dragon::order::RequestOrder)) -> AnyOrder {
    if let AnyOrder::Request(r) = &mut o {
        f(r);
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_blocking_reason_is_explained_as_the_engine_decides() {
    let w = World::new().await;
    let server = Server::start(w.config(crate::harness::database().await)).await;
    let url = w.node.url();
    let owner = setup::Account::new(&url, &w.owner).expect("account");
    let d = &w.deployment;
    let elsewhere = Address::repeat_byte(0x77);

    // The book: an app order (2 nRLC), a dataset order (3 nRLC), a workerpool order in category 1 (10 nRLC,
    // trust 1, no tag).
    for o in [w.app_order(2, 100, 1), w.dataset_order(3, 100, 2), w.pool_order(10, 100, 1, 3)] {
        let (s, b) = server.publish(&w.owner, &o).await;
        assert_eq!(s, 200, "{b}");
    }
    let pool_hash = w.pool_order(10, 100, 1, 3).order_hash(&w.domain).to_string();

    // Published, blocked by price: explained from every side.
    let blocked = w.signed(&w.requester, with(base(&w, w.app, 10), |r| r.workerpoolmaxprice = Nrlc::from_u64(5)));
    let (s, b) = server.publish(&w.requester, &blocked).await;
    assert_eq!(s, 200, "{b}");
    let blocked_hash = blocked.order_hash(&w.domain).to_string();
    let (s, e) = server.get(&format!("/requestorders/{blocked_hash}/explain")).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        (e["kind"].as_str(), e["status"].as_str(), e["matches"].as_bool()),
        (Some("request"), Some("open"), Some(false))
    );
    let first = &e["combinations"][0];
    assert_eq!(codes(first), ["workerpool_price"], "{e}");
    assert_eq!(first["workerpoolorder"]["orderHash"], pool_hash.as_str());
    assert_eq!(first["workerpoolorder"]["price"], 10);
    assert_eq!(first["blockers"][0]["poco"], 5);
    let message = first["blockers"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("workerpool price 10 nRLC") && message.contains("workerpoolmaxprice 5 nRLC"), "{message}");
    let (s, e) = server.get(&format!("/workerpoolorders/{pool_hash}/explain")).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["combinations"][0]["requestorder"]["orderHash"], blocked_hash.as_str());
    assert_eq!(codes(&e["combinations"][0]), ["workerpool_price"]);
    let app_hash = w.app_order(2, 100, 1).order_hash(&w.domain).to_string();
    let (s, e) = server.get(&format!("/apporders/{app_hash}/explain")).await;
    assert_eq!((s, codes(&e["combinations"][0])), (200, vec!["workerpool_price".to_owned()]), "{e}");
    // Not of that kind, not a hash: 404 and 400 with the error body.
    let (s, e) = server.get(&format!("/apporders/{blocked_hash}/explain")).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")));
    let (s, e) = server.get("/apporders/0x12/explain").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));

    // A draft that would match: no blocker; published, it is matched.
    let good = base(&w, w.app, 11);
    let e = draft(&server, "request", &good).await;
    assert_eq!((e["status"].as_str(), e["matches"].as_bool()), (Some("draft"), Some(true)), "{e}");
    assert_eq!(codes(&e["combinations"][0]), Vec::<String>::new());

    // More offers, each blocking in one way: other apps and datasets with restricted orders, workerpool orders
    // restricted in categories of their own.
    let app2 = setup::create_app(d, &owner, "restricted-requester", b"docker.io/x/a:2").await.expect("app");
    let app3 = setup::create_app(d, &owner, "restricted-pool", b"docker.io/x/a:3").await.expect("app");
    let dataset2 =
        setup::create_dataset(d, &owner, "restricted-app", b"/ipfs/d2", B256::repeat_byte(3)).await.expect("dataset");
    let restricted = |o: AnyOrder, f: &dyn Fn(&mut AnyOrder)| {
        let mut o = o;
        f(&mut o);
        w.signed(&w.owner, o)
    };
    let other = w.other.address();
    let offers = [
        restricted(app_order_of(app2, 1, 10, 20), &|o| {
            if let AnyOrder::App(a) = o {
                a.requesterrestrict = other;
            }
        }),
        restricted(app_order_of(app3, 1, 10, 21), &|o| {
            if let AnyOrder::App(a) = o {
                a.workerpoolrestrict = elsewhere;
            }
        }),
        restricted(dataset_order_of(dataset2, 1, 10, 22), &|o| {
            if let AnyOrder::Dataset(x) = o {
                x.apprestrict = elsewhere;
            }
        }),
        restricted(pool_order_of(w.pool, 1, 10, 2, 23), &|o| {
            if let AnyOrder::Workerpool(x) = o {
                x.requesterrestrict = other;
            }
        }),
        restricted(pool_order_of(w.pool, 1, 10, 3, 24), &|o| {
            if let AnyOrder::Workerpool(x) = o {
                x.apprestrict = elsewhere;
            }
        }),
        restricted(pool_order_of(w.pool, 1, 10, 4, 25), &|o| {
            if let AnyOrder::Workerpool(x) = o {
                x.datasetrestrict = elsewhere;
            }
        }),
    ];
    for o in &offers {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{b}");
    }

    let broke = PrivateKeySigner::random().address();
    let mut tag_bit = B256::ZERO;
    tag_bit.0[31] = 2;
    let cases: Vec<(&str, AnyOrder, &str)> = vec![
        ("price", with(base(&w, w.app, 30), |r| r.workerpoolmaxprice = Nrlc::from_u64(9)), "workerpool_price"),
        ("app price", with(base(&w, w.app, 31), |r| r.appmaxprice = Nrlc::from_u64(1)), "app_price"),
        ("tag", with(base(&w, w.app, 32), |r| r.tag = tag_bit), "tag"),
        ("trust", with(base(&w, w.app, 33), |r| r.trust = U256::from(5)), "trust"),
        ("category", with(base(&w, w.app, 34), |r| r.category = U256::from(9)), "category"),
        (
            "request's workerpool",
            with(base(&w, w.app, 35), |r| r.workerpool = elsewhere),
            "request_workerpool_restrict",
        ),
        ("app's requester", base(&w, app2, 36), "app_requester_restrict"),
        ("app's workerpool", base(&w, app3, 37), "app_workerpool_restrict"),
        (
            "dataset's app",
            with(base(&w, w.app, 38), |r| (r.dataset, r.datasetmaxprice) = (dataset2, Nrlc::from_u64(5))),
            "dataset_app_restrict",
        ),
        (
            "dataset price",
            with(base(&w, w.app, 39), |r| (r.dataset, r.datasetmaxprice) = (w.dataset, Nrlc::from_u64(1))),
            "dataset_price",
        ),
        (
            "workerpool's requester",
            with(base(&w, w.app, 40), |r| r.category = U256::from(2)),
            "workerpool_requester_restrict",
        ),
        ("workerpool's app", with(base(&w, w.app, 41), |r| r.category = U256::from(3)), "workerpool_app_restrict"),
        (
            "workerpool's dataset",
            with(base(&w, w.app, 42), |r| r.category = U256::from(4)),
            "workerpool_dataset_restrict",
        ),
        ("no app order", base(&w, elsewhere, 43), "no_app_order"),
        ("no dataset order", with(base(&w, w.app, 44), |r| r.dataset = elsewhere), "no_dataset_order"),
        ("stake", with(base(&w, w.app, 45), |r| (r.requester, r.beneficiary) = (broke, broke)), "stake"),
    ];
    for (reason, order, code) in cases {
        let e = draft(&server, "request", &order).await;
        assert_eq!(e["matches"], false, "{reason}: {e}");
        assert_eq!(codes(&e["combinations"][0]), [code], "{reason}: {e}");
        let message = e["combinations"][0]["blockers"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{reason}: {e}");
    }

    // Volume: once matched in full, the request has nothing left to match.
    let filled = w.signed(&w.requester, base(&w, w.app, 50));
    let (s, b) = server.publish(&w.requester, &filled).await;
    assert_eq!(s, 200, "{b}");
    let filled_hash = filled.order_hash(&w.domain).to_string();
    let e = crate::harness::until_within("the request to be matched", std::time::Duration::from_secs(20), async || {
        let (_, e) = server.get(&format!("/requestorders/{filled_hash}/explain")).await;
        (e["status"] == "filled").then_some(e)
    })
    .await;
    assert_eq!(e["remaining"], 0);
    assert_eq!(codes(&e["combinations"][0]), ["volume"], "{e}");

    // Drafts are validated as publications are (bar the signature), and bounded.
    let (s, b) = server.send(reqwest::Method::POST, "/explain", "", &json!({"kind": "bid", "order": {}})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("bad_request")), "{b}");
    let (s, b) =
        server.send(reqwest::Method::POST, "/explain", "", &json!({"kind": "request", "order": {"app": 1}})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_order")), "{b}");
    let huge = with(base(&w, w.app, 60), |r| r.params = "x".repeat(20_000));
    let (s, b) =
        server.send(reqwest::Method::POST, "/explain", "", &json!({"kind": "request", "order": huge.to_json()})).await;
    assert_eq!((s, b["code"].as_str()), (413, Some("order_too_large")), "{b}");
    let (s, _) = server.get("/explain").await;
    assert_eq!(s, 405);

    server.shutdown().await;
}
