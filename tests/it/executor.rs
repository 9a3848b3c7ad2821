//! The executors against real components: native processes, and a private Docker engine that this test binary
//! starts (`tests/fixtures/executor/dockerd.sh`) and shares between its tests. One test app,
//! `tests/fixtures/executor/app.sh`, runs in both, natively and in a busybox image built here with
//! `docker import`; its `MODE` variable picks what it does.
//!
//! The Docker tests fail (they never skip) when `dockerd` is missing: `scripts/setup.sh` installs it.

use crate::harness::root;
use alloy::primitives::{Address, B256, keccak256};
use dragon::executor::docker::{DockerExecutor, OWNER_LABEL, TASK_LABEL};
use dragon::executor::process::ProcessExecutor;
use dragon::executor::result::{package, result_digest};
use dragon::executor::{
    AbortSignal, AppRef, DatasetFile, ExecError, Executor, InputFile, Limits, Outcome, TaskSpec, Workspace, abort_pair,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub(crate) const APP: Address = Address::repeat_byte(0xa1);
pub(crate) const IMAGE: &str = "dragon-test/app:1";

pub(crate) fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/executor").join(name)
}

/// This process's scratch folder; folders of test processes that are gone are removed first.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        sweep_stale("dragon-exec-");
        std::env::temp_dir().join(format!("dragon-exec-{}", std::process::id()))
    })
}

fn sweep_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        // An engine outlives its test process by the few seconds of its shutdown: its own pid file says when.
        let engine = std::fs::read_to_string(entry.path().join("pid")).unwrap_or_default();
        let engine_alive = !engine.trim().is_empty() && Path::new("/proc").join(engine.trim()).exists();
        if !Path::new("/proc").join(pid).exists() && !engine_alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A task's folder, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = scratch_root().join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static NEXT_TASK: AtomicU32 = AtomicU32::new(0);

pub(crate) fn task(mode: &str, multiaddr: &str) -> TaskSpec {
    TaskSpec {
        // Unique per call: the Docker tests find their containers by task id.
        task_id: keccak256(format!("task {mode} {} {}", std::process::id(), NEXT_TASK.fetch_add(1, Ordering::Relaxed))),
        deal_id: B256::repeat_byte(0xde),
        task_index: 2,
        bot_first: 1,
        bot_size: 3,
        app: AppRef { address: APP, multiaddr: multiaddr.to_owned() },
        args: String::new(),
        input_files: Vec::new(),
        dataset: None,
        // The second entry must not override what the executor sets.
        env: vec![("MODE".into(), mode.into()), ("IEXEC_TASK_ID".into(), "spoofed".into())],
        limits: Limits { max_duration: Duration::from_secs(20), ..Limits::default() },
    }
}

pub(crate) fn native(mode: &str) -> TaskSpec {
    task(mode, fixture("app.sh").to_str().expect("utf-8 path"))
}

/// Adds two input files and a dataset, placed under `s`.
pub(crate) fn with_inputs(mut t: TaskSpec, s: &Scratch) -> TaskSpec {
    let src = s.0.join("fetched");
    std::fs::create_dir_all(&src).expect("mkdir");
    for (name, body) in [("a.txt", "first\n"), ("b.txt", "second\n")] {
        std::fs::write(src.join(name), body).expect("write input");
        t.input_files.push(InputFile { name: name.into(), path: src.join(name) });
    }
    let ds = Address::repeat_byte(0xda);
    std::fs::write(src.join("ds"), "dataset body\n").expect("write dataset");
    t.dataset = Some(DatasetFile { address: ds, name: ds.to_string(), path: src.join("ds") });
    t.args = r#"one 'two words' "three"  '' "it's""#.into();
    t
}

