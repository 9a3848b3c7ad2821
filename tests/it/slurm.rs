//! The `slurm` executor against a real one-node cluster on localhost: munged, slurmctld and slurmd from Debian's
//! `munge` and `slurm-wlm`, started once per test binary by `tests/fixtures/slurm/cluster.sh` (its own munge key
//! and socket, its own slurm.conf, state and spool in a temporary folder, free ports) and shared by these tests.
//! The apps are the executor tests' `app.sh` and the pool tests' `app.sh`, run as native programs inside the jobs.
//!
//! The tests fail (they never skip) when Slurm or munge is missing: `scripts/setup.sh` installs them.

use crate::executor::{APP, Scratch, assert_all_dead, assert_echo, native, pids, read, with_inputs};
use crate::harness::{database, dragon_bin, root, until_within as until};
use crate::market::{Server, World, provider};
use crate::pool::{
    Pool, Worker, completed_tasks, deal_of, funded_worker, native_app, pool_completed, replicate_in, request,
    unzip_entry, work_dir, worker_config,
};
use crate::settle::settling;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::executor::slurm::{JobRecord, SlurmExecutor, SlurmSettings};
use dragon::executor::{AbortSignal, AppUser, ExecError, Executor, ExecutorConfig, TaskSpec, Workspace, abort_pair};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// The test cluster: its folder and configuration.
pub(crate) struct Cluster {
    pub(crate) conf: PathBuf,
}

