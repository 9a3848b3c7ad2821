//! `dragon app|dataset|workerpool register|show`: assets are entries of the registries, owned by the key that
//! registers them; `show` reads them back from the hub.

use super::config::{Conn, Ctx};
use super::error::{CliError, chain_failure, failure, input};
use crate::chain::contracts::hub::DragonHub;
use crate::chain::contracts::workerpool_registry::WorkerpoolRegistry;
use crate::chain::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry};
use crate::chain::deploy::Deployment;
use crate::chain::setup::Account;
use crate::wire::json::{parse_address, parse_bytes32};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::DynProvider;
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

/// What a `register` needs: the deployment (checked against the node's chain), the sending account and its
/// address, and the RPC URL for error messages.
struct Registrar {
    d: Deployment,
    acc: Account,
    owner: Address,
    rpc: String,
}

async fn registrar(conn: &Conn) -> Result<Registrar, CliError> {
    let ctx = Ctx::resolve(conn)?;
    let key = ctx.key()?;
    let d = ctx.deployment()?;
    ctx.check_chain(&d).await?;
    let acc = ctx.account(&key)?;
    Ok(Registrar { d, acc, owner: key.address(), rpc: ctx.rpc()?.to_owned() })
}

/// What a `show` needs: the deployment, a read-only provider and the RPC URL.
async fn reader(conn: &Conn) -> Result<(Deployment, DynProvider, String), CliError> {
    let ctx = Ctx::resolve(conn)?;
    Ok((ctx.deployment()?, ctx.reader()?, ctx.rpc()?.to_owned()))
}

/// The registry's `isRegistered(address)` answer, as one clear line when the asset is unknown.
fn registered(
    rpc: &str,
    kind: &str,
    address: Address,
    known: Result<bool, alloy::contract::Error>,
) -> Result<(), CliError> {
    if known.map_err(|e| chain_failure(rpc, &e))? {
        Ok(())
    } else {
        Err(input(format!("unknown {kind} {address}: it is not registered in the {kind} registry")))
    }
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub async fn run_app(cmd: AppCommand) -> Result<(), CliError> {
    match cmd {
        AppCommand::Register { name, multiaddr, r#type, checksum, conn } => {
            let r = registrar(&conn).await?;
            let registry = AppRegistry::new(r.d.app_registry, &r.acc.provider);
            let app = create!(
                &r.rpc,
                registry.createApp(
                    r.owner,
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
            let (d, p, rpc) = reader(&conn).await?;
            registered(&rpc, "app", address, AppRegistry::new(d.app_registry, &p).isRegistered(address).call().await)?;
            let a = DragonHub::new(d.hub, &p).viewApp(address).call().await.map_err(|e| chain_failure(&rpc, &e))?;
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
            let r = registrar(&conn).await?;
            let registry = DatasetRegistry::new(r.d.dataset_registry, &r.acc.provider);
            let dataset = create!(
                &r.rpc,
                registry.createDataset(
                    r.owner,
                    name,
                    Bytes::from(multiaddr.into_bytes()),
                    checksum.unwrap_or_default()
                )
            );
            println!("{}", dataset.to_checksum(None));
            Ok(())
        }
        DatasetCommand::Show { address, conn } => {
            let (d, p, rpc) = reader(&conn).await?;
            let known = DatasetRegistry::new(d.dataset_registry, &p).isRegistered(address).call().await;
            registered(&rpc, "dataset", address, known)?;
            let a = DragonHub::new(d.hub, &p).viewDataset(address).call().await.map_err(|e| chain_failure(&rpc, &e))?;
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
            let r = registrar(&conn).await?;
            let registry = WorkerpoolRegistry::new(r.d.workerpool_registry, &r.acc.provider);
            let pool = create!(&r.rpc, registry.createWorkerpool(r.owner, description));
            println!("{}", pool.to_checksum(None));
            Ok(())
        }
        WorkerpoolCommand::Show { address, conn } => {
            let (d, p, rpc) = reader(&conn).await?;
            let known = WorkerpoolRegistry::new(d.workerpool_registry, &p).isRegistered(address).call().await;
            registered(&rpc, "workerpool", address, known)?;
            let a =
                DragonHub::new(d.hub, &p).viewWorkerpool(address).call().await.map_err(|e| chain_failure(&rpc, &e))?;
            println!("workerpool   {}", address.to_checksum(None));
            println!("owner        {}", a.owner.to_checksum(None));
            println!("description  {}", a.m_workerpoolDescription);
            println!("worker stake {}%", a.m_workerStakeRatioPolicy);
            println!("scheduler    {}% of the reward", a.m_schedulerRewardRatioPolicy);
            Ok(())
        }
    }
}
