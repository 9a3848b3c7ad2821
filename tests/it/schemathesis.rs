//! The API's contract: Schemathesis (PyPI, pinned in `tests/schemathesis/requirements.txt`, installed by
//! `scripts/setup.sh`) generates requests from `openapi/openapi.json` for every operation, positive and negative,
//! then follows the document's links in its stateful phase, against a real `dragon serve` (in process, on a real
//! PostgreSQL and an anvil with Dragon's contracts) holding orders of every kind and a deal made on chain. Every
//! check is on (`--checks all`): no 5xx, only documented status codes, content types and bodies, schema-valid
//! requests accepted, schema-violating ones refused, undeclared methods answered 405, writes refused without
//! authentication. The test fails when Schemathesis reports anything, and prints its report.

use crate::harness::{database, root};
use crate::market::{Server, World};
use serde_json::{Value, json};

/// Test cases per operation and phase. 40 keeps the whole run at a few minutes on two cores (see
/// docs/api.md for the figures measured).
const MAX_EXAMPLES: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_openapi_document() {
    let st = root().join("tests/schemathesis/.venv/bin/st");
    assert!(st.exists(), "Schemathesis is not installed: run scripts/setup.sh");
    let w = World::new().await;
    let mut config = w.config(database().await);
    // Schemathesis sends thousands of requests from one address in a few minutes.
    config.limits.per_ip_per_second = 100_000;
    let server = Server::start(config).await;

    // A market with something in it, so that the stateful phase has hashes, deals and categories to follow.
    let app = w.app_order(2, 1_000, 1);
    let dataset = w.dataset_order(1, 1_000, 2);
    let pool = w.pool_order(5, 100, 0, 3);
    for o in [&app, &dataset, &pool] {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s / 100, 2, "{b}");
    }
    // A request that rests (no pool order in its category) and a deal matched on chain by its requester.
    let resting = w.request(&w.requester, 8, 5, 3, 4);
    let (s, b) = server.publish(&w.requester, &resting).await;
    assert_eq!(s / 100, 2, "{b}");
    let direct = w.request(&w.requester, 8, 1, 0, 5);
    w.match_directly(&w.requester, &app, &pool, &direct).await;

    // Writes authenticate with a session of the owner (Dragon's bearer token): generated orders then reach the
    // publication rules instead of stopping at authentication.
    let login = server.login(&w.owner).await;
    let (s, b) = server.send(reqwest::Method::POST, "/sessions", &login, &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let token = b["token"].as_str().expect("token").to_owned();

    // The document Schemathesis reads is the committed one (checked current by `server::`), with this server's
    // chain as chainId's only value.
    let served: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .expect("GET /openapi.json")
        .json()
        .await
        .expect("JSON");
    let committed: Value = serde_json::from_str(&dragon::api::openapi_json()).expect("JSON");
    let any_chain = chain_schema(&committed);
    assert!(any_chain.is_object(), "chainId in the committed document");
    assert_eq!(with_chain(served, &any_chain), committed, "the served document is the committed one");

    let work = tempdir();
    let out = tokio::process::Command::new(&st)
        .current_dir(&work)
        .arg("--config-file")
        .arg(root().join("tests/schemathesis/schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.base), "--url", &server.base])
        // One worker: with two, CPython 3.11's parser (which Hypothesis calls to describe its strategies) is not
        // thread-safe and fails with "AST constructor recursion depth mismatch".
        .args(["--checks", "all", "--max-examples", &MAX_EXAMPLES.to_string(), "--workers", "1"])
        .args(["--seed", "1"])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run Schemathesis");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    let _ = std::fs::remove_dir_all(&work);
    assert!(out.status.success(), "Schemathesis found failures (exit {:?}):\n{report}", out.status.code());
    server.shutdown().await;
}

/// The committed document's schema of chainId (any decimal text).
fn chain_schema(doc: &Value) -> Value {
    doc["paths"]["/deals"]["get"]["parameters"][0]["schema"]["properties"]["chainId"].clone()
}

/// `doc` with every schema of chainId replaced by `schema`.
fn with_chain(mut doc: Value, schema: &Value) -> Value {
    fn walk(v: &mut Value, schema: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(c) = m.get_mut("chainId").filter(|c| c.get("enum").is_some()) {
                    *c = schema.clone();
                }
                m.values_mut().for_each(|x| walk(x, schema));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, schema)),
            _ => {}
        }
    }
    walk(&mut doc, schema);
    doc
}

/// A private working folder: Schemathesis writes its cache into the folder it runs in.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dragon-st-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("create work folder");
    dir
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