/// The cluster of this test process, started at the first call. Its daemons run under `setpriv --pdeathsig` from
/// a thread parked for the life of the process, so they stop with it whatever the outcome (the script cancels the
/// jobs left before it stops them); folders of earlier test processes that are gone are removed first.
pub(crate) fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start_cluster) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn start_cluster() -> Result<Cluster, String> {
    sweep_stale("dragon-slurm-");
    let dir = std::env::temp_dir().join(format!("dragon-slurm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let log_path = dir.join("cluster.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let port = || dragon::local::free_port().map_err(|e| e.to_string());
    let (ctld, slurmd) = (port()?, port()?);
    let script = root().join("tests/fixtures/slurm/cluster.sh");
    let cluster_dir = dir.clone();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("slurm-owner".into())
        .spawn(move || {
            let spawned = std::process::Command::new("setpriv")
                .args(["--pdeathsig=TERM", "--", "bash"])
                .arg(&script)
                .arg(&cluster_dir)
                .args([ctld.to_string(), slurmd.to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().map_or(std::process::Stdio::null(), Into::into))
                .stderr(log)
                .spawn();
            let _ = tx.send(match spawned {
                // The cluster dies with this thread (pdeathsig): it waits for the script as long as it runs.
                Ok(mut child) => format!("the cluster exited: {:?}", child.wait()),
                Err(e) => format!("could not start cluster.sh: {e}"),
            });
        })
        .map_err(|e| e.to_string())?;
    let conf = dir.join("slurm.conf");
    let start = Instant::now();
    loop {
        if let Ok(why) = rx.try_recv() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("{why}; its log:\n{log}"));
        }
        if conf.exists() {
            let out = std::process::Command::new("sinfo")
                .args(["--noheader", "--nodes=localhost", "--format=%t"])
                .env("SLURM_CONF", &conf)
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                probe(&conf, &dir)?;
                return Ok(Cluster { conf });
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the test Slurm cluster did not show an idle node within 60 s; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs one trivial job to its end: a controller that just started holds its first jobs pending for a few
/// seconds, which would count in the first test's time rather than the cluster's start.
fn probe(conf: &Path, dir: &Path) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<String, String> {
        let o = std::process::Command::new(args[0])
            .args(&args[1..])
            .env("SLURM_CONF", conf)
            .output()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let chdir = format!("--chdir={}", dir.display());
    let output = format!("--output={}", dir.join("probe.log").display());
    let job = run(&["sbatch", "--parsable", "--job-name=probe", &chdir, &output, "--wrap=true"])?;
    let start = Instant::now();
    while !run(&["scontrol", "--oneliner", "show", "job", &job])?.contains("JobState=COMPLETED") {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("the probe job {job:?} of the test Slurm cluster did not complete within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn sweep_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs a Slurm client command against the test cluster; its stdout.
fn slurm(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env("SLURM_CONF", &cluster().conf)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The jobs of the task the controller knows, in any state and of any worker: `(id, state)`.
fn jobs_of(task_id: B256) -> Vec<(u64, String)> {
    let prefix = format!("dragon-{task_id:#x}-");
    slurm("squeue", &["--noheader", "--states=all", "--format=%i %T %j"])
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (id, st, name) = (f.next()?.parse().ok()?, f.next()?, f.next()?);
            name.starts_with(&prefix).then(|| (id, st.to_owned()))
        })
        .collect()
}

/// Whether the job is still pending, running or completing.
fn live(job: u64) -> bool {
    !slurm("squeue", &["--noheader", "--format=%T", &format!("--jobs={job}")]).is_empty()
}

fn settings(jobs: &Path) -> SlurmSettings {
    let mut s = SlurmSettings::new(jobs.to_path_buf());
    s.partition = Some("dragon".into());
    s.slurm_conf = Some(cluster().conf.clone());
    s.poll = Duration::from_millis(200);
    s
}

/// An executor on the test cluster whose jobs run as `nobody`, its records under `s`.
fn executor(s: &Scratch) -> SlurmExecutor {
    SlurmExecutor::new([APP], settings(&s.0.join("jobs"))).with_user(AppUser::NOBODY)
}

/// Waits until the task's job runs; its id.
async fn running_job(exec: &SlurmExecutor, task_id: B256) -> u64 {
    until("the task's job RUNNING", Duration::from_secs(30), async || {
        let job = exec.record(task_id).ok()??.job_id?;
        jobs_of(task_id).iter().any(|(id, st)| *id == job && st == "RUNNING").then_some(job)
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------------
// The executor

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_job_gets_iexec_env_args_inputs_and_returns_its_output() {
    let s = Scratch::new();
    let t = with_inputs(native("echo"), &s);
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let exec = executor(&s);
    let start = Instant::now();
    let o = exec.run(&t, &ws, AbortSignal::never()).await.expect("run");
    eprintln!("slurm executor: one task (sbatch to collected) {:?}", start.elapsed());
    assert_echo(&t, &o, ws.in_dir.to_str().expect("utf-8"), ws.out_dir.to_str().expect("utf-8"));
    assert_eq!(read(&o.out_dir.join("pwd.txt")).trim(), ws.root.to_str().expect("utf-8"));
    let job = exec.record(t.task_id).expect("record").and_then(|r| r.job_id).expect("a job id recorded");
    assert_eq!(jobs_of(t.task_id), [(job, "COMPLETED".to_owned())]);
    let user = slurm("squeue", &["--noheader", "--states=all", "--format=%u", &format!("--jobs={job}")]);
    assert_eq!(user, "nobody", "the job ran as the app user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_failing_app_gives_its_exit_code_and_logs() {
    let s = Scratch::new();
    let t = native("fail");
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let o = executor(&s).run(&t, &ws, AbortSignal::never()).await.expect("an outcome");
    assert_eq!(o.exit_code, 3);
    assert_eq!(o.stderr.text(), "failing on purpose\n");
    assert!(o.computed.is_none());
    assert_eq!(jobs_of(t.task_id).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_time_limit_cancels_the_job_and_its_tree() {
    let s = Scratch::new();
    let mut t = native("tree");
    t.limits.max_duration = Duration::from_secs(2);
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let exec = executor(&s);
    let start = Instant::now();
    let (r, pids) =
        tokio::join!(exec.run(&t, &ws, AbortSignal::never()), pids(&ws.out_dir, &["self", "child", "grandchild"]));
    assert!(matches!(r, Err(ExecError::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(15), "took {:?}", start.elapsed());
    let jobs = jobs_of(t.task_id);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, "CANCELLED", "{jobs:?}");
    assert!(!live(jobs[0].0));
    assert_all_dead(&pids).await;
    assert!(exec.record(t.task_id).expect("record").is_none(), "forgotten: a new run submits a new job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_abort_cancels_the_job() {
    let s = Scratch::new();
    let t = native("tree");
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let exec = executor(&s);
    let (handle, signal) = abort_pair();
    let abort_when_started = async {
        let p = pids(&ws.out_dir, &["self", "child", "grandchild"]).await;
        handle.abort();
        p
    };
    let (r, pids) = tokio::join!(exec.run(&t, &ws, signal), abort_when_started);
    assert!(matches!(r, Err(ExecError::Aborted)), "{r:?}");
    let jobs = jobs_of(t.task_id);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(!live(jobs[0].0), "gone from squeue's live jobs: {jobs:?}");
    assert_all_dead(&pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_output_bounds_cancel_the_job() {
    let exec_scratch = Scratch::new();
    let exec = executor(&exec_scratch);
    for (mode, what) in [("fill", "output folder"), ("flood", "stdout and stderr")] {
        let s = Scratch::new();
        let mut t = native(mode);
        t.limits.max_output_bytes = 1_000_000;
        let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
        let start = Instant::now();
        let r = exec.run(&t, &ws, AbortSignal::never()).await;
        assert!(matches!(r, Err(ExecError::OutputTooLarge { what: w, .. }) if w == what), "{mode}: {r:?}");
        assert!(start.elapsed() < Duration::from_secs(15), "{mode} took {:?}", start.elapsed());
        let jobs = jobs_of(t.task_id);
        assert!(jobs.len() == 1 && !live(jobs[0].0), "{mode}: {jobs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_refuses_apps_off_the_allow_list_and_paths_slurm_would_expand() {
    let s = Scratch::new();
    let t = native("echo");
    let ws = Workspace::prepare(&s.0.join("task"), &t).expect("workspace");
    let other = SlurmExecutor::new([Address::repeat_byte(0x0b)], settings(&s.0.join("jobs")));
    let r = other.run(&t, &ws, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::NotAllowed { .. })), "{r:?}");
    let odd = Workspace::prepare(&s.0.join("100%j"), &t).expect("workspace");
    let r = executor(&s).run(&t, &odd, AbortSignal::never()).await;
    assert!(matches!(r, Err(ExecError::Config(_))), "{r:?}");
    assert!(jobs_of(t.task_id).is_empty(), "nothing was submitted");
    assert!(executor(&s).record(t.task_id).expect("record").is_none(), "nor meant to be");
}

/// Two workers replicating one task on one cluster (two records folders): each gets a job of its own, and reads
/// its own output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_two_workers_replicating_a_task_each_run_their_own_job() {
    let (a, b) = (Scratch::new(), Scratch::new());
    let t = native("quick");
    let (wa, wb) = (
        Workspace::prepare(&a.0.join("task"), &t).expect("workspace"),
        Workspace::prepare(&b.0.join("task"), &t).expect("workspace"),
    );
    let (ea, eb) = (executor(&a), executor(&b));
    assert_ne!(ea.job_name(t.task_id), eb.job_name(t.task_id));
    let (ra, rb) = tokio::join!(ea.run(&t, &wa, AbortSignal::never()), eb.run(&t, &wb, AbortSignal::never()));
    for r in [ra, rb] {
        let o = r.expect("run");
        assert_eq!(o.exit_code, 0);
        assert!(o.computed.is_some(), "each read its own output");
    }
    assert_eq!(jobs_of(t.task_id).len(), 2);
}

/// A slow task's job, submitted by a run that is then dropped a second in (a worker that died mid-job, with no
/// abort): its scratch folder, task, workspace root, executor and job id.
async fn died_mid_job() -> (Scratch, TaskSpec, PathBuf, SlurmExecutor, u64) {
    let s = Scratch::new();
    let mut t = native("slow");
    t.limits.max_duration = Duration::from_secs(30);
    let root = s.0.join("task");
    let ws = Workspace::prepare(&root, &t).expect("workspace");
    let exec = executor(&s);
    let job = {
        let run = exec.run(&t, &ws, AbortSignal::never());
        let (dropped, job) =
            tokio::join!(tokio::time::timeout(Duration::from_secs(1), run), running_job(&exec, t.task_id));
        assert!(dropped.is_err(), "still running when the worker died: {dropped:?}");
        job
    };
    (s, t, root, exec, job)
}

/// A worker that dies mid-job (its run's future dropped, no abort) leaves the job running; the next executor
/// re-attaches to the recorded job id and collects it, and the cluster holds exactly one job of the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_restart_mid_job_reattaches_to_the_same_job() {
    let (s, t, task_dir, _exec, job) = died_mid_job().await;
    assert!(live(job), "the job outlives its worker");

    // A new executor (a restarted worker): it knows the task ran, keeps its workspace, and re-attaches.
    let again = executor(&s);
    assert!(again.resumes(t.task_id));
    let ws = Workspace::resume(&task_dir, &t).expect("workspace");
    let o = again.run(&t, &ws, AbortSignal::never()).await.expect("collected");
    assert_eq!(o.exit_code, 0);
    assert!(o.computed.is_some(), "computed.json of the job that ran across the restart");
    assert_eq!(jobs_of(t.task_id), [(job, "COMPLETED".to_owned())], "one job, never a second");
    // Collected once more (a crash before the worker kept the result): the same job, still no second one.
    let o = executor(&s).run(&t, &ws, AbortSignal::never()).await.expect("collected again");
    assert_eq!(o.exit_code, 0);
    assert_eq!(jobs_of(t.task_id).len(), 1);
}

/// A crash between `sbatch` and the record of its answer: the intent is on disk without a job id. The restarted
/// executor finds the job by its name and adopts it instead of submitting a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_crash_between_sbatch_and_the_record_adopts_the_job_by_name() {
    let (s, t, task_dir, exec, job) = died_mid_job().await;
    // As if the worker had died before it wrote the job id down.
    let intent = JobRecord { task_id: t.task_id, job_id: None, submitted_at: 0 };
    std::fs::write(exec.record_path(t.task_id), serde_json::to_vec(&intent).expect("json")).expect("write");
    let ws = Workspace::resume(&task_dir, &t).expect("workspace");
    let o = executor(&s).run(&t, &ws, AbortSignal::never()).await.expect("collected");
    assert_eq!(o.exit_code, 0);
    assert_eq!(exec.record(t.task_id).expect("record").and_then(|r| r.job_id), Some(job), "adopted");
    assert_eq!(jobs_of(t.task_id), [(job, "COMPLETED".to_owned())]);
}

// ---------------------------------------------------------------------------------------------------------------
// Through the pool

fn slurm_config(app: Address) -> ExecutorConfig {
    ExecutorConfig::Slurm {
        allow: vec![app],
        user: None,
        partition: Some("dragon".into()),
        slurm_conf: Some(cluster().conf.clone()),
        poll_ms: 200,
        shared_dir: Some(std::env::temp_dir()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_backed_pool_runs_a_deal_end_to_end() {
    cluster();
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let dir = work_dir("slurm-e2e");
    let mut config = worker_config(&w, &pool, key.clone(), app, dir.clone());
    config.executor = slurm_config(app);
    let worker = Worker::start(config);

    let posted = Instant::now();
    let pool_order = w.pool_order(5, 10, 1, 0x61);
    let req = request(&w, app, 1, "cluster", 0x62);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let tasks = completed_tasks(&server, &dealid, Duration::from_secs(90)).await;
    eprintln!("pool slurm e2e: POST to COMPLETED {:?}", posted.elapsed());
    let taskid: B256 = tasks[0].parse().expect("taskid");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let t = hub.viewTask(taskid).call().await.expect("viewTask");
    assert_eq!(t.status, 3);
    assert_eq!(t.contributors, vec![key.address()]);
    let zip = reqwest::get(format!("{}/results/{taskid}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello cluster\n");
    let jobs = jobs_of(taskid);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].1, "COMPLETED", "{jobs:?}");
    let user = slurm("squeue", &["--noheader", "--states=all", "--format=%u", &format!("--jobs={}", jobs[0].0)]);
    assert_eq!(user, "nobody", "a root worker's jobs run as nobody");
    let record = dir.join("slurm-jobs").join(format!("{taskid:#x}.json"));
    until("the job record released once the result is uploaded", Duration::from_secs(10), async || {
        (!record.exists()).then_some(())
    })
    .await;
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

/// `dragon worker --executor slurm` (the binary), as a pool operator runs it, on the test cluster.
async fn worker_process(w: &World, pool: &Pool, key: &PrivateKeySigner, app: Address, dir: &Path) -> Child {
    tokio::process::Command::new(dragon_bin())
        .args(["worker", "--pool", &pool.base, "--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--executor", "slurm", "--allow-app", &app.to_string(), "--slurm-partition", "dragon"])
        .arg("--slurm-conf")
        .arg(&cluster().conf)
        .args(["--slurm-poll-ms", "200", "--poll-ms", "200", "--slurm-shared-dir"])
        .arg(std::env::temp_dir())
        .arg("--work-dir")
        .arg(dir)
        .env("DRAGON_WORKER_KEY", alloy::hex::encode_prefixed(key.to_bytes()))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon worker")
}

/// The worker process is killed with SIGKILL (no shutdown: its job is not cancelled) and the pool restarts while
/// the task's job runs; both come back, the worker re-attaches to the same job, and the deal completes with one
/// job and one replicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_pool_restarted_mid_job_neither_loses_nor_duplicates_it() {
    cluster();
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool_config = Pool::config(&w, database().await);
    let pool = Pool::start(pool_config.clone());
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let dir = work_dir("slurm-restart");
    let mut worker = worker_process(&w, &pool, &key, app, &dir).await;

    // The app sleeps 8 s in its job.
    let pool_order = w.pool_order(5, 10, 1, 0x63);
    let req = request(&w, app, 1, "again 8", 0x64);
    let dealid = deal_of(&w, &server, &[&app_order, &pool_order, &req]).await;
    let replicate = replicate_in(&pool, "COMPUTING").await;
    let taskid: B256 = replicate["taskid"].as_str().expect("taskid").parse().expect("taskid");
    let job = until("the task's job RUNNING", Duration::from_secs(30), async || {
        let jobs = jobs_of(taskid);
        jobs.iter().find(|(_, st)| st == "RUNNING").map(|(id, _)| *id)
    })
    .await;
    worker.start_kill().expect("kill -9");
    let _ = worker.wait().await;
    pool.shutdown().await;
    assert!(live(job), "the job outlives the worker and the pool");

    let pool = Pool::start(pool_config);
    let mut worker = worker_process(&w, &pool, &key, app, &dir).await;
    completed_tasks(&server, &dealid, Duration::from_secs(90)).await;
    assert_eq!(jobs_of(taskid), [(job, "COMPLETED".to_owned())], "the same job, and no second one");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let t = hub.viewTask(taskid).call().await.expect("viewTask");
    assert_eq!(t.contributors, vec![key.address()]);
    let status = pool_completed(&pool, 1).await;
    let replicates = status["replicates"].as_array().expect("replicates");
    assert_eq!(replicates.len(), 1, "one replicate, handed back rather than a second one: {status}");
    let zip = reqwest::get(format!("{}/results/{taskid}", pool.base)).await.expect("get").bytes().await.expect("zip");
    assert_eq!(unzip_entry(&zip, "result.txt"), "hello again\n");
    worker.start_kill().expect("stop the worker");
    let _ = worker.wait().await;
    pool.shutdown().await;
    server.shutdown().await;
}
