//! The `dragon` command line. Every command returns a [`CliError`]; `main` prints it on one line and exits with
//! 2 for bad input (the user can fix it) or 1 for a failure of the machine or a service.

// The error and the machine-facing helpers live in `client`, which every command of the CLI goes through.
pub use crate::client::CliError;
use crate::client::{read_input, runtime, signing_key};
use crate::order::{AnyOrder, Domain, OrderKind, json, signature};
use alloy::primitives::{Address, Bytes, U256};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "dragon",
    version,
    about = "Dragon: an order-book exchange for decentralized computing (iExec PoCo compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hash, sign and verify PoCo orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Run the exchange server against a PostgreSQL database and a chain.
    Serve(crate::config::ServeArgs),
    /// Run the whole local market on embedded defaults: a PostgreSQL cluster and anvil under a data folder,
    /// and the server.
    Local(crate::local::LocalArgs),
    /// Simulate a market: read orders and cancels as JSON lines, print the deals the engine forms.
    Replay {
        /// Chain id of the EIP-712 domain the order hashes are computed in.
        #[arg(long, value_parser = parse_u256_arg, default_value = "1")]
        chain_id: U256,
        /// Hub address of that domain.
        #[arg(long, value_parser = json::parse_address, default_value = "0x0000000000000000000000000000000000000000")]
        hub: Address,
        /// File of JSON lines, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// Deploy Dragon's contracts.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Print the OpenAPI document of the REST API.
    Openapi,
    /// Run the scheduler of one workerpool (owner key in DRAGON_POOL_KEY, database in DATABASE_URL).
    Pool(crate::pool::PoolArgs),
    /// Run a worker that joins a pool (key in DRAGON_WORKER_KEY).
    Worker(crate::worker::WorkerArgs),
    #[command(flatten)]
    Client(Box<crate::client::ClientCommand>),
    /// Keep the exchange supplied with a workerpool's orders, sized to the pool's free capacity (owner key in
    /// DRAGON_POOL_KEY).
    Bot(crate::bot::BotArgs),
}

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploy the token, the registries and the hub (with the default categories); write their addresses to a
    /// deployment file and print it.
    Deploy {
        /// JSON-RPC endpoint of the chain.
        #[arg(long, env = "DRAGON_RPC_URL")]
        rpc_url: String,
        /// File holding the deployer's hex private key; DRAGON_PRIVATE_KEY is used when absent.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Where to write the deployment (JSON).
        #[arg(long, default_value = "deployment.json")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Print the order hash (EIP-712 typed-data digest) on one line.
    Hash(OrderArgs),
    /// Print the order JSON with `sign` filled (key from DRAGON_PRIVATE_KEY or --key-file).
    Sign {
        #[command(flatten)]
        order: OrderArgs,
        /// File holding the hex private key; DRAGON_PRIVATE_KEY is used when absent.
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
    /// Print the checksummed address that signed the order.
    Verify(OrderArgs),
    /// Publish an order to the exchange (signed with the key when unsigned); prints its hash.
    Publish(crate::client::order::PublishArgs),
    /// Take an open order (or all of an asset's) out of the exchange's book; prints the hashes.
    Unpublish(crate::client::order::UnpublishArgs),
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// Order kind.
    #[arg(long, value_enum)]
    pub kind: OrderKind,
    /// Chain id of the EIP-712 domain (uint256).
    #[arg(long, value_parser = parse_u256_arg)]
    pub chain_id: U256,
    /// Hub contract address (the domain's verifyingContract).
    #[arg(long, value_parser = json::parse_address)]
    pub hub: Address,
    /// File with one order as a JSON object, or - for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

fn parse_u256_arg(s: &str) -> Result<U256, String> {
    json::parse_u256(s)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = match &e {
                CliError::Input(m) => m.clone(),
                CliError::Failure(err) => format!("{err:#}"),
            };
            eprintln!("error: {}", line.replace('\n', " "));
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    if matches!(
        cli.command,
        Command::Serve(_) | Command::Local(_) | Command::Pool(_) | Command::Worker(_) | Command::Bot(_)
    ) {
        crate::runtime::init_tracing();
    }
    match cli.command {
        Command::Order(cmd) => order_command(cmd),
        Command::Serve(args) => {
            let config = args.into_config().map_err(|e| CliError::Input(e.to_string()))?;
            runtime()?.block_on(crate::server::serve(config)).map_err(Into::into)
        }
        Command::Local(args) => runtime()?.block_on(crate::local::run(args)).map_err(Into::into),
        Command::Chain(ChainCommand::Deploy { rpc_url, key_file, out }) => {
            let key = signing_key(key_file)?;
            let deployment = runtime()?
                .block_on(crate::chain::deploy::deploy(&rpc_url, key))
                .map_err(|e| CliError::Failure(anyhow::anyhow!("deployment failed: {e}")))?;
            deployment.write(&out).map_err(|e| CliError::Failure(e.into()))?;
            println!("{}", serde_json::to_string_pretty(&deployment).map_err(|e| CliError::Failure(e.into()))?);
            Ok(())
        }
        Command::Replay { chain_id, hub, file } => {
            let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(&file)
                    .map_err(|e| CliError::Input(format!("cannot read `{}`: {e}", file.display())))?;
                Box::new(std::io::BufReader::new(f))
            };
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::replay::replay(&Domain::new(chain_id, hub), input, out, std::io::stderr().lock()).map_err(|e| {
                match e {
                    crate::replay::ReplayError::Input { .. } => CliError::Input(e.to_string()),
                    crate::replay::ReplayError::Io(io) => CliError::Failure(io.into()),
                }
            })?;
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::api::openapi_json());
            Ok(())
        }
        Command::Pool(args) => {
            let config = args.into_config().map_err(|e| CliError::Input(e.to_string()))?;
            let listener = std::net::TcpListener::bind(config.listen)
                .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot listen on {}: {e}", config.listen)))?;
            runtime()?
                .block_on(crate::pool::run(config, listener, crate::runtime::shutdown_signal()))
                .map_err(|e| CliError::Failure(e.into()))
        }
        Command::Worker(args) => {
            let config = args.into_config().map_err(|e| CliError::Input(e.to_string()))?;
            runtime()?
                .block_on(crate::worker::run(config, crate::runtime::shutdown_signal()))
                .map_err(|e| CliError::Failure(e.into()))
        }
        Command::Client(cmd) => crate::client::run(*cmd),
        Command::Bot(args) => {
            let config = args.into_config().map_err(|e| CliError::Input(e.to_string()))?;
            let listener = std::net::TcpListener::bind(config.listen)
                .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot listen on {}: {e}", config.listen)))?;
            runtime()?.block_on(crate::bot::run(config, listener, crate::runtime::shutdown_signal())).map_err(|e| {
                match e {
                    crate::bot::BotError::Config(_) | crate::bot::BotError::NotOwner(..) => {
                        CliError::Input(e.to_string())
                    }
                    e => CliError::Failure(e.into()),
                }
            })
        }
    }
}