pub(crate) fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Checks what `app.sh` in `echo` mode saw, with `in_dir`/`out_dir` as the app sees them.
pub(crate) fn assert_echo(t: &TaskSpec, o: &Outcome, in_dir: &str, out_dir: &str) {
    assert_eq!(o.exit_code, 0, "stderr: {}", o.stderr.text());
    let env: BTreeMap<String, String> = read(&o.out_dir.join("env.txt"))
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let ds = t.dataset.as_ref().expect("dataset");
    let want = [
        ("IEXEC_TASK_ID", t.task_id.to_string()),
        ("IEXEC_DEAL_ID", t.deal_id.to_string()),
        ("IEXEC_IN", in_dir.to_owned()),
        ("IEXEC_OUT", out_dir.to_owned()),
        ("IEXEC_INPUT_FILES_FOLDER", in_dir.to_owned()),
        ("IEXEC_INPUT_FILES_NUMBER", "2".to_owned()),
        ("IEXEC_NB_INPUT_FILES", "2".to_owned()),
        ("IEXEC_INPUT_FILE_NAME_1", "a.txt".to_owned()),
        ("IEXEC_INPUT_FILE_NAME_2", "b.txt".to_owned()),
        ("IEXEC_DATASET_ADDRESS", ds.address.to_string()),
        ("IEXEC_DATASET_FILENAME", ds.name.clone()),
        ("IEXEC_BOT_SIZE", "3".to_owned()),
        ("IEXEC_BOT_FIRST_INDEX", "1".to_owned()),
        ("IEXEC_BOT_TASK_INDEX", "2".to_owned()),
        ("IEXEC_TASK_INDEX", "2".to_owned()),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k), Some(&v), "{k} in {env:?}");
    }
    assert_eq!(read(&o.out_dir.join("args.txt")), "[one]\n[two words]\n[three]\n[]\n[it's]\n");
    assert_eq!(read(&o.out_dir.join("inputs.txt")), "first\nsecond\n");
    assert_eq!(read(&o.out_dir.join("dataset.txt")), "dataset body\n");
    assert_eq!(o.stdout.text(), "to stdout\n");
    assert_eq!(o.stderr.text(), "to stderr\n");
    // computed.json names the result folder; the digest is iExec's folder rule over it.
    let computed = o.computed.as_ref().expect("computed.json read back");
    assert_eq!(computed.deterministic_output_path.as_deref(), Some(format!("{out_dir}/result").as_str()));
    let answer = format!("answer of {}\n", t.task_id);
    assert_eq!(read(&o.out_dir.join("result/answer.txt")), answer);
    let want_digest = keccak256(Sha256::digest(answer.as_bytes()));
    let packaged = package(&o.out_dir, Some(computed), false).expect("package");
    assert_eq!(packaged.digest, want_digest);
    let zip = zip::ZipArchive::new(std::io::Cursor::new(packaged.zip)).expect("a zip");
    let names: Vec<String> = zip.file_names().map(|n| n.expect("entry name").into_owned()).collect();
    for n in ["computed.json", "result/answer.txt", "env.txt"] {
        assert!(names.iter().any(|m| m == n), "{n} in {names:?}");
    }
}

/// Whether `pid` is a live process (a zombie is not: it is dead and waits for its parent).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|st| st != "Z" && st != "X")
    })
}

