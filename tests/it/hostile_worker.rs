//! Strangers against a worker (issue 16, findings 1 and 5), with real components: anvil with Dragon's contracts,
//! a settling exchange, the pool, and the worker.
//!
//! - Hostile requesters name local files, the pool's own API, loopback, private and link-local addresses (cloud
//!   metadata), a trusted server that redirects to the pool's API, too many files, an oversized one, inputs for
//!   an app the worker refuses, and a dataset whose local path is outside the worker's dataset root. Each task
//!   fails with a clear error, and the servers they name count no request.

use crate::harness::{database, until_within as until};
use crate::market::{Server, World, app_order_of, dataset_order_of, request_of};
use crate::pool::{
    Pool, Worker, completed_tasks, deal_of, funded_worker, native_app, unzip_entry, work_dir, worker_config,
};
use crate::settle::settling;
use alloy::primitives::{Address, B256};
use dragon::chain::setup;
use dragon::ids::{DealId, TaskId};
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP/1.1 server on loopback that answers by path and records every path it is asked for.
struct Site {
    host: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Site {
    fn start(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> Site {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = l.local_addr().expect("addr").to_string();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                log.lock().expect("lock").push(path.clone());
                let _ = s.write_all(&answer(&path));
            }
        });
        Site { host, asked }
    }

    /// Requests for paths starting with `prefix`.
    fn hits(&self, prefix: &str) -> usize {
        self.asked.lock().expect("lock").iter().filter(|p| p.starts_with(prefix)).count()
    }

    fn all(&self) -> Vec<String> {
        self.asked.lock().expect("lock").clone()
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn redirect(to: &str) -> Vec<u8> {
    format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
}

fn port_of(base: &str) -> &str {
    base.rsplit_once(':').expect("a port").1
}

fn task_of(deal: &str) -> B256 {
    TaskId::of(DealId(deal.parse().expect("deal id")), 0).0
}

/// The runs of 64 hex digits in `text` (digests), lower-cased.
fn digests_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c.to_ascii_lowercase());
        } else {
            if run.len() == 64 {
                out.push(std::mem::take(&mut run));
            }
            run.clear();
        }
    }
    out
}

