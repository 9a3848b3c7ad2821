//! The chain, seen through alloy's JSON-RPC provider, and Dragon's contracts on it.

pub mod contracts;
pub mod deploy;
pub mod reads;
pub mod revert;
pub mod settler;
pub mod setup;
pub mod sync;
pub mod update;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};

// The causes are printed in the messages and not chained as `#[source]`: a chain printer (`{:#}`) would
// otherwise print each cause twice.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("invalid RPC URL `{0}`")]
    BadUrl(String),
    #[error("chain RPC failed: {0}")]
    Rpc(alloy::transports::TransportError),
    #[error("contract call failed: {0}")]
    Contract(alloy::contract::Error),
    #[error("the chain did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("batched read failed: {0}")]
    Batch(String),
    #[error("transaction not confirmed: {0}")]
    Pending(alloy::providers::PendingTransactionError),
    #[error("deployment file: {0}")]
    Deployment(String),
    #[error("the contract at {hub} is not Dragon's hub for chain {chain_id}")]
    NotOurHub { hub: Address, chain_id: u64 },
}

impl From<alloy::transports::TransportError> for ChainError {
    fn from(e: alloy::transports::TransportError) -> Self {
        ChainError::Rpc(e)
    }
}

impl From<alloy::providers::PendingTransactionError> for ChainError {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        ChainError::Pending(e)
    }
}

impl From<alloy::contract::Error> for ChainError {
    fn from(e: alloy::contract::Error) -> Self {
        ChainError::Contract(e)
    }
}

#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
    hub: Option<Address>,
}

/// What the health check reports of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub chain_id: u64,
    pub block_number: u64,
    /// The configured hub, checked to answer `domain()` as PoCo's hub of this chain.
    pub hub: Option<Address>,
}

impl Chain {
    /// A chain reached through `rpc_url`, with Dragon's hub at `hub` when it is deployed there.
    pub fn connect(rpc_url: &str, hub: Option<Address>) -> Result<Self, ChainError> {
        let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        Ok(Chain { provider: ProviderBuilder::new().connect_http(url).erased(), hub })
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    pub async fn head(&self) -> Result<ChainHead, ChainError> {
        let (chain_id, block_number) =
            tokio::try_join!(self.provider.get_chain_id(), self.provider.get_block_number())?;
        if let Some(hub) = self.hub {
            // The hub's EIP-712 domain must be the one every order is signed for.
            let domain = contracts::hub::DragonHub::new(hub, &self.provider).domain().call().await?;
            if domain.name != crate::order::Domain::NAME
                || domain.chainId != U256::from(chain_id)
                || domain.verifyingContract != hub
            {
                return Err(ChainError::NotOurHub { hub, chain_id });
            }
        }
        Ok(ChainHead { chain_id, block_number, hub: self.hub })
    }
}