/// Waits for the pid files `names` that the app writes into `out`, and returns the pids.
pub(crate) async fn pids(out: &Path, names: &[&str]) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let got: Vec<Option<u32>> = names
            .iter()
            .map(|n| std::fs::read_to_string(out.join(n)).ok().and_then(|s| s.trim().parse().ok()))
            .collect();
        if got.iter().all(Option::is_some) {
            return got.into_iter().flatten().collect();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the app did not write {names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn assert_all_dead(pids: &[u32]) {
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still alive: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------------------------
// process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_app_gets_iexec_env_args_inputs_and_its_outputs_are_packaged() {
    let s = Scratch::new();
    let t = with_inputs(native("echo"), &s);
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let o = ProcessExecutor::new([APP]).run(&t, &ws, AbortSignal::never()).await.expect("run");
    assert_echo(&t, &o, ws.in_dir.to_str().expect("utf-8"), ws.out_dir.to_str().expect("utf-8"));
    assert_eq!(read(&o.out_dir.join("pwd.txt")).trim(), ws.root.to_str().expect("utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_refuses_apps_off_the_allow_list() {
    let s = Scratch::new();
    let t = native("echo");
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let other = Address::repeat_byte(0x0b);
    let r = ProcessExecutor::new([other]).run(&t, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::NotAllowed { app }) if app == APP), "{r:?}");
    assert!(std::fs::read_dir(&ws.out_dir).expect("out").next().is_none(), "nothing ran");
    let mut relative = t.clone();
    relative.app.multiaddr = "tests/fixtures/executor/app.sh".into();
    let r = ProcessExecutor::new([APP]).run(&relative, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::BadApp { .. })), "a native app is named by an absolute path: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_timeout_kills_the_whole_tree() {
    let s = Scratch::new();
    let mut t = native("tree");
    t.limits.max_duration = Duration::from_secs(1);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let exec = ProcessExecutor::new([APP]);
    let start = Instant::now();
    let (r, pids) =
        tokio::join!(exec.run(&t, &ws, AbortSignal::never()), pids(&ws.out_dir, &["self", "child", "grandchild"]));
    assert!(matches!(r, Err(ExecError::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_all_dead(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_abort_kills_the_whole_tree() {
    let s = Scratch::new();
    let t = native("tree");
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let exec = ProcessExecutor::new([APP]);
    let (handle, signal) = abort_pair();
    let abort_when_started = async {
        let p = pids(&ws.out_dir, &["self", "child", "grandchild"]).await;
        handle.abort();
        p
    };
    let (r, pids) = tokio::join!(exec.run(&t, &ws, signal), abort_when_started);
    assert!(matches!(r, Err(ExecError::Aborted)), "{r:?}");
    assert_all_dead(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_background_children_do_not_outlive_their_task() {
    let s = Scratch::new();
    let t = native("daemon");
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let o = ProcessExecutor::new([APP]).run(&t, &ws, AbortSignal::never()).await.expect("run");
    assert_eq!(o.exit_code, 0);
    assert_all_dead(&pids(&ws.out_dir, &["child"]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_output_limits_are_enforced() {
    let exec = ProcessExecutor::new([APP]);
    for (mode, what) in [("fill", "output folder"), ("flood", "stdout and stderr")] {
        let s = Scratch::new();
        let mut t = native(mode);
        t.limits.max_output_bytes = 1_000_000;
        let ws = Workspace::prepare(&s.0, &t).expect("workspace");
        let start = Instant::now();
        let r = exec.run(&t, &ws, AbortSignal::never()).await;
        assert!(matches!(r, Err(ExecError::OutputTooLarge { what: w, .. }) if w == what), "{mode}: {r:?}");
        assert!(start.elapsed() < Duration::from_secs(5), "{mode} took {:?}", start.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_exit_code_and_logs_are_reported() {
    let s = Scratch::new();
    let t = native("fail");
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let o = ProcessExecutor::new([APP]).run(&t, &ws, AbortSignal::never()).await.expect("an outcome");
    assert_eq!(o.exit_code, 3);
    assert_eq!(o.stderr.text(), "failing on purpose\n");
    assert!(o.computed.is_none());
    assert!(result_digest(&o.out_dir, o.computed.as_ref(), false).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_dropping_a_run_kills_the_tree() {
    let s = Scratch::new();
    let t = native("tree");
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let exec = ProcessExecutor::new([APP]);
    let run = exec.run(&t, &ws, AbortSignal::never());
    // The worker gave up on the task without aborting it (its own task was cancelled, say).
    let (r, pids) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(1500), run),
        pids(&ws.out_dir, &["self", "child", "grandchild"])
    );
    assert!(r.is_err(), "still running when dropped: {r:?}");
    assert_all_dead(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_task_overhead() {
    let exec = ProcessExecutor::new([APP]);
    let mut times = Vec::new();
    for _ in 0..15 {
        let s = Scratch::new();
        let t = native("quick");
        let start = Instant::now();
        let ws = Workspace::prepare(&s.0, &t).expect("workspace");
        let o = exec.run(&t, &ws, AbortSignal::never()).await.expect("run");
        result_digest(&o.out_dir, o.computed.as_ref(), false).expect("digest");
        times.push(start.elapsed());
    }
    eprintln!("process executor: one trivial task (workspace, run, digest): median {:.1} ms", median(times));
}

// ---------------------------------------------------------------------------------------------------------------
// docker

/// The socket URL of this test binary's Docker engine, started on first use; it stops with the process.
pub(crate) fn engine_host() -> &'static str {
    static ENGINE: OnceLock<Result<String, String>> = OnceLock::new();
    match ENGINE.get_or_init(start_engine) {
        Ok(host) => host,
        Err(e) => panic!("{e}"),
    }
}

fn start_engine() -> Result<String, String> {
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("dockerd").is_file()));
    if !on_path {
        return Err("dockerd is not installed: run scripts/setup.sh (it installs Debian's docker.io and \
                    busybox-static); the docker executor tests need a real engine"
            .into());
    }
    sweep_stale("dragon-docker-");
    let dir = std::env::temp_dir().join(format!("dragon-docker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log_path = dir.join("dockerd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel();
    let script = fixture("dockerd.sh");
    let engine_dir = dir.clone();
    std::thread::Builder::new()
        .name("dockerd-owner".into())
        .spawn(move || {
            // The engine dies with this thread (pdeathsig), which lives as long as the engine: as the process.
            let spawned = std::process::Command::new("setpriv")
                .args(["--pdeathsig=TERM", "--", "bash"])
                .arg(&script)
                .arg(&engine_dir)
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().map_or(std::process::Stdio::null(), Into::into))
                .stderr(log)
                .spawn();
            match spawned {
                Ok(mut child) => {
                    let status = child.wait();
                    let _ = tx.send(format!("the engine exited: {status:?}"));
                }
                Err(e) => {
                    let _ = tx.send(format!("could not start dockerd.sh: {e}"));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let socket = dir.join("docker.sock");
    let start = Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(format!("unix://{}", socket.display()));
        }
        if let Ok(why) = rx.try_recv() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(format!("{why}; last lines of {}:\n{}", log_path.display(), tail.join("\n")));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("dockerd did not listen within 60 s; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client of the test engine, with the test image imported (once per process).
pub(crate) async fn docker() -> DockerExecutor {
    static IMPORTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let host = tokio::task::spawn_blocking(engine_host).await.expect("engine start-up");
    let d = DockerExecutor::connect(host).await.expect("connect to the test engine");
    IMPORTED
        .get_or_init(|| async {
            let out = tokio::process::Command::new("bash")
                .arg(fixture("rootfs.sh"))
                .arg(fixture("app.sh"))
                .output()
                .await
                .expect("run rootfs.sh");
            assert!(out.status.success(), "rootfs.sh: {}", String::from_utf8_lossy(&out.stderr));
            d.import_rootfs(out.stdout, IMAGE, &[r#"ENTRYPOINT ["/bin/sh", "/app.sh"]"#]).await.expect("import image");
        })
        .await;
    d
}

/// The containers of `task` on the engine, stopped ones included.
async fn containers_of(d: &DockerExecutor, task: &TaskSpec) -> Vec<bollard::models::ContainerSummary> {
    let label = format!("{TASK_LABEL}={}", task.task_id);
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    d.client().list_containers(Some(opts)).await.expect("list containers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_app_gets_iexec_env_args_inputs_and_the_container_is_removed() {
    let d = docker().await;
    let s = Scratch::new();
    // The multiaddr as iExec apps usually give it, with the registry.
    let t = with_inputs(task("echo", &format!("docker.io/{IMAGE}")), &s);
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let o = d.run(&t, &ws, AbortSignal::never()).await.expect("run");
    assert_echo(&t, &o, "/iexec_in", "/iexec_out");
    assert!(containers_of(&d, &t).await.is_empty(), "the container is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_app_has_no_network() {
    let d = docker().await;
    let s = Scratch::new();
    let t = task("net", IMAGE);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let o = d.run(&t, &ws, AbortSignal::never()).await.expect("run");
    assert_eq!(o.exit_code, 0, "{}", o.stderr.text());
    let links = read(&ws.out_dir.join("links.txt"));
    let names: Vec<&str> = links
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "interfaces: {links}");
    assert_eq!(read(&ws.out_dir.join("net.txt")).trim(), "unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_limits_are_set_and_abort_removes_the_container() {
    let d = docker().await;
    let s = Scratch::new();
    let mut t = task("tree", IMAGE);
    t.limits.memory_bytes = Some(64 << 20);
    t.limits.milli_cpus = Some(500);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let (handle, signal) = abort_pair();
    let inspect_then_abort = async {
        let start = Instant::now();
        let id = loop {
            let running = containers_of(&d, &t)
                .await
                .into_iter()
                .find(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "running"));
            if let Some(id) = running.and_then(|c| c.id) {
                break id;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the container did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let info = d.client().inspect_container(&id, None).await.expect("inspect");
        handle.abort();
        info
    };
    let (r, info) = tokio::join!(d.run(&t, &ws, signal), inspect_then_abort);
    assert!(matches!(r, Err(ExecError::Aborted)), "{r:?}");
    let hc = info.host_config.expect("host config");
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.memory_swap, Some(64 << 20));
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert!(hc.pids_limit.is_some_and(|p| p > 0));
    assert_eq!(hc.readonly_rootfs, Some(true), "the image's file system is read-only");
    let tmpfs = hc.tmpfs.unwrap_or_default();
    assert_eq!(
        tmpfs.get("/tmp").map(String::as_str),
        Some(format!("rw,nosuid,nodev,size={}", t.limits.scratch_bytes).as_str()),
        "a bounded /tmp: {tmpfs:?}"
    );
    let binds = hc.binds.unwrap_or_default();
    assert!(
        binds.iter().any(|b| b.ends_with(":/iexec_in:ro")) && binds.iter().any(|b| b.ends_with(":/iexec_out:rw")),
        "{binds:?}"
    );
    assert!(containers_of(&d, &t).await.is_empty(), "the aborted container is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_timeout_kills_and_removes_the_container() {
    let d = docker().await;
    let s = Scratch::new();
    let mut t = task("tree", IMAGE);
    t.limits.max_duration = Duration::from_secs(2);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let start = Instant::now();
    let r = d.run(&t, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    // The app's processes were in the container: it wrote their pids, as the container saw them.
    assert!(ws.out_dir.join("grandchild").exists());
    assert!(containers_of(&d, &t).await.is_empty(), "the timed-out container is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_exit_code_output_and_memory_limits_and_missing_image() {
    let d = docker().await;
    let s = Scratch::new();
    let t = task("fail", IMAGE);
    let ws = Workspace::prepare(&s.0.join("fail"), &t).expect("workspace");
    let o = d.run(&t, &ws, AbortSignal::never()).await.expect("an outcome");
    assert_eq!(o.exit_code, 3);
    assert_eq!(o.stderr.text(), "failing on purpose\n");

    let mut t = task("flood", IMAGE);
    t.limits.max_output_bytes = 1_000_000;
    let ws = Workspace::prepare(&s.0.join("flood"), &t).expect("workspace");
    let start = Instant::now();
    let r = d.run(&t, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::OutputTooLarge { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(10), "flood stopped after {:?}", start.elapsed());
    assert!(containers_of(&d, &t).await.is_empty(), "the flooding container is removed");

    let mut t = task("oom", IMAGE);
    t.limits.memory_bytes = Some(64 << 20);
    let ws = Workspace::prepare(&s.0.join("oom"), &t).expect("workspace");
    let o = d.run(&t, &ws, AbortSignal::never()).await.expect("an outcome");
    // The memory cgroup kills dd (SIGKILL: 128 + 9), and `set -e` makes that the script's exit.
    assert_eq!(o.exit_code, 137, "{o:?}");
    assert!(!ws.out_dir.join("survived").exists());

    let t = task("echo", "dragon-test/absent:1");
    let ws = Workspace::prepare(&s.0.join("absent"), &t).expect("workspace");
    let r = d.run(&t, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::ImageMissing { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_leftovers_of_a_crashed_worker_are_removed_and_only_its_own() {
    let d = docker().await;
    let mine = d.clone().with_owner(&format!("crashed-{}", std::process::id()));
    let theirs = d.clone().with_owner(&format!("other-{}", std::process::id()));
    // A leftover: a container created with the executor's labels, as a worker killed mid-task leaves it.
    let t = task("echo", IMAGE);
    let create = |owner: &str| bollard::models::ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        labels: Some(HashMap::from([
            (TASK_LABEL.to_owned(), t.task_id.to_string()),
            (OWNER_LABEL.to_owned(), owner.to_owned()),
        ])),
        ..Default::default()
    };
    for owner in [format!("crashed-{}", std::process::id()), format!("other-{}", std::process::id())] {
        d.client()
            .create_container(None::<bollard::query_parameters::CreateContainerOptions>, create(&owner))
            .await
            .expect("create");
    }
    assert_eq!(containers_of(&d, &t).await.len(), 2);
    assert_eq!(mine.remove_leftovers().await.expect("sweep"), 1);
    assert_eq!(containers_of(&d, &t).await.len(), 1, "the other worker's container stays");
    assert_eq!(theirs.remove_leftovers().await.expect("sweep"), 1);
    assert!(containers_of(&d, &t).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_dropping_a_run_removes_its_container() {
    let d = docker().await;
    let s = Scratch::new();
    let t = task("tree", IMAGE);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let r = tokio::time::timeout(Duration::from_secs(2), d.run(&t, &ws, AbortSignal::never())).await;
    assert!(r.is_err(), "still running when dropped: {r:?}");
    assert!(ws.out_dir.join("grandchild").exists(), "the app ran");
    let start = Instant::now();
    while !containers_of(&d, &t).await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "the dropped run's container is still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runs_outlast_the_api_request_timeout() {
    // The run's wait and attach streams are long requests: the per-request timeout must not cut them. (2 s, not
    // less: the short requests around a run must fit in it on a loaded machine.)
    let d = docker().await.with_api_timeout(Duration::from_secs(2));
    let s = Scratch::new();
    let t = task("slow", IMAGE);
    let ws = Workspace::prepare(&s.0, &t).expect("workspace");
    let o = d.run(&t, &ws, AbortSignal::never()).await.expect("a run of 3 s with a 2 s request timeout");
    assert_eq!(o.exit_code, 0);
    assert!(o.duration >= Duration::from_secs(3));
    assert!(o.computed.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_task_overhead() {
    let d = docker().await;
    let mut times = Vec::new();
    for _ in 0..7 {
        let s = Scratch::new();
        let t = task("quick", IMAGE);
        let start = Instant::now();
        let ws = Workspace::prepare(&s.0, &t).expect("workspace");
        let o = d.run(&t, &ws, AbortSignal::never()).await.expect("run");
        result_digest(&o.out_dir, o.computed.as_ref(), false).expect("digest");
        times.push(start.elapsed());
    }
    eprintln!(
        "docker executor: one trivial task (workspace, container run and removal, digest): median {:.1} ms",
        median(times)
    );
}
