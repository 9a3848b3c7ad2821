//! The server in-process against a real PostgreSQL and a real anvil: version, health, migrations, errors.

use crate::harness::{database, root};
use crate::market::{Server, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_health_against_real_services() {
    let mut w = World::new().await;
    let server = Server::start(w.config(database().await)).await;

    let (status, body) = server.get("/version").await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["chain"]["chainId"], 31337, "anvil's default chain id");
    assert_eq!(body["chain"]["hub"], w.deployment.hub.to_checksum(None));
    assert_eq!(body["matching"], true);
    let latest = dragon::store::MIGRATIONS.last().map(|m| m.0).expect("migrations");
    assert_eq!(body["database"]["schemaVersion"], latest);

    // The chain goes away: once the cached answer (1 s) is stale, health says so with 503, and the server
    // keeps answering.
    w.node.stop();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["chain"]["ok"], false);
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(server.get("/version").await.0, 200);

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_that_is_not_the_hub_is_refused_at_start() {
    let w = World::new().await;
    let mut config = w.config(database().await);
    config.deployment.hub = w.deployment.token;
    let err = dragon::server::AppState::connect(&config).await.expect_err("the token is not a hub");
    assert!(format!("{err:#}").contains("hub"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_get_the_json_error_body() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let (status, body) = server.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["ok"], false);
    assert_eq!(body["code"], "not_found");
    assert!(body["error"].is_string());
    // Another chain's id is refused.
    let resp = reqwest::get(format!("{}/categories?chainId=1", server.base)).await.expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let (status, body) = server.get("/categories").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 5);
    assert_eq!(body["categories"][1]["name"], "S");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_refuse_a_newer_schema() {
    let url = database().await;
    // Twice: the second start finds everything applied.
    let cfg = dragon::store::StoreConfig::default();
    drop(dragon::store::Store::connect(&url, cfg).await.expect("first start"));
    let store = dragon::store::Store::connect(&url, cfg).await.expect("second start");
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
    let err = dragon::store::Store::connect(&url, cfg).await.expect_err("newer schema refused");
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
