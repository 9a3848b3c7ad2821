//! What publication needs to know of the chain: asset owners, consumed volumes, presignatures, stakes,
//! contract signers (ERC-1271) and categories. Owners and whether an address holds code change rarely and are
//! cached for a minute (chain sync, issue 8, is to drop an owner as soon as its asset is transferred); stakes and consumed
//! volumes are read fresh, since a stale one would accept an order the hub would refuse.

use super::ChainError;
use super::contracts::workerpool_registry::WorkerpoolRegistry;
use super::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry, erc1271, hub::DragonHub};
use super::deploy::Deployment;
use crate::ids::OrderHash;
use crate::order::OrderKind;
use crate::store::categories::Category;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use dashmap::DashMap;
use std::time::{Duration, Instant};

type ConsumedReply = tokio::sync::oneshot::Sender<Result<U256, String>>;

#[derive(Debug)]
pub struct ChainReader {
    provider: DynProvider,
    deployment: Deployment,
    owners: DashMap<Address, (Address, Instant)>,
    codes: DashMap<Address, (bool, Instant)>,
    ttl: Duration,
    timeout: Duration,
    consumed: tokio::sync::mpsc::UnboundedSender<(OrderHash, ConsumedReply)>,
}

impl ChainReader {
    /// A reader; spawns (on the current runtime) the task that batches consumed-volume reads.
    pub fn new(provider: DynProvider, deployment: Deployment, ttl: Duration, timeout: Duration) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch_consumed(provider.clone(), deployment.hub, timeout, rx));
        ChainReader { provider, deployment, owners: DashMap::new(), codes: DashMap::new(), ttl, timeout, consumed: tx }
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    async fn timed<T, E: Into<ChainError>>(&self, f: impl IntoFuture<Output = Result<T, E>>) -> Result<T, ChainError> {
        match tokio::time::timeout(self.timeout, f.into_future()).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(ChainError::Timeout(self.timeout)),
        }
    }

    /// The owner of a registered app, dataset or workerpool (zero when `asset` is not registered as `kind`).
    pub async fn owner(&self, kind: OrderKind, asset: Address) -> Result<Address, ChainError> {
        if let Some(e) = self.owners.get(&asset)
            && e.1.elapsed() < self.ttl
        {
            return Ok(e.0);
        }
        let d = &self.deployment;
        let p = &self.provider;
        let owner = match kind {
            OrderKind::App => self.timed(AppRegistry::new(d.app_registry, p).ownerOfEntry(asset).call()).await?,
            OrderKind::Dataset => {
                self.timed(DatasetRegistry::new(d.dataset_registry, p).ownerOfEntry(asset).call()).await?
            }
            OrderKind::Workerpool => {
                self.timed(WorkerpoolRegistry::new(d.workerpool_registry, p).ownerOfEntry(asset).call()).await?
            }
            OrderKind::Request => return Ok(Address::ZERO),
        };
        // Unregistered assets are not cached: they may be registered a moment later.
        if owner != Address::ZERO {
            self.owners.insert(asset, (owner, Instant::now()));
        }
        Ok(owner)
    }

    /// Drops a cached owner (chain sync saw the asset change hands).
    pub fn forget_owner(&self, asset: Address) {
        self.owners.remove(&asset);
    }

    fn hub(&self) -> DragonHub::DragonHubInstance<&DynProvider> {
        DragonHub::new(self.deployment.hub, &self.provider)
    }

    /// Volume of the order consumed on chain. Every order published needs one: the reads waiting at the same
    /// time go to the node as one JSON-RPC batch, so a burst of orders costs one round trip, not one each.
    pub async fn consumed(&self, hash: OrderHash) -> Result<U256, ChainError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.consumed.send((hash, tx)).map_err(|_| ChainError::Batch("the reader stopped".into()))?;
        rx.await.map_err(|_| ChainError::Batch("the reader stopped".into()))?.map_err(ChainError::Batch)
    }

    /// Who presigned the order on chain (zero when nobody did).
    pub async fn presigned(&self, hash: OrderHash) -> Result<Address, ChainError> {
        self.timed(self.hub().viewPresigned(hash.0).call()).await
    }

    /// The free (unlocked) stake of an account in the hub's escrow.
    pub async fn stake(&self, account: Address) -> Result<U256, ChainError> {
        Ok(self.timed(self.hub().viewAccount(account).call()).await?.stake)
    }

    /// Whether `address` holds code (a contract: an ERC-1271 signer or an ERC-734 group).
    pub async fn has_code(&self, address: Address) -> Result<bool, ChainError> {
        if let Some(e) = self.codes.get(&address)
            && e.1.elapsed() < self.ttl
        {
            return Ok(e.0);
        }
        let code = self.timed(self.provider.get_code_at(address)).await?;
        let has = !code.is_empty();
        self.codes.insert(address, (has, Instant::now()));
        Ok(has)
    }

    /// ERC-1271: whether the contract `account` accepts `sig` over `digest`, as the hub asks it. A call that
    /// reverts or answers anything but the magic value is a refusal, as on chain.
    pub async fn contract_accepts(&self, account: Address, digest: B256, sig: Bytes) -> Result<bool, ChainError> {
        let c = erc1271::IERC1271::new(account, &self.provider);
        match tokio::time::timeout(self.timeout, c.isValidSignature(digest, sig).call().into_future()).await {
            Err(_) => Err(ChainError::Timeout(self.timeout)),
            Ok(Ok(magic)) => Ok(magic.0 == erc1271::MAGIC),
            Ok(Err(alloy::contract::Error::TransportError(e))) if e.as_error_resp().is_none() => Err(e.into()),
            Ok(Err(_)) => Ok(false),
        }
    }

    /// Every category the hub defines.
    pub async fn categories(&self) -> Result<Vec<Category>, ChainError> {
        let hub = self.hub();
        let n: U256 = self.timed(hub.countCategory().call()).await?;
        let n = u64::try_from(n).unwrap_or(u64::MAX).min(10_000);
        let mut out = Vec::with_capacity(n as usize);
        for id in 0..n {
            let c = self.timed(hub.viewCategory(U256::from(id)).call()).await?;
            out.push(Category {
                catid: id,
                chain_id: self.deployment.chain_id,
                name: c.name,
                description: c.description,
                work_clock_time_ref: u64::try_from(c.workClockTimeRef).unwrap_or(u64::MAX),
            });
        }
        Ok(out)
    }
}

