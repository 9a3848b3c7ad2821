//! Strangers against a worker (issue 16, findings 1 and 5), with real components: anvil with Dragon's contracts,
//! a settling exchange, the pool, and the worker in process or as the real `dragon worker` binary.
//!
//! - Hostile requesters name local files, the pool's own API, loopback, private and link-local addresses (cloud
//!   metadata), a trusted server that redirects to the pool's API, too many files, an oversized one, inputs for
//!   an app the worker refuses, and a dataset whose local path is outside the worker's dataset root. Each task
//!   fails with a clear error, and the servers they name count no request.
//! - A hostile native app tries every way to read the worker's key (its environment, memory, files) and
//!   publishes what it got. The key is then searched in its result, the pool's status and timeline, the worker's
//!   log and the exchange's answers: for a root worker (the app runs as `nobody`) and for a worker that runs as the
//!   app's own user (only its non-dumpability protects it). An honest requester's `dragon run` completes while the
//!   hostile app runs.
//! - A container reads its own bounds: the memory and CPU of one of the worker's slots, a read-only root, a
//!   bounded `/tmp`, and a kill when it allocates past its memory.

use crate::harness::{database, dragon_bin, root, until_within as until};
use crate::market::{Server, World, app_order_of, dataset_order_of, request_of};
use crate::pool::{
    Pool, Worker, completed_tasks, deal_of, funded_worker, native_app, unzip_entry, work_dir, worker_config,
};
use crate::settle::settling;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::setup;
use dragon::executor::ExecutorConfig;
use dragon::ids::{DealId, TaskId};
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use dragon::pool::protocol::Capacity;
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

// ---------------------------------------------------------------------------------------------------------------
// The worker's key against a hostile native app.

/// What the key looks like wherever it could leak: hex (either case; with 0x or not, the same digits) and raw.
fn leaks_key(hay: &[u8], key: &PrivateKeySigner) -> Option<&'static str> {
    let raw = key.to_bytes();
    let hex = alloy::hex::encode(raw);
    let contains = |needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if contains(hex.as_bytes()) {
        Some("hex")
    } else if contains(hex.to_uppercase().as_bytes()) {
        Some("upper-case hex")
    } else if contains(raw.as_slice()) {
        Some("raw bytes")
    } else {
        None
    }
}

/// Every file of a zip archive, inflated.
fn unzip_all(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip archive");
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).expect("entry");
            let mut b = Vec::new();
            f.read_to_end(&mut b).expect("inflate");
            (f.name().expect("entry name").into_owned(), b)
        })
        .collect()
}

/// `dragon run` as an honest requester would type it, in a folder of its own holding `.dragon/local.json` (the
/// exchange, the chain) and a configuration naming the pool as its result gateway; returns the result.txt it
/// downloaded.
async fn dragon_run(w: &World, server: &Server, pool: &Pool, app: Address, args: &str, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("dragon-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".dragon")).expect("mkdir");
    std::fs::create_dir_all(dir.join("home/.config/dragon")).expect("mkdir");
    let local = json!({
        "api": server.base,
        "rpc": w.node.url(),
        "chainId": w.deployment.chain_id,
        "hub": w.deployment.hub.to_checksum(None),
        "deployment": w.deployment_path,
    });
    std::fs::write(dir.join(".dragon/local.json"), local.to_string()).expect("local.json");
    std::fs::write(dir.join("home/.config/dragon/config.toml"), format!("gateway = \"{}\"\n", pool.base))
        .expect("toml");
    let mut cmd = tokio::process::Command::new(dragon_bin());
    cmd.current_dir(&dir).env("HOME", dir.join("home")).env_remove("XDG_CONFIG_HOME");
    for v in ["DRAGON_API", "DRAGON_RPC_URL", "DRAGON_DEPLOYMENT", "DRAGON_GATEWAY", "DRAGON_CONFIG"] {
        cmd.env_remove(v);
    }
    let out = cmd
        .args(["run", "--app", &app.to_string(), "--max-price", "10", "--args", args, "--out", "runs"])
        .env("DRAGON_PRIVATE_KEY", alloy::hex::encode_prefixed(w.requester.to_bytes()))
        .output()
        .await
        .expect("dragon run");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "dragon run: {said}");
    let task = std::fs::read_dir(dir.join("runs")).expect("runs").next().expect("a task folder").expect("entry");
    std::fs::read_to_string(task.path().join("result.txt")).expect("result.txt")
}

