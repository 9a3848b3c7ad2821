//! `dragon chain deploy`: the token, the three registries and the hub (which creates its task module and the
//! five default categories itself), in that order, from one key. The addresses go to a deployment file that
//! the server and the pools read.

use super::ChainError;
use super::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry, hub::DragonHub};
use super::contracts::{token::RLC, workerpool_registry::WorkerpoolRegistry};
use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where Dragon's contracts live on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    pub chain_id: u64,
    #[serde(with = "crate::wire::json::address")]
    pub token: Address,
    #[serde(with = "crate::wire::json::address")]
    pub hub: Address,
    #[serde(with = "crate::wire::json::address")]
    pub app_registry: Address,
    #[serde(with = "crate::wire::json::address")]
    pub dataset_registry: Address,
    #[serde(with = "crate::wire::json::address")]
    pub workerpool_registry: Address,
    /// The block of the hub's deployment: where event scans start.
    pub block_number: u64,
}

impl Deployment {
    pub fn read(path: &Path) -> Result<Self, ChainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Deployment(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| ChainError::Deployment(format!("{}: {e}", path.display())))
    }

    /// Writes the file atomically (temporary file, then rename), so a crash never leaves half a file.
    pub fn write(&self, path: &Path) -> Result<(), ChainError> {
        let io = |e: std::io::Error| ChainError::Deployment(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| ChainError::Deployment(e.to_string()))?;
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Deploys everything with `key` through `rpc_url`.
pub async fn deploy(rpc_url: &str, key: PrivateKeySigner) -> Result<Deployment, ChainError> {
    let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
    let provider = ProviderBuilder::new().wallet(EthereumWallet::from(key)).connect_http(url);
    let chain_id = provider.get_chain_id().await?;
    let token = *RLC::deploy(&provider).await?.address();
    let app_registry = *AppRegistry::deploy(&provider).await?.address();
    let dataset_registry = *DatasetRegistry::deploy(&provider).await?.address();
    let workerpool_registry = *WorkerpoolRegistry::deploy(&provider).await?.address();
    let hub =
        *DragonHub::deploy(&provider, token, app_registry, dataset_registry, workerpool_registry).await?.address();
    let block_number = provider.get_block_number().await?;
    Ok(Deployment { chain_id, token, hub, app_registry, dataset_registry, workerpool_registry, block_number })
}

/// Whether `deployment` is live on the chain at `rpc_url`: same chain id and code at the hub's address.
pub async fn is_live(rpc_url: &str, deployment: &Deployment) -> Result<bool, ChainError> {
    let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
    let provider = ProviderBuilder::new().connect_http(url);
    Ok(provider.get_chain_id().await? == deployment.chain_id && !provider.get_code_at(deployment.hub).await?.is_empty())
}