/// Collects waiting consumed-volume reads and sends each group as one JSON-RPC batch of `eth_call`s.
async fn batch_consumed(
    provider: DynProvider,
    hub: Address,
    timeout: Duration,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(OrderHash, ConsumedReply)>,
) {
    use alloy::sol_types::SolCall;
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < 512 {
            match rx.try_recv() {
                Ok(x) => group.push(x),
                Err(_) => break,
            }
        }
        let run = async {
            let client = provider.client();
            let mut batch = alloy::rpc::client::BatchRequest::new(client);
            let mut waiters = Vec::with_capacity(group.len());
            for (hash, _) in &group {
                let data = DragonHub::viewConsumedCall { id: hash.0 }.abi_encode();
                let tx = alloy::rpc::types::TransactionRequest::default().to(hub).input(Bytes::from(data).into());
                waiters.push(batch.add_call::<_, Bytes>("eth_call", &(tx,)).map_err(|e| e.to_string())?);
            }
            batch.send().await.map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(waiters.len());
            for w in waiters {
                let answer: Result<Bytes, _> = w.await;
                out.push(match answer {
                    Ok(bytes) => DragonHub::viewConsumedCall::abi_decode_returns(&bytes).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                });
            }
            Ok::<_, String>(out)
        };
        let results = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => vec![Err(e); group.len()],
            Err(_) => vec![Err(format!("no answer within {timeout:?}")); group.len()],
        };
        for ((_, reply), r) in group.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }
}
