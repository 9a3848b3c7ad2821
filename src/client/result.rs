//! `dragon result` and `dragon stdout`: a completed task's result link is read from the hub
//! (`{"storage":"ipfs","location":"/results/<taskid>"}`), the archive is downloaded from the gateway (the
//! public URL of the pool that ran it) and unpacked, or its `stdout.txt` printed (the worker records there
//! what the app wrote to its standard output, as iExec's worker does).

use super::config::{Conn, Ctx};
use super::error::{CliError, chain_failure, chain_of, failure, input};
use crate::chain::contracts::hub::DragonHub;
use crate::chain::deploy::Deployment;
use crate::wire::json::parse_bytes32;
use alloy::primitives::B256;
use alloy::transports::http::reqwest;
use clap::Args;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The archive entry holding the app's standard output.
pub const STDOUT_ENTRY: &str = "stdout.txt";

#[derive(Debug, Args)]
pub struct ResultArgs {
    /// The task id.
    #[arg(value_parser = parse_bytes32)]
    pub task: B256,
    /// Folder to unpack into; ./<taskid> by default.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct StdoutArgs {
    /// The task id.
    #[arg(value_parser = parse_bytes32)]
    pub task: B256,
    #[command(flatten)]
    pub conn: Conn,
}

const TASK_STATUS: [&str; 5] = ["UNSET", "ACTIVE", "REVEALING", "COMPLETED", "FAILED"];

/// The result archive of a completed task.
pub async fn archive(ctx: &Ctx, d: &Deployment, gateway: &str, task: &str) -> Result<Vec<u8>, CliError> {
    let id: B256 = parse_bytes32(task).map_err(input)?;
    let rpc = ctx.rpc()?;
    let t = DragonHub::new(d.hub, ctx.reader()?).viewTask(id).call().await.map_err(|e| chain_failure(rpc, &e))?;
    if t.dealid == B256::ZERO {
        return Err(input(format!("unknown task {task}: the hub has no such task")));
    }
    if t.status != 3 {
        let s = TASK_STATUS.get(usize::from(t.status)).unwrap_or(&"?");
        return Err(failure(format!("task {task} has no result yet: it is {s} on chain (dragon wait {task})")));
    }
    let link: serde_json::Value = serde_json::from_slice(&t.results)
        .map_err(|_| failure(format!("task {task}: its result link is not the JSON Dragon's pools write")))?;
    let location = link["location"]
        .as_str()
        .ok_or_else(|| failure(format!("task {task}: its result link has no location ({link})")))?;
    // As iExec's SDK does: the location is a path on the gateway; a full URL is taken as it is.
    let url = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{gateway}{location}")
    };
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(120)).build().map_err(|e| failure(chain_of(&e)))?;
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| failure(format!("the result gateway {gateway} is unreachable: {}", chain_of(&e))))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(failure(format!("the result gateway answered {status} for {url}")));
    }
    let bytes = resp.bytes().await.map_err(|e| failure(format!("downloading {url}: {}", chain_of(&e))))?;
    Ok(bytes.to_vec())
}

/// Downloads and unpacks a task's result into `dir`; returns the files written.
pub async fn download(
    ctx: &Ctx,
    d: &Deployment,
    gateway: &str,
    task: &str,
    dir: &Path,
) -> Result<Vec<String>, CliError> {
    let zip = archive(ctx, d, gateway, task).await?;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| failure(format!("the result of task {task} is not a zip archive: {e}")))?;
    let names: Vec<String> = z.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    std::fs::create_dir_all(dir).map_err(|e| input(format!("cannot create `{}`: {e}", dir.display())))?;
    // `extract` refuses entries whose names would leave `dir`.
    z.extract(dir).map_err(|e| failure(format!("unpacking the result into `{}`: {e}", dir.display())))?;
    Ok(names)
}

pub async fn result(a: ResultArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let gateway = ctx.gateway()?;
    let d = ctx.deployment()?;
    let task = a.task.to_string();
    let dir = a.out.unwrap_or_else(|| PathBuf::from(&task));
    let files = download(&ctx, &d, gateway, &task, &dir).await?;
    for f in &files {
        println!("{}", dir.join(f).display());
    }
    Ok(())
}

pub async fn stdout(a: StdoutArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let gateway = ctx.gateway()?;
    let d = ctx.deployment()?;
    let task = a.task.to_string();
    let zip = archive(&ctx, &d, gateway, &task).await?;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| failure(format!("the result of task {task} is not a zip archive: {e}")))?;
    let mut entry = z.by_name(STDOUT_ENTRY).map_err(|_| {
        failure(format!(
            "the result of task {task} holds no {STDOUT_ENTRY}: its worker did not record the app's output"
        ))
    })?;
    let mut text = Vec::new();
    entry.read_to_end(&mut text).map_err(|e| failure(format!("reading {STDOUT_ENTRY}: {e}")))?;
    std::io::stdout().write_all(&text).map_err(|e| failure(e.to_string()))?;
    Ok(())
}
