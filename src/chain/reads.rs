//! What publication needs to know of the chain, kept in memory and current by chain sync, so that publishing an
//! order makes no call to the node once the index is warm.
//!
//! - **Asset owners**: read once per asset (the first order naming it), then set by chain sync from the
//!   registries' `Transfer` events.
//! - **Free stakes**: read once per account, then re-read by chain sync, at the block it applied, for every
//!   account an escrow event names (`Transfer`, `Lock`, `Unlock`, `Reward`, `Seize`).
//! - **Whether an address holds code** (an ERC-1271 signer, an ERC-734 group): read once per address. Code does
//!   not change under an address once deployed; an account that gains code later (a counterfactual deployment)
//!   is seen as it was until the exchange restarts, and the hub's own check at settlement decides.
//! - **Consumed volumes, closures, presignatures** are not here: chain sync writes every deal, closure and
//!   presignature since the hub's deployment block to the store, which publication reads in the same query as the
//!   order's own row (`store::orders::prior_known`).
//!
//! **Freshness rule:** the index is as current as chain sync's cursor: at most one poll interval (0.5 s by
//! default) plus the configured confirmations behind the node. An order published inside that window may rest
//! on a read that the chain has just made stale (a foreign deal, a withdrawal, a transfer). The hub checks
//! everything again at settlement, so the cost is one failed settlement, after which the market re-reads the
//! chain, caps the order and closes what the failure shows unusable (`Market::settlement_failed`); it never
//! makes a wrong deal. A refusal for a stake too low is confirmed by a fresh read first, so a deposit seconds
//! old is never refused because sync has not applied it yet.
//!
//! Categories and the consumed volumes that a failed settlement re-reads are read from the node on purpose:
//! they are off the publication path.

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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most entries each map of the index holds. Past it the map starts over, and its entries are read again when
/// next needed: a stranger who signs with fresh keys or names fresh restriction addresses cannot grow the index
/// without bound (a million entries is some 60 MB a map).
pub const MAX_INDEXED: usize = 1_000_000;

fn bounded_insert<K: Eq + std::hash::Hash, V>(map: &DashMap<K, V>, key: K, value: V, max: usize) {
    if map.len() >= max && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

type ConsumedReply = tokio::sync::oneshot::Sender<Result<U256, String>>;

#[derive(Debug)]
pub struct ChainReader {
    provider: DynProvider,
    deployment: Deployment,
    owners: DashMap<Address, Address>,
    codes: DashMap<Address, bool>,
    stakes: DashMap<Address, U256>,
    /// Reads made to fill the index (cold reads), for the metrics: once warm, this stops growing.
    cold_reads: AtomicU64,
    timeout: Duration,
    consumed: tokio::sync::mpsc::UnboundedSender<(OrderHash, ConsumedReply)>,
}

impl ChainReader {
    /// A reader; spawns (on the current runtime) the task that batches consumed-volume reads.
    pub fn new(provider: DynProvider, deployment: Deployment, timeout: Duration) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batch_consumed(provider.clone(), deployment.hub, timeout, rx));
        ChainReader {
            provider,
            deployment,
            owners: DashMap::new(),
            codes: DashMap::new(),
            stakes: DashMap::new(),
            cold_reads: AtomicU64::new(0),
            timeout,
            consumed: tx,
        }
    }

    /// Reads made so far to fill the index.
    pub fn cold_reads(&self) -> u64 {
        self.cold_reads.load(Ordering::Relaxed)
    }

    fn cold(&self) {
        self.cold_reads.fetch_add(1, Ordering::Relaxed);
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
        if let Some(e) = self.owners.get(&asset) {
            return Ok(*e);
        }
        self.cold();
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
            bounded_insert(&self.owners, asset, owner, MAX_INDEXED);
        }
        Ok(owner)
    }

    /// Chain sync saw `asset` change hands. Only assets already indexed are kept current: the others are read
    /// when an order first names them.
    pub fn set_owner(&self, asset: Address, owner: Address) {
        if let Some(mut e) = self.owners.get_mut(&asset) {
            *e = owner;
        }
    }

    fn hub(&self) -> DragonHub::DragonHubInstance<&DynProvider> {
        DragonHub::new(self.deployment.hub, &self.provider)
    }

    /// Volume of the order consumed on chain, read from the node (a failed settlement's check; publication reads
    /// the store's index instead). The reads waiting at the same time go to the node as one JSON-RPC batch.
    pub async fn consumed(&self, hash: OrderHash) -> Result<U256, ChainError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.consumed.send((hash, tx)).map_err(|_| ChainError::Batch("the reader stopped".into()))?;
        rx.await.map_err(|_| ChainError::Batch("the reader stopped".into()))?.map_err(ChainError::Batch)
    }

    /// Who presigned the order on chain (zero when nobody did): at `block` for chain sync, or at the node's latest
    /// block (`None`) for a refusal's last check (see `Market::check`).
    pub async fn presigned(&self, hash: OrderHash, block: Option<u64>) -> Result<Address, ChainError> {
        let hub = self.hub();
        let call = hub.viewPresigned(hash.0);
        let call = match block {
            Some(b) => call.block(b.into()),
            None => call,
        };
        self.timed(call.call()).await
    }

    /// Empties the owner and stake index (a reorg undid blocks it may have been read from).
    pub fn forget_indexed(&self) {
        self.owners.clear();
        self.stakes.clear();
    }

    /// The free (unlocked) stake of an account in the hub's escrow, from the index (see the module's freshness
    /// rule); the first read of an account fills it.
    pub async fn stake(&self, account: Address) -> Result<U256, ChainError> {
        if let Some(s) = self.stakes.get(&account) {
            return Ok(*s);
        }
        self.cold();
        self.stake_fresh(account).await
    }

    /// The free stake as the node says it now; the index takes it.
    pub async fn stake_fresh(&self, account: Address) -> Result<U256, ChainError> {
        let stake = self.timed(self.hub().viewAccount(account).call()).await?.stake;
        bounded_insert(&self.stakes, account, stake, MAX_INDEXED);
        Ok(stake)
    }

    /// The indexed accounts among `accounts`: chain sync re-reads only those.
    pub fn indexed_accounts(&self, accounts: impl IntoIterator<Item = Address>) -> Vec<Address> {
        accounts.into_iter().filter(|a| self.stakes.contains_key(a)).collect()
    }

    /// Chain sync read `account`'s free stake at the block it applied.
    pub fn set_stake(&self, account: Address, stake: U256) {
        bounded_insert(&self.stakes, account, stake, MAX_INDEXED);
    }

    /// Whether `address` holds code (a contract: an ERC-1271 signer or an ERC-734 group).
    pub async fn has_code(&self, address: Address) -> Result<bool, ChainError> {
        if let Some(e) = self.codes.get(&address) {
            return Ok(*e);
        }
        self.cold();
        let code = self.timed(self.provider.get_code_at(address)).await?;
        let has = !code.is_empty();
        bounded_insert(&self.codes, address, has, MAX_INDEXED);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_maps_are_bounded() {
        let map = DashMap::new();
        for k in 0..10u32 {
            bounded_insert(&map, k, k, 3);
            assert!(map.len() <= 3, "{} entries after {k}", map.len());
            assert_eq!(map.get(&k).map(|v| *v), Some(k), "the new entry is kept");
        }
        // Updating a key already held never empties the map.
        let held: Vec<u32> = map.iter().map(|e| *e.key()).collect();
        bounded_insert(&map, held[0], 99, 3);
        assert_eq!(map.len(), held.len());
    }
}
