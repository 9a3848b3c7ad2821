//! Setting up a chain for use: funding accounts with test RLC and deposits, registering assets. The local
//! market, the load benchmark and the tests use it against anvil, where Dragon's test token lets its deployer
//! mint.

use super::ChainError;
use super::contracts::hub::DragonHub;
use super::contracts::workerpool_registry::WorkerpoolRegistry;
use super::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry, token::RLC};
use super::deploy::Deployment;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use std::sync::Arc;

/// An account that sends transactions.
///
/// Each transaction takes the node's pending nonce of the account. alloy's default, a nonce cache, hands out
/// the next nonce while it estimates gas, in parallel: a transaction the hub refuses at estimation (a task
/// already initialized, a finalize too early) then leaves a gap, and every later transaction of the account
/// waits behind it forever. Sends that may overlap within a process go through [`Account::one_at_a_time`].
#[derive(Debug, Clone)]
pub struct Account {
    pub address: Address,
    pub provider: DynProvider,
    sending: Arc<tokio::sync::Mutex<()>>,
}

impl Account {
    pub fn new(rpc_url: &str, key: &PrivateKeySigner) -> Result<Self, ChainError> {
        let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(key.clone()))
            .connect_http(url)
            .erased();
        Ok(Account { address: key.address(), provider, sending: Arc::default() })
    }

    /// Runs `send` (up to the node accepting the transaction, not its mining) while no other send of this
    /// account runs: two sends in flight together would read the same pending nonce.
    pub async fn one_at_a_time<T>(&self, send: impl std::future::Future<Output = T>) -> T {
        let _turn = self.sending.lock().await;
        send.await
    }
}

/// Mints `amount` nRLC to each account with the token's minter, then each approves and deposits it.
pub async fn fund(d: &Deployment, minter: &Account, accounts: &[&Account], amount: U256) -> Result<(), ChainError> {
    for a in accounts {
        RLC::new(d.token, &minter.provider).mint(a.address, amount).send().await?.get_receipt().await?;
    }
    for a in accounts {
        RLC::new(d.token, &a.provider).approve(d.hub, amount).send().await?.get_receipt().await?;
        DragonHub::new(d.hub, &a.provider).deposit(amount).send().await?.get_receipt().await?;
    }
    Ok(())
}

/// Registers an app owned by the provider's account; returns its address.
pub async fn create_app(d: &Deployment, owner: &Account, name: &str, multiaddr: &[u8]) -> Result<Address, ChainError> {
    let who = owner.address;
    let apps = AppRegistry::new(d.app_registry, &owner.provider);
    let c = apps.createApp(
        who,
        name.into(),
        "DOCKER".into(),
        Bytes::copy_from_slice(multiaddr),
        B256::repeat_byte(1),
        Bytes::new(),
    );
    let app = c.call().await?;
    c.send().await?.get_receipt().await?;
    Ok(app)
}

/// Registers a dataset owned by the provider's account; `checksum` is the SHA-256 of its file, which workers
/// check before an app sees it.
pub async fn create_dataset(
    d: &Deployment,
    owner: &Account,
    name: &str,
    multiaddr: &[u8],
    checksum: B256,
) -> Result<Address, ChainError> {
    let who = owner.address;
    let registry = DatasetRegistry::new(d.dataset_registry, &owner.provider);
    let c = registry.createDataset(who, name.into(), Bytes::copy_from_slice(multiaddr), checksum);
    let dataset = c.call().await?;
    c.send().await?.get_receipt().await?;
    Ok(dataset)
}

pub async fn create_workerpool(d: &Deployment, owner: &Account, description: &str) -> Result<Address, ChainError> {
    let who = owner.address;
    let registry = WorkerpoolRegistry::new(d.workerpool_registry, &owner.provider);
    let c = registry.createWorkerpool(who, description.into());
    let pool = c.call().await?;
    c.send().await?.get_receipt().await?;
    Ok(pool)
}