/// The hostile app's run against the real `dragon worker`, as root (its apps then run as `nobody`) or as
/// `nobody` itself (its apps as the same user: only its non-dumpability keeps them from its key).
async fn the_key_stays_out_of_reach(as_root: bool) {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let key = funded_worker(&w).await;
    // The owner vouches for its worker (a private pool believes its two CPUs from the start; a public one gives
    // an unproven worker one slot), so that the honest task runs beside the hostile one.
    let mut config = Pool::config(&w, database().await);
    config.membership = dragon::pool::membership::Membership::Private { allow: [key.address()].into() };
    let pool = Pool::start(config);
    let (honest_app, honest_order) = native_app(&w).await;
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let steal = root().join("tests/fixtures/hostile/steal.sh");
    let hostile = setup::create_app(&w.deployment, &owner, "steal", steal.to_str().expect("utf-8").as_bytes())
        .await
        .expect("app");
    let hostile_order = w.signed(&w.owner, app_order_of(hostile, 1, 10, 0x84));
    let name = if as_root { "key-root" } else { "key-own-user" };
    let dir = work_dir(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let log_path = std::env::temp_dir().join(format!("dragon-hostile-{}-{name}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = if as_root {
        tokio::process::Command::new(dragon_bin())
    } else {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
        let mut c = tokio::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", dragon_bin()]);
        c
    };
    let mut worker = cmd
        .args(["worker", "--pool", &pool.base, "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--executor", "process", "--allow-app", &hostile.to_string(), "--allow-app", &honest_app.to_string()])
        .args(["--cpu", "2", "--poll-ms", "200", "--work-dir"])
        .arg(&dir)
        .env("DRAGON_WORKER_KEY", alloy::hex::encode_prefixed(key.to_bytes()))
        .env("RUST_LOG", "info,dragon=debug")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon worker");
    until("the worker registered with the pool", Duration::from_secs(60), async || {
        let s = pool.status().await;
        (s["workers"][0]["address"] == key.address().to_checksum(None)).then_some(())
    })
    .await;

    // The hostile task: the app loots, then waits for the release file, so that it is running all along the
    // honest run.
    let release = std::env::temp_dir().join(format!("dragon-hostile-{}-{name}.release", std::process::id()));
    let _ = std::fs::remove_file(&release);
    // What the app's stdout.txt links to: the worker must replace the link, not write through it.
    let victim = release.with_extension("release.victim");
    std::fs::write(&victim, "untouched\n").expect("victim");
    let params = json!({"iexec_args": release.display().to_string()}).to_string();
    // Category 0: where `dragon run` asks by default.
    let req = w.signed(&w.requester, request_of(w.requester.address(), hostile, [1, 5], 1, 0, &params, 0x85));
    let pool_order = w.pool_order(5, 10, 0, 0x86);
    let hostile_deal = deal_of(&w, &server, &[&hostile_order, &honest_order, &pool_order, &req]).await;
    let hostile_task = task_of(&hostile_deal);
    crate::pool::replicate_in(&pool, "COMPUTING").await;
    let honest = dragon_run(&w, &server, &pool, honest_app, "honest", name).await;
    assert_eq!(honest, "hello honest\n", "the honest requester got its result while the hostile app ran");
    let s = pool.status().await;
    let still = s["replicates"]
        .as_array()
        .expect("replicates")
        .iter()
        .any(|r| r["taskid"] == format!("{hostile_task:#x}") && r["status"] == "COMPUTING");
    assert!(still, "the hostile app was still running: {s}");
    std::fs::write(&release, b"go").expect("release");
    completed_tasks(&server, &hostile_deal, Duration::from_secs(90)).await;

    // Where the key could show up: the hostile task's result, the pool's and the exchange's answers, the log.
    let zip = reqwest::get(format!("{}/results/{hostile_task:#x}", pool.base)).await.expect("get");
    let zip = zip.bytes().await.expect("zip").to_vec();
    let files = unzip_all(&zip);
    let loot = String::from_utf8_lossy(files.get("loot.txt").expect("the app's loot.txt")).into_owned();
    eprintln!("what the hostile app got ({name}):\n{loot}");
    let mut places: Vec<(String, Vec<u8>)> = vec![("the result archive".into(), zip.clone())];
    places.extend(files.into_iter().map(|(n, b)| (format!("{n} in the result"), b)));
    let get =
        async |url: String| -> Vec<u8> { reqwest::get(&url).await.expect("GET").bytes().await.expect("body").to_vec() };
    for path in ["/status", "/metrics", &format!("/status/tasks/{hostile_task:#x}")] {
        places.push((format!("the pool's {path}"), get(format!("{}{path}", pool.base)).await));
    }
    for path in [
        format!("/deals/{hostile_deal}"),
        format!("/tasks/{hostile_task:#x}"),
        format!("/tasks?deal={hostile_deal}"),
        format!("/pools/{}", w.pool),
        "/health".into(),
        "/metrics".into(),
    ] {
        places.push((format!("the exchange's {path}"), get(format!("{}{path}", server.base)).await));
    }
    let pid = worker.id().expect("pid");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
    let stopped = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await.expect("exit").expect("wait");
    assert!(stopped.success(), "the worker stops cleanly: {stopped}");
    places.push(("the worker's log".into(), std::fs::read(&log_path).expect("log")));
    let leaked: Vec<String> = places
        .iter()
        .filter_map(|(place, bytes)| leaks_key(bytes, &key).map(|how| format!("{place} ({how})")))
        .collect();
    assert!(leaked.is_empty(), "the worker's key leaked to: {leaked:?}\nthe app's loot:\n{loot}");

    // The app did try, and was refused.
    for tried in ["== parent environ", "== parent maps", "== work dir"] {
        assert!(loot.contains(tried), "{tried} in:\n{loot}");
    }
    let environ = loot.split("== parent environ").nth(1).and_then(|s| s.split("== ").next()).unwrap_or_default();
    assert!(environ.contains("Permission denied"), "reading the worker's environment is refused:\n{loot}");
    let whoami = loot.split("== who am I").nth(1).and_then(|s| s.lines().nth(1)).unwrap_or_default();
    assert!(whoami.starts_with("uid=65534"), "the app ran as nobody: {whoami}");
    // Its traps: no link or FIFO in the result, stdout.txt is what it printed, and the linked file is untouched.
    let others: Vec<String> = unzip_all(&zip).into_keys().filter(|n| n != "loot.txt").collect();
    assert_eq!(others, ["computed.json", "stdout.txt"], "links and the FIFO are left out");
    assert_eq!(unzip_entry(&zip, "stdout.txt"), "overwritten by the app\n");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "untouched\n", "not written through the link");
    let _ = std::fs::remove_file(&release);
    let _ = std::fs::remove_file(&victim);
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_app_cannot_read_the_key_of_a_root_worker() {
    the_key_stays_out_of_reach(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_app_cannot_read_the_key_of_a_worker_running_as_its_own_user() {
    the_key_stays_out_of_reach(false).await;
}

// ---------------------------------------------------------------------------------------------------------------
// A container's bounds.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_gets_its_slot_s_memory_and_cpu_a_read_only_root_and_a_bounded_tmp() {
    crate::executor::docker().await;
    let host = tokio::task::spawn_blocking(crate::executor::engine_host).await.expect("engine");
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let owner = setup::Account::new(&w.node.url(), &w.owner).expect("account");
    let app = setup::create_app(&w.deployment, &owner, "bounds", crate::executor::IMAGE.as_bytes()).await.expect("app");
    let app_order = w.signed(&w.owner, app_order_of(app, 1, 10, 0x87));
    let mut config = worker_config(&w, &pool, funded_worker(&w).await, app, work_dir("bounds"));
    config.executor =
        ExecutorConfig::Docker { host: Some(host.to_owned()), network: None, owner: Some("dragon-bounds-test".into()) };
    // Two slots sharing 512 MiB: 256 MiB and one CPU each. /tmp holds 8 MiB; the app tries 16, and 400 MiB of
    // memory.
    config.capacity = Capacity { cpu: 2, memory: 512 << 20, gpu: false };
    let per_slot = config.capacity.memory / 2;
    config.scratch_bytes = 8 << 20;
    config.app_env = vec![
        ("MODE".into(), "limits".into()),
        ("FILL_BYTES".into(), (16u64 << 20).to_string()),
        ("ALLOC_BYTES".into(), (400u64 << 20).to_string()),
    ];
    let worker = Worker::start(config);
    let req = w.signed(&w.requester, request_of(w.requester.address(), app, [1, 5], 1, 1, "bounds", 0x88));
    let deal = deal_of(&w, &server, &[&app_order, &w.pool_order(5, 10, 1, 0x89), &req]).await;
    let tasks = completed_tasks(&server, &deal, Duration::from_secs(90)).await;
    let zip = reqwest::get(format!("{}/results/{}", pool.base, tasks[0])).await.expect("get").bytes().await.expect("z");
    let names: Vec<String> = unzip_all(&zip).into_keys().collect();
    eprintln!("the container's result: {names:?}");
    let read = |name: &str| unzip_entry(&zip, name).trim().to_owned();
    let seen = format!(
        "memory {:?}, cpu {:?}, root {:?} ({:?}), tmp {:?} ({} bytes, {:?}), allocation exit {:?}",
        read("memory.txt"),
        read("cpu.txt"),
        read("root.txt"),
        read("root-error.txt"),
        read("tmp.txt"),
        read("tmp-bytes.txt"),
        read("tmp-error.txt"),
        read("alloc.txt"),
    );
    eprintln!("inside the container: {seen}");
    assert_eq!(read("memory.txt"), per_slot.to_string(), "the memory of one slot: {seen}");
    let cpu: Vec<f64> = read("cpu.txt").split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert!(cpu.len() == 2 && cpu[0] > 0.0 && cpu[0] / cpu[1] == 1.0, "one CPU (quota = period): {seen}");
    assert_eq!(read("root.txt"), "refused", "the root file system is read-only: {seen}");
    assert_eq!(read("tmp.txt"), "refused", "/tmp is bounded: {seen}");
    let tmp: u64 = read("tmp-bytes.txt").parse().expect("a size");
    assert!(tmp <= 8 << 20, "/tmp took no more than its 8 MiB: {seen}");
    assert_eq!(read("alloc.txt"), "137", "allocating past the memory limit is killed (SIGKILL): {seen}");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}
