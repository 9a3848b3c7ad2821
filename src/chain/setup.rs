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

/// An account that sends transactions. Keep one per key: alloy's nonce filler caches nonces per provider.
#[derive(Debug, Clone)]
pub struct Account {
    pub address: Address,
    pub provider: DynProvider,
}

impl Account {
    pub fn new(rpc_url: &str, key: &PrivateKeySigner) -> Result<Self, ChainError> {
        let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        let provider = ProviderBuilder::new().wallet(EthereumWallet::from(key.clone())).connect_http(url).erased();
        Ok(Account { address: key.address(), provider })
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
