//! The chain, seen through alloy's JSON-RPC provider, and Dragon's contracts on it.

pub mod contracts;
pub mod deploy;

use alloy::providers::{DynProvider, Provider, ProviderBuilder};

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("invalid RPC URL `{0}`")]
    BadUrl(String),
    #[error("chain RPC failed: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    #[error("contract call failed: {0}")]
    Contract(#[from] alloy::contract::Error),
    #[error("deployment file: {0}")]
    Deployment(String),
}

#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
}

/// What the health check reports of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub chain_id: u64,
    pub block_number: u64,
}

impl Chain {
    pub fn connect(rpc_url: &str) -> Result<Self, ChainError> {
        let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        Ok(Chain { provider: ProviderBuilder::new().connect_http(url).erased() })
    }

    pub async fn head(&self) -> Result<ChainHead, ChainError> {
        let (chain_id, block_number) =
            tokio::try_join!(self.provider.get_chain_id(), self.provider.get_block_number())?;
        Ok(ChainHead { chain_id, block_number })
    }
}
