//! The server in-process against a real PostgreSQL and a real anvil: version, health, migrations, errors.

use crate::harness::{anvil, database, root};
use dragon::config::Config;
use dragon::server::{AppState, run};
use serde_json::Value;
use std::net::TcpListener;

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(database_url: String, rpc_url: String) -> Running {
    start_with_hub(database_url, rpc_url, None).await
}

async fn start_with_hub(database_url: String, rpc_url: String, hub: Option<alloy::primitives::Address>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Config { listen: addr, database_url, rpc_url, hub };
    let state = AppState::connect(&config).await.expect("connect store and chain");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, state, async move {
        let _ = rx.await;
    }));
    Running { base: format!("http://{addr}"), stop: Some(tx), task }
}

impl Running {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task").expect("server ran cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_health_against_real_services() {
    let mut chain = anvil();
    let server = start(database().await, chain.url()).await;

    let (status, body) = server.get("/version").await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["chain"]["chainId"], 31337, "anvil's default chain id");
    let latest = dragon::store::MIGRATIONS.last().map(|m| m.0).expect("migrations");
    assert_eq!(body["database"]["schemaVersion"], latest);

    // The chain goes away: health says so with 503, and the server keeps answering.
    chain.stop();
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["chain"]["ok"], false);
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(server.get("/version").await.0, 200);

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_the_configured_hub() {
    let chain = anvil();
    let key = crate::fixtures::KEY0.parse().expect("key");
    let deployment = dragon::chain::deploy::deploy(&chain.url(), key).await.expect("deploy");

    let server = start_with_hub(database().await, chain.url(), Some(deployment.hub)).await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chain"]["hub"], deployment.hub.to_checksum(None));
    server.shutdown().await;

    // A contract that is not the hub (the token) is reported, not trusted.
    let server = start_with_hub(database().await, chain.url(), Some(deployment.token)).await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["chain"]["error"], "hub unreachable");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_get_the_json_error_body() {
    let chain = anvil();
    let server = start(database().await, chain.url()).await;
    let (status, body) = server.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["ok"], false);
    assert_eq!(body["code"], "not_found");
    assert!(body["error"].is_string());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_refuse_a_newer_schema() {
    let url = database().await;
    // Twice: the second start finds everything applied.
    drop(dragon::store::Store::connect(&url).await.expect("first start"));
    let store = dragon::store::Store::connect(&url).await.expect("second start");
    let latest = dragon::store::MIGRATIONS.last().map(|m| m.0).expect("migrations");
    assert_eq!(store.schema_version().await.expect("version"), latest);

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let tables: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(tables, 1);
    client
        .execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", &[&(latest + 1)])
        .await
        .expect("insert");
    let err = dragon::store::Store::connect(&url).await.expect_err("newer schema refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn every_schema_file_is_a_migration() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("schema"))
        .expect("schema dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<String> = dragon::store::MIGRATIONS.iter().map(|m| m.1.to_owned()).collect();
    assert_eq!(files, listed, "schema/ and store::MIGRATIONS disagree");
    for (i, m) in dragon::store::MIGRATIONS.iter().enumerate() {
        assert_eq!(m.0 as usize, i + 1, "versions are 1..n in order");
        assert!(m.1.starts_with(&format!("{:04}_", m.0)), "file name starts with its version");
    }
}

#[test]
fn committed_openapi_document_is_current() {
    let committed = std::fs::read_to_string(root().join("openapi/openapi.json")).expect("openapi/openapi.json exists");
    assert_eq!(
        committed.trim_end(),
        dragon::api::openapi_json().trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}
