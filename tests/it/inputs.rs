//! A deal with a dataset and an input file, through the exchange, the pool and a worker: the worker fetches the
//! dataset from its multiaddr (a local path, inside the worker's dataset root) and checks it against the SHA-256
//! registered on chain, fetches the input file over HTTP (from a loopback server the worker is told to trust with
//! `allow_hosts`: by default it fetches from public addresses only), and the app reads both from IEXEC_IN. A
//! dataset whose file does not match its checksum never reaches an app: the replicate fails with the reason,
//! which names the expected checksum and not the file's.

use crate::harness::{database, root, until_within as until};
use crate::market::{Server, World, app_order_of, dataset_order_of, request_of};
use crate::pool::{Pool, Worker, completed_tasks, deal_of, funded_worker, work_dir, worker_config};
use crate::settle::settling;
use alloy::primitives::{Address, B256, U256};
use dragon::chain::setup;
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::time::Duration;

/// Serves `body` at any path over HTTP/1.1, on a thread, for the test's lifetime; returns `http://host:port`.
fn serve(body: &'static [u8]) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    format!("http://{addr}")
}

async fn dataset(w: &World, name: &str, file: &std::path::Path, checksum: B256) -> Address {
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    setup::create_dataset(&w.deployment, &owner, name, file.to_str().expect("utf-8").as_bytes(), checksum)
        .await
        .expect("create dataset")
}

fn dataset_order(w: &World, dataset: Address, salt: u8) -> AnyOrder {
    w.signed(&w.owner, dataset_order_of(dataset, 1, 10, salt))
}

fn request_with(w: &World, app: Address, dataset: Address, input: &str, salt: u8) -> AnyOrder {
    let params = json!({"iexec_args": "", "iexec_input_files": [input]}).to_string();
    let AnyOrder::Request(mut r) = request_of(w.requester.address(), app, [1, 5], 1, 1, &params, salt) else {
        unreachable!("request_of builds a request")
    };
    r.dataset = dataset;
    r.datasetmaxprice = Nrlc::from_u64(1);
    w.signed(&w.requester, AnyOrder::Request(r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_and_an_input_file_reach_the_app_and_a_tampered_dataset_does_not() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let script = root().join("tests/fixtures/pool/data-app.sh");
    let app = setup::create_app(&w.deployment, &owner, "data-app", script.to_str().expect("utf-8").as_bytes())
        .await
        .expect("create app");
    let files = work_dir("inputs-files");
    std::fs::create_dir_all(&files).expect("dir");
    let good = files.join("good.txt");
    std::fs::write(&good, "secret data").expect("write");
    let good_ds = dataset(&w, "good", &good, B256::from_slice(&Sha256::digest(b"secret data"))).await;
    let tampered = files.join("tampered.txt");
    std::fs::write(&tampered, "tampered data").expect("write");
    let bad_ds = dataset(&w, "tampered", &tampered, B256::from_slice(&Sha256::digest(b"original data"))).await;
    let server_url = serve(b"input bytes");
    let input = format!("{server_url}/files/input.txt");
    let mut config = worker_config(&w, &pool, funded_worker(&w).await, app, work_dir("inputs"));
    config.inputs.allow_hosts = vec![server_url.trim_start_matches("http://").parse().expect("host:port")];
    config.inputs.dataset_root = Some(files.clone());
    let worker = Worker::start(config);

    let app_order = w.signed(&w.owner, app_order_of(app, 1, 10, 0x61));
    let pool_order = w.pool_order(5, 10, 1, 0x62);
    let good_order = dataset_order(&w, good_ds, 0x63);
    let req = request_with(&w, app, good_ds, &input, 0x64);
    let dealid = deal_of(&w, &server, &[&app_order, &good_order, &pool_order, &req]).await;
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(60)).await;
    let (s, zip) = {
        let r = reqwest::get(format!("{}/results/{}", pool.base, tasks[0])).await.expect("GET result");
        (r.status().as_u16(), r.bytes().await.expect("body"))
    };
    assert_eq!(s, 200);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).expect("zip");
    let mut result = String::new();
    z.by_name("result.txt").expect("result.txt").read_to_string(&mut result).expect("inflate");
    assert_eq!(result, "secret data + input bytes\n", "the app read the dataset and the input file");

    // The tampered dataset: the worker refuses it before running anything, and says why.
    let bad_order = dataset_order(&w, bad_ds, 0x65);
    let req = request_with(&w, app, bad_ds, &input, 0x66);
    let dealid: B256 = deal_of(&w, &server, &[&bad_order, &req]).await.parse().expect("deal id");
    let mut id = [0u8; 64];
    id[..32].copy_from_slice(dealid.as_slice());
    id[32..].copy_from_slice(&U256::ZERO.to_be_bytes::<32>());
    let taskid = alloy::primitives::keccak256(id);
    let failed = until("the replicate FAILED", Duration::from_secs(60), async || {
        let status = pool.status().await;
        status["replicates"]
            .as_array()?
            .iter()
            .find(|r| r["taskid"] == format!("{taskid:#x}") && r["status"] == "FAILED")
            .cloned()
    })
    .await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("does not match the checksum") && error.contains(&format!("{bad_ds:#x}")), "{failed}");
    let actual = format!("{:x}", B256::from_slice(&Sha256::digest(b"tampered data")));
    assert!(!error.contains(&actual), "the file's own digest is not published: {failed}");
    let cached: Vec<_> = std::fs::read_dir(work_dir_path("inputs").join("cache/datasets"))
        .expect("cache")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(cached, [format!("{:x}", B256::from_slice(&Sha256::digest(b"secret data")))], "only the good one");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

/// The folder `work_dir(name)` gave, without clearing it.
fn work_dir_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dragon-pool-{}-{name}", std::process::id()))
}
