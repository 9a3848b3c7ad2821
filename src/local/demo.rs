//! The local market's own participants, so that a requester on a fresh machine gets a result with no set-up:
//! a demo app (a native script the local worker may run), a workerpool with its scheduler and one worker, and a
//! requester account with RLC deposited. All use anvil's public development keys, which only mean something on
//! the local chain.
//!
//! The on-chain part is made once per deployment and recorded in `<data-dir>/demo.json`; a later start on the
//! same chain state finds it there (and checks the registries) instead of registering twice.

use crate::chain::contracts::workerpool_registry::WorkerpoolRegistry;
use crate::chain::deploy::Deployment;
use crate::chain::setup::{self, Account};
use crate::money::Nrlc;
use crate::order::{AnyOrder, AppOrder, Domain};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// anvil's first development account: a public test key, used only against the local anvil.
pub const ANVIL_DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// anvil's tenth development account: the local exchange's operator (settles deals). Public test key.
pub const ANVIL_OPERATOR_KEY: &str = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6";

/// anvil's second development account: the requester of the README's walk-through, with RLC deposited.
pub const REQUESTER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's seventh development account: owner of the demo apps.
pub const APP_OWNER_KEY: &str = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";
/// anvil's eighth development account: owner of the local workerpool (its scheduler and its bot sign with it).
pub const POOL_OWNER_KEY: &str = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356";
/// anvil's ninth development account: the local worker.
pub const WORKER_KEY: &str = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97";

/// RLC each demo account gets deposited in the hub at the first start (the requester pays with it, the pool
/// owner and the worker stake it).
const DEPOSIT_RLC: u64 = 1_000;

/// The category the local pool serves (XS: the shortest tasks).
pub const CATEGORY: u64 = 0;
/// The local pool's price per task, in nRLC: 0.01 RLC.
pub const POOL_PRICE_NRLC: u64 = Nrlc::PER_RLC / 100;
/// Apps the local worker runs at once.
pub const WORKER_CPUS: u32 = 2;

/// The demo apps: name and the script the local worker runs (written under `<data-dir>/apps/`).
const APPS: &[(&str, &str)] = &[("hello", HELLO_SH)];

/// Greets its arguments: `result.txt` holds `Hello, <args>!`, which is the task's deterministic result.
const HELLO_SH: &str = r#"#!/bin/sh
# Dragon's demo app: greets its arguments. Run by the local worker with the `process` executor.
set -eu
who="${*:-world}"
echo "Greeting $who"
printf 'Hello, %s!\n' "$who" > "$IEXEC_OUT/result.txt"
printf '{"deterministic-output-path":"%s/result.txt"}\n' "$IEXEC_OUT" > "$IEXEC_OUT/computed.json"
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoApp {
    pub name: String,
    pub address: Address,
}

/// What the demo registered on chain, as recorded in `demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Demo {
    pub hub: Address,
    pub workerpool: Address,
    pub apps: Vec<DemoApp>,
}

fn key(hex: &str) -> anyhow::Result<PrivateKeySigner> {
    hex.parse().context("a built-in development key")
}

pub fn pool_owner() -> anyhow::Result<PrivateKeySigner> {
    key(POOL_OWNER_KEY)
}

pub fn worker() -> anyhow::Result<PrivateKeySigner> {
    key(WORKER_KEY)
}

/// Registers the demo apps and the workerpool and deposits RLC for the demo accounts, unless `demo.json` shows
/// they already exist on this chain.
pub async fn ensure(rpc_url: &str, d: &Deployment, data_dir: &Path) -> anyhow::Result<Demo> {
    let record = data_dir.join("demo.json");
    let app_owner = Account::new(rpc_url, &key(APP_OWNER_KEY)?)?;
    let pool_owner = Account::new(rpc_url, &pool_owner()?)?;
    if let Some(demo) = std::fs::read(&record).ok().and_then(|b| serde_json::from_slice::<Demo>(&b).ok())
        && demo.hub == d.hub
        && WorkerpoolRegistry::new(d.workerpool_registry, &pool_owner.provider)
            .isRegistered(demo.workerpool)
            .call()
            .await?
    {
        write_scripts(data_dir)?;
        return Ok(demo);
    }
    let paths = write_scripts(data_dir)?;
    let minter = Account::new(rpc_url, &key(ANVIL_DEV_KEY)?)?;
    let requester = Account::new(rpc_url, &key(REQUESTER_KEY)?)?;
    let worker = Account::new(rpc_url, &worker()?)?;
    let amount = U256::from(DEPOSIT_RLC * Nrlc::PER_RLC);
    setup::fund(d, &minter, &[&requester, &pool_owner, &worker], amount).await?;
    let mut apps = Vec::new();
    for ((name, _), path) in APPS.iter().zip(paths) {
        let multiaddr = path.to_str().context("the data folder's path is not UTF-8")?;
        let address = setup::create_app(d, &app_owner, name, multiaddr.as_bytes()).await?;
        apps.push(DemoApp { name: (*name).to_owned(), address });
    }
    let workerpool = setup::create_workerpool(d, &pool_owner, "Dragon local pool").await?;
    let demo = Demo { hub: d.hub, workerpool, apps };
    std::fs::write(&record, serde_json::to_vec_pretty(&demo)?)
        .with_context(|| format!("writing {}", record.display()))?;
    Ok(demo)
}

/// Writes (again: a start repairs an edited script) each demo app's script, executable; returns their absolute
/// paths, which are the apps' multiaddrs.
fn write_scripts(data_dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir.join("apps");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    APPS.iter()
        .map(|(name, script)| {
            let path = dir.join(format!("{name}.sh"));
            std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            Ok(path)
        })
        .collect()
}

/// What the local pool's orders restrict apps to: the demo app when there is one (PoCo restricts to one address).
pub fn app_restriction(demo: &Demo) -> Address {
    match demo.apps.as_slice() {
        [one] => one.address,
        _ => Address::ZERO,
    }
}

/// Each demo app's standing offer: free, a million runs, open to everyone. The salt is fixed per app, so a
/// restart finds the same order already in the book instead of adding another.
pub fn app_orders(demo: &Demo, domain: &Domain) -> anyhow::Result<Vec<(Address, AnyOrder)>> {
    let owner = key(APP_OWNER_KEY)?;
    demo.apps
        .iter()
        .map(|a| {
            let mut order = AnyOrder::App(AppOrder {
                app: a.address,
                appprice: Nrlc::ZERO,
                volume: U256::from(1_000_000u64),
                tag: B256::ZERO,
                datasetrestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: keccak256(a.address),
                sign: None,
            });
            order.sign_with(domain, &owner)?;
            Ok((owner.address(), order))
        })
        .collect()
}
