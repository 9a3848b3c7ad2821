//! `dragon account`: the account's escrow in the hub. Deposits go the way the hub takes them: the token's
//! `approve` to the hub, then the hub's `deposit`, which pulls the tokens.

use super::amount;
use super::config::{Conn, Ctx};
use super::error::{CliError, chain_failure, input};
use crate::chain::contracts::{hub::DragonHub, token::RLC};
use crate::money::Nrlc;
use alloy::primitives::Address;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Move RLC from the wallet into the hub's escrow (where orders are paid from).
    Deposit {
        /// nRLC (1500) or RLC with a suffix (1.5RLC).
        #[arg(value_parser = amount::parse)]
        amount: Nrlc,
        #[command(flatten)]
        conn: Conn,
    },
    /// Move free RLC from the hub's escrow back to the wallet.
    Withdraw {
        #[arg(value_parser = amount::parse)]
        amount: Nrlc,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the wallet's RLC and the escrow (free and locked) of the key's account, or of ADDRESS.
    Balance {
        #[arg(value_parser = crate::wire::json::parse_address)]
        address: Option<Address>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// An account's money: wallet, free escrow, locked escrow.
#[derive(Debug)]
pub struct Balances {
    pub wallet: Nrlc,
    pub stake: Nrlc,
    pub locked: Nrlc,
}

pub async fn balances(ctx: &Ctx, d: &crate::chain::deploy::Deployment, who: Address) -> Result<Balances, CliError> {
    let rpc = ctx.rpc()?;
    let p = ctx.reader()?;
    let wallet = RLC::new(d.token, &p).balanceOf(who).call().await.map_err(|e| chain_failure(rpc, &e))?;
    let acc = DragonHub::new(d.hub, &p).viewAccount(who).call().await.map_err(|e| chain_failure(rpc, &e))?;
    Ok(Balances { wallet: Nrlc(wallet), stake: Nrlc(acc.stake), locked: Nrlc(acc.locked) })
}

pub async fn run(cmd: AccountCommand) -> Result<(), CliError> {
    match cmd {
        AccountCommand::Deposit { amount: n, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let rpc = ctx.rpc()?;
            let before = balances(&ctx, &d, key.address()).await?;
            if before.wallet < n {
                return Err(input(format!(
                    "cannot deposit {}: the wallet of {} holds {}",
                    amount::show(n),
                    key.address(),
                    amount::show(before.wallet)
                )));
            }
            let acc = ctx.account(&key)?;
            let fail = |e: &dyn std::error::Error| chain_failure(rpc, e);
            let pending = RLC::new(d.token, &acc.provider).approve(d.hub, n.0).send().await.map_err(|e| fail(&e))?;
            pending.get_receipt().await.map_err(|e| fail(&e))?;
            let pending = DragonHub::new(d.hub, &acc.provider).deposit(n.0).send().await.map_err(|e| fail(&e))?;
            let receipt = pending.get_receipt().await.map_err(|e| fail(&e))?;
            if !receipt.status() {
                return Err(super::error::failure(format!(
                    "the hub reverted the deposit ({})",
                    receipt.transaction_hash
                )));
            }
            let after = balances(&ctx, &d, key.address()).await?;
            println!("deposited {}", amount::show(n));
            println!("escrow: {} free, {} locked", amount::show(after.stake), amount::show(after.locked));
            Ok(())
        }
        AccountCommand::Withdraw { amount: n, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let rpc = ctx.rpc()?;
            let before = balances(&ctx, &d, key.address()).await?;
            if before.stake < n {
                return Err(input(format!(
                    "cannot withdraw {}: the free escrow of {} is {}",
                    amount::show(n),
                    key.address(),
                    amount::show(before.stake)
                )));
            }
            let acc = ctx.account(&key)?;
            let fail = |e: &dyn std::error::Error| chain_failure(rpc, e);
            let pending = DragonHub::new(d.hub, &acc.provider).withdraw(n.0).send().await.map_err(|e| fail(&e))?;
            let receipt = pending.get_receipt().await.map_err(|e| fail(&e))?;
            if !receipt.status() {
                return Err(super::error::failure(format!(
                    "the hub reverted the withdrawal ({})",
                    receipt.transaction_hash
                )));
            }
            let after = balances(&ctx, &d, key.address()).await?;
            println!("withdrew {}", amount::show(n));
            println!("escrow: {} free, {} locked", amount::show(after.stake), amount::show(after.locked));
            Ok(())
        }
        AccountCommand::Balance { address, conn } => {
            let ctx = Ctx::resolve(&conn)?;
            let who = match address {
                Some(a) => a,
                None => ctx.key()?.address(),
            };
            let d = ctx.deployment()?;
            ctx.check_chain(&d).await?;
            let b = balances(&ctx, &d, who).await?;
            println!("account {}", who.to_checksum(None));
            println!("wallet  {}", amount::show(b.wallet));
            println!("free    {}", amount::show(b.stake));
            println!("locked  {}", amount::show(b.locked));
            Ok(())
        }
    }
}
