//! The requesters' and owners' commands of `dragon`: escrow (`account`), assets (`app`, `dataset`,
//! `workerpool`), orders (`order publish|unpublish`, `orderbook`), and a request's life (`submit`, `wait`,
//! `status`, `explain`, `result`, `stdout`, `run`). They talk to the exchange's REST API and to the chain; endpoints are
//! resolved by [`config`]. Every failure is a [`CliError`]: one line, exit 2 when the user can fix it.

pub mod account;
pub mod amount;
pub mod asset;
pub mod config;
pub mod error;
pub mod exchange;
pub mod explain;
pub mod io;
pub mod order;
pub mod result;
pub mod submit;
pub mod wait;

use clap::Subcommand;

pub use config::{Conn, Ctx};
pub use error::CliError;
pub use io::read_input;
pub(crate) use io::runtime;
pub(crate) use io::signing_key;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// The account's escrow in the hub: deposit, withdraw, balance (amounts in nRLC, or RLC with a suffix).
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Register or show an app.
    #[command(subcommand)]
    App(asset::AppCommand),
    /// Register or show a dataset.
    #[command(subcommand)]
    Dataset(asset::DatasetCommand),
    /// Register or show a workerpool.
    #[command(subcommand)]
    Workerpool(asset::WorkerpoolCommand),
    /// The best workerpool offers of each category, as a table.
    Orderbook(order::OrderbookArgs),
    /// Build, sign and publish a request order; print its hash, then the deal id once matched.
    Submit(submit::SubmitArgs),
    /// Why an order does not match: its best counter-orders and every condition that blocks each.
    Explain(explain::ExplainArgs),
    /// Follow a request, a deal or a task through match, deal, tasks and completion.
    Wait(wait::WaitArgs),
    /// Print where a request, a deal or a task stands, once.
    Status(wait::StatusArgs),
    /// Download a completed task's result archive and unpack it.
    Result(result::ResultArgs),
    /// Print what a completed task's app wrote to its standard output.
    Stdout(result::StdoutArgs),
    /// Submit, wait, and download the results: one command from request to result.
    Run(submit::RunArgs),
}

pub fn run(cmd: ClientCommand) -> Result<(), CliError> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            ClientCommand::Account(c) => account::run(c).await,
            ClientCommand::App(c) => asset::run_app(c).await,
            ClientCommand::Dataset(c) => asset::run_dataset(c).await,
            ClientCommand::Workerpool(c) => asset::run_workerpool(c).await,
            ClientCommand::Orderbook(a) => order::orderbook(a).await,
            ClientCommand::Submit(a) => submit::submit(a).await,
            ClientCommand::Explain(a) => explain::explain(a).await,
            ClientCommand::Wait(a) => wait::wait(a).await,
            ClientCommand::Status(a) => wait::status(a).await,
            ClientCommand::Result(a) => result::result(a).await,
            ClientCommand::Stdout(a) => result::stdout(a).await,
            ClientCommand::Run(a) => submit::run(a).await,
        }
    })
}

/// Runs `dragon order publish|unpublish`.
pub fn run_order(cmd: order::OrderWrite) -> Result<(), CliError> {
    runtime()?.block_on(order::write(cmd))
}
