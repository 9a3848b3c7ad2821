//! `dragon app|dataset|workerpool register|show`: assets are entries of the registries, owned by the key that
//! registers them; `show` reads them back from the hub.

use super::{Conn, Ctx, chain_failure, failure, input};
use crate::chain::contracts::hub::DragonHub;
use crate::chain::contracts::workerpool_registry::WorkerpoolRegistry;
use crate::chain::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry};
use crate::cli::CliError;
use crate::order::json::{parse_address, parse_bytes32};
use alloy::primitives::{Address, B256, Bytes};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an app owned by the key's account; prints its address.
    Register {
        #[arg(long)]
        name: String,
        /// Where the app is: a Docker image (docker.io/me/app:1) or, for native apps, an absolute path.
        #[arg(long)]
        multiaddr: String,
        /// The app type the hub records.
        #[arg(long, default_value = "DOCKER")]
        r#type: String,
        /// The image's digest (bytes32); zero when absent.
        #[arg(long, value_parser = parse_bytes32)]
        checksum: Option<B256>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a registered app.
    Show {
        #[arg(value_parser = parse_address)]
        address: Address,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Register a dataset owned by the key's account; prints its address.
    Register {
        #[arg(long)]
        name: String,
        /// Where the dataset is (a URL).
        #[arg(long)]
        multiaddr: String,
        /// The dataset's checksum (bytes32); zero when absent.
        #[arg(long, value_parser = parse_bytes32)]
        checksum: Option<B256>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a registered dataset.
    Show {
        #[arg(value_parser = parse_address)]
        address: Address,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkerpoolCommand {
    /// Register a workerpool owned by the key's account; prints its address.
    Register {
        #[arg(long)]
        description: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a registered workerpool.
    Show {
        #[arg(value_parser = parse_address)]
        address: Address,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Sends a registry's `create*` call: its return value (the new address) from a dry run, then the transaction.
macro_rules! create {
    ($rpc:expr, $call:expr) => {{
        let call = $call;
        let addr = call.call().await.map_err(|e| chain_failure($rpc, &e))?;
        let receipt = call
            .send()
            .await
            .map_err(|e| chain_failure($rpc, &e))?
            .get_receipt()
            .await
            .map_err(|e| chain_failure($rpc, &e))?;
        if !receipt.status() {
            return Err(failure(format!("the registry reverted ({})", receipt.transaction_hash)));
        }
        addr
    }};
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub async fn run_app(cmd: AppCommand) -> Result<(), CliError> {
    match cmd {
        AppCommand::Register { name, multiaddr, r#type, checksum, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let acc = ctx.account(&key)?;
            let registry = AppRegistry::new(d.app_registry, &acc.provider);
            let rpc = ctx.rpc()?;
            let app = create!(
                rpc,
                registry.createApp(
                    key.address(),
                    name,
                    r#type,
                    Bytes::from(multiaddr.into_bytes()),
                    checksum.unwrap_or_default(),
                    Bytes::new(),
                )
            );
            println!("{}", app.to_checksum(None));
            Ok(())
        }
        AppCommand::Show { address, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let d = ctx.deployment()?;
            let rpc = ctx.rpc()?;
            let p = ctx.reader()?;
            let known = AppRegistry::new(d.app_registry, &p).isRegistered(address).call().await;
            if !known.map_err(|e| chain_failure(rpc, &e))? {
                return Err(input(format!("unknown app {address}: it is not registered in the app registry")));
            }
            let a = DragonHub::new(d.hub, &p).viewApp(address).call().await.map_err(|e| chain_failure(rpc, &e))?;
            println!("app       {}", address.to_checksum(None));
            println!("owner     {}", a.owner.to_checksum(None));
            println!("name      {}", a.m_appName);
            println!("type      {}", a.m_appType);
            println!("multiaddr {}", text(&a.m_appMultiaddr));
            println!("checksum  {}", a.m_appChecksum);
            Ok(())
        }
    }
}

pub async fn run_dataset(cmd: DatasetCommand) -> Result<(), CliError> {
    match cmd {
        DatasetCommand::Register { name, multiaddr, checksum, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let acc = ctx.account(&key)?;
            let registry = DatasetRegistry::new(d.dataset_registry, &acc.provider);
            let rpc = ctx.rpc()?;
            let dataset = create!(
                rpc,
                registry.createDataset(
                    key.address(),
                    name,
                    Bytes::from(multiaddr.into_bytes()),
                    checksum.unwrap_or_default()
                )
            );
            println!("{}", dataset.to_checksum(None));
            Ok(())
        }
        DatasetCommand::Show { address, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let d = ctx.deployment()?;
            let rpc = ctx.rpc()?;
            let p = ctx.reader()?;
            let known = DatasetRegistry::new(d.dataset_registry, &p).isRegistered(address).call().await;
            if !known.map_err(|e| chain_failure(rpc, &e))? {
                return Err(input(format!("unknown dataset {address}: it is not registered in the dataset registry")));
            }
            let a = DragonHub::new(d.hub, &p).viewDataset(address).call().await.map_err(|e| chain_failure(rpc, &e))?;
            println!("dataset   {}", address.to_checksum(None));
            println!("owner     {}", a.owner.to_checksum(None));
            println!("name      {}", a.m_datasetName);
            println!("multiaddr {}", text(&a.m_datasetMultiaddr));
            println!("checksum  {}", a.m_datasetChecksum);
            Ok(())
        }
    }
}

pub async fn run_workerpool(cmd: WorkerpoolCommand) -> Result<(), CliError> {
    match cmd {
        WorkerpoolCommand::Register { description, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let acc = ctx.account(&key)?;
            let registry = WorkerpoolRegistry::new(d.workerpool_registry, &acc.provider);
            let rpc = ctx.rpc()?;
            let pool = create!(rpc, registry.createWorkerpool(key.address(), description));
            println!("{}", pool.to_checksum(None));
            Ok(())
        }
        WorkerpoolCommand::Show { address, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let d = ctx.deployment()?;
            let rpc = ctx.rpc()?;
            let p = ctx.reader()?;
            let known = WorkerpoolRegistry::new(d.workerpool_registry, &p).isRegistered(address).call().await;
            if !known.map_err(|e| chain_failure(rpc, &e))? {
                return Err(input(format!(
                    "unknown workerpool {address}: it is not registered in the workerpool registry"
                )));
            }
            let a =
                DragonHub::new(d.hub, &p).viewWorkerpool(address).call().await.map_err(|e| chain_failure(rpc, &e))?;
            println!("workerpool   {}", address.to_checksum(None));
            println!("owner        {}", a.owner.to_checksum(None));
            println!("description  {}", a.m_workerpoolDescription);
            println!("worker stake {}%", a.m_workerStakeRatioPolicy);
            println!("scheduler    {}% of the reward", a.m_schedulerRewardRatioPolicy);
            Ok(())
        }
    }
}