fn order_command(cmd: OrderCommand) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let line = match cmd {
        OrderCommand::Hash(args) => {
            let (order, domain) = load(&args)?;
            order.order_hash(&domain).to_string()
        }
        OrderCommand::Sign { order: args, key_file } => {
            let key = signing_key(key_file)?;
            let (mut order, domain) = load(&args)?;
            order.sign_with(&domain, &key).map_err(|e| CliError::Failure(anyhow::anyhow!("signing failed: {e}")))?;
            order.to_json().to_string()
        }
        OrderCommand::Publish(a) => return crate::client::run_order(crate::client::order::OrderWrite::Publish(a)),
        OrderCommand::Unpublish(a) => return crate::client::run_order(crate::client::order::OrderWrite::Unpublish(a)),
        OrderCommand::Verify(args) => {
            let (order, domain) = load(&args)?;
            let sign: &Bytes = order.sign().ok_or_else(|| CliError::Input("field `sign`: missing signature".into()))?;
            let signer = signature::recover_signer(&order.order_hash(&domain).0, sign)
                .map_err(|e| CliError::Input(format!("field `sign`: {e}")))?;
            signer.to_checksum(None)
        }
    };
    writeln!(out, "{line}").map_err(|e| CliError::Failure(e.into()))
}

fn load(args: &OrderArgs) -> Result<(AnyOrder, Domain), CliError> {
    let text = read_input(&args.file)?;
    let order = AnyOrder::from_json(args.kind, &text)
        .map_err(|e| CliError::Input(format!("invalid {} order: {e}", args.kind)))?;
    Ok((order, Domain::new(args.chain_id, args.hub)))
}