/// The worker's input rules of the first test: the trusted data server, small bounds, a dataset root.
fn hostile_inputs_policy(config: &mut dragon::worker::WorkerConfig, trusted: &str, dataset_root: &Path) {
    config.inputs.allow_hosts = vec![trusted.parse().expect("host:port")];
    config.inputs.max_files = 3;
    config.inputs.max_file_bytes = 1 << 20;
    config.inputs.dataset_root = Some(dataset_root.to_path_buf());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requesters_get_nothing_fetched_from_the_worker_s_host_or_network() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let pool_port = port_of(&pool.base).to_owned();
    let (app, app_order) = native_app(&w).await;
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let script = crate::pool::app_script();
    let refused = setup::create_app(&w.deployment, &owner, "not-allowed", script.to_str().expect("utf-8").as_bytes())
        .await
        .expect("app");
    let refused_order = w.signed(&w.owner, app_order_of(refused, 1, 10, 0x81));
    // A server the requesters would like the worker to read for them, on loopback (untrusted).
    let internal = Site::start(|_| ok(b"internal secret\n"));
    let internal_port = port_of(&internal.host).to_owned();
    // The operator's own data server, trusted (--allow-input-host): it serves files, one of them too large for
    // the worker, and redirects one path to the pool's API.
    let pool_status = format!("{}/status", pool.base);
    let trusted = Site::start(move |path| match path {
        "/to-the-pool.txt" => redirect(&pool_status),
        "/big.bin" => ok(&vec![b'x'; 2 << 20]),
        _ => ok(b"honest input\n"),
    });
    let roots = work_dir("hostile-dataset-root");
    std::fs::create_dir_all(&roots).expect("mkdir");
    let mut config = worker_config(&w, &pool, funded_worker(&w).await, app, work_dir("hostile-inputs"));
    config.capacity.cpu = 2;
    hostile_inputs_policy(&mut config, &trusted.host, &roots);
    let worker = Worker::start(config);

    // A dataset registered with a local path outside the worker's dataset root, and a wrong checksum: the old
    // error published the SHA-256 of whatever file it named.
    let sneaky_sum = B256::repeat_byte(0x5e);
    let sneaky = setup::create_dataset(&w.deployment, &owner, "sneaky", b"/proc/self/environ", sneaky_sum)
        .await
        .expect("dataset");
    let sneaky_order = w.signed(&w.owner, dataset_order_of(sneaky, 0, 10, 0x83));

    let t = &trusted.host;
    let files = |urls: &[String]| json!({"iexec_args": "x", "iexec_input_files": urls}).to_string();
    let cases: Vec<(&str, Address, String, String)> = vec![
        ("file URL", app, files(&["file:///proc/self/environ".into()]), "only http(s) URLs are fetched".into()),
        ("absolute path", app, files(&["/proc/self/environ".into()]), "only http(s) URLs are fetched".into()),
        (
            "the pool's API",
            app,
            files(&[format!("http://127.0.0.1:{pool_port}/status")]),
            "127.0.0.1 is not a public address".into(),
        ),
        (
            "localhost",
            app,
            files(&[format!("http://localhost:{internal_port}/x.txt")]),
            "localhost does not resolve to public addresses only".into(),
        ),
        (
            "loopback server",
            app,
            files(&[format!("http://{}/secret.txt", internal.host)]),
            "127.0.0.1 is not a public address".into(),
        ),
        (
            "IPv4-mapped loopback",
            app,
            files(&[format!("http://[::ffff:127.0.0.1]:{internal_port}/secret.txt")]),
            "::ffff:127.0.0.1 is not a public address".into(),
        ),
        (
            "cloud metadata",
            app,
            files(&["http://169.254.169.254/latest/meta-data/iam".into()]),
            "169.254.169.254 is not a public address".into(),
        ),
        ("cloud metadata folder", app, files(&["http://169.254.169.254/latest/meta-data/".into()]), "".into()),
        ("private network", app, files(&["http://10.0.0.1/x".into()]), "10.0.0.1 is not a public address".into()),
        (
            "a trusted server's redirect to the pool's API",
            app,
            files(&[format!("http://{t}/to-the-pool.txt")]),
            format!("redirected to {}/status: 127.0.0.1 is not a public address", pool.base),
        ),
        (
            "too many files",
            app,
            files(&(1..=4).map(|i| format!("http://{t}/too-many-{i}")).collect::<Vec<_>>()),
            "the request names 4 input files; this worker takes at most 3".into(),
        ),
        (
            "an oversized file",
            app,
            files(&[format!("http://{t}/big.bin")]),
            "larger than this worker's limit of 1048576 bytes per file".into(),
        ),
        (
            "an app the worker refuses",
            refused,
            files(&[format!("http://{t}/for-a-refused-app")]),
            format!("app {refused} is not on this pool's allow-list"),
        ),
        (
            "a dataset outside the root",
            app,
            json!({"iexec_args": "x"}).to_string(),
            "outside this worker's dataset root".into(),
        ),
    ];

    let pool_order = w.pool_order(5, 30, 1, 0x82);
    let mut tasks = Vec::new();
    for (i, (name, which, params, _)) in cases.iter().enumerate() {
        let salt = 0x90 + u8::try_from(i).expect("few cases");
        let AnyOrder::Request(mut r) = request_of(w.requester.address(), *which, [1, 5], 1, 1, params, salt) else {
            unreachable!("request_of builds a request")
        };
        let mut orders: Vec<AnyOrder> = Vec::new();
        if i == 0 {
            orders.extend([app_order.clone(), refused_order.clone(), pool_order.clone()]);
        }
        if *name == "a dataset outside the root" {
            r.dataset = sneaky;
            r.datasetmaxprice = Nrlc::from_u64(1);
            orders.push(sneaky_order.clone());
        }
        orders.push(w.signed(&w.requester, AnyOrder::Request(r)));
        let deal = deal_of(&w, &server, &orders.iter().collect::<Vec<_>>()).await;
        tasks.push(task_of(&deal));
    }
    // An honest request beside them, with an input file from the trusted server.
    let honest =
        request_of(w.requester.address(), app, [1, 5], 1, 1, &files(&[format!("http://{t}/honest.txt")]), 0xb0);
    let honest_deal = deal_of(&w, &server, &[&w.signed(&w.requester, honest)]).await;
    let done = completed_tasks(&server, &honest_deal, Duration::from_secs(90)).await;
    let zip =
        reqwest::get(format!("{}/results/{}", pool.base, done[0])).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello x\n");
    assert_eq!(trusted.hits("/honest.txt"), 1, "the honest input was fetched: {:?}", trusted.all());

    let replicates = until("every hostile task ended", Duration::from_secs(90), async || {
        let s = pool.status().await;
        let of: BTreeMap<String, Value> = s["replicates"]
            .as_array()?
            .iter()
            .map(|r| (r["taskid"].as_str().unwrap_or_default().to_owned(), r.clone()))
            .collect();
        let ended = tasks
            .iter()
            .all(|t| of.get(&format!("{t:#x}")).is_some_and(|r| r["status"] == "FAILED" || r["status"] == "COMPLETED"));
        ended.then_some(of)
    })
    .await;
    let mut wrong = Vec::new();
    for ((name, _, params, says), task) in cases.iter().zip(&tasks) {
        let r = &replicates[&format!("{task:#x}")];
        let error = r["error"].as_str().unwrap_or_default();
        if r["status"] != "FAILED" || !error.contains(says.as_str()) {
            wrong
                .push(format!("{name} ({params}): {} with error {error:?}, expected one saying {says:?}", r["status"]));
        }
        if digests_in(error).iter().any(|d| *d != format!("{sneaky_sum:x}")) {
            wrong.push(format!("{name}: the error publishes a digest: {error:?}"));
        }
    }
    assert!(wrong.is_empty(), "hostile requests not refused as they should be:\n{}", wrong.join("\n"));
    assert_eq!(internal.all(), Vec::<String>::new(), "the loopback server was never asked");
    assert_eq!(trusted.hits("/to-the-pool.txt"), 1, "the trusted server was asked, its redirect refused");
    assert_eq!(trusted.hits("/too-many"), 0, "too many files: none fetched");
    assert_eq!(trusted.hits("/for-a-refused-app"), 0, "nothing fetched for an app the worker refuses");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}
