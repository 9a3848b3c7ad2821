//! Write-ahead settlement: signing, storing, broadcasting and following one transaction to its end.
//!
//! The protocol (docs/architecture.md, "Write-ahead settlement"):
//!
//! 1. Build the whole transaction: the node's gas estimate plus a margin, EIP-1559 fees, the chain id, and the
//!    nonce from the node's *pending* count for the operator. One settlement is in flight at a time and every
//!    stored one is followed to its end before a new one is built, so that count is never one of ours that may
//!    still land: it is the next free nonce.
//! 2. Sign it locally and store the raw bytes, hash, nonce and proposals, and mark the proposals `submitted`, in
//!    ONE store transaction. Only then broadcast it. A stop at any point leaves either nothing (nothing was sent)
//!    or the row (it may have been sent).
//! 3. Follow it: a receipt for any row of its nonce decides. Otherwise, while the nonce is unused, the same bytes
//!    are sent again whenever the node does not know them, and after `receipt_timeout` a replacement with bumped
//!    fees (a new row of the same nonce, also stored before it is sent) is sent. Never a second transaction for
//!    the same proposals at another nonce: the first could still land.
//! 4. Only when the operator's mined nonce count has passed the nonce (at the confirmation depth) and no row of
//!    that nonce has a receipt is the transaction dead, and its proposals fail.

use super::{SendError, Settler, SettlerStats, classify};
use crate::store::settlement_txs::{self, NewTx, SettlementTx};
use alloy::consensus::{Transaction as _, TxEnvelope};
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::network::{NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What the node said to a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// It has the transaction (now, or already).
    Accepted,
    /// It answered with a refusal: it does not hold these bytes.
    Refused(String),
    /// No answer (timeout, connection): it may or may not hold them.
    Unknown(String),
}

/// Sorts the answer to `eth_sendRawTransaction`.
pub fn sent(r: Result<(), alloy::transports::TransportError>) -> Sent {
    use alloy::transports::RpcError;
    match r {
        Ok(()) => Sent::Accepted,
        Err(RpcError::ErrorResp(payload)) => {
            let m = payload.message.to_lowercase();
            // geth says "already known", anvil "transaction already imported", others "known transaction".
            if m.contains("already known") || m.contains("already imported") || m.contains("known transaction") {
                Sent::Accepted
            } else {
                Sent::Refused(payload.message.to_string())
            }
        }
        Err(e) => Sent::Unknown(e.to_string()),
    }
}

/// What one look at the chain found for a followed nonce.
enum Look {
    Mined(Box<Outcome>),
    /// Not mined, nonce unused: it may still land.
    Pending,
    /// The nonce is used and no row of ours has a receipt, yet.
    Passed,
}

/// How long a used nonce must stay without a receipt of ours before its rows are dead.
const DEAD_AFTER: Duration = Duration::from_secs(1);

/// How a followed nonce ended.
#[derive(Debug)]
pub enum Outcome {
    /// This row was mined.
    Mined(SettlementTx, Box<TransactionReceipt>),
    /// The nonce was consumed by a transaction that is none of these rows.
    Dead(Vec<SettlementTx>),
    /// No row of the nonce may land any more and none was mined: every one was refused at its only broadcast,
    /// and their proposals were already handed back.
    Gone,
}

/// A signed transaction, ready to be stored and sent.
#[derive(Debug, Clone)]
pub struct Signed {
    pub raw: Vec<u8>,
    pub hash: B256,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// The call a stored transaction makes (to replay a revert, or rebuild a replacement).
pub fn call_of(raw: &[u8]) -> Option<(Address, Bytes)> {
    let tx = TxEnvelope::decode_2718(&mut &raw[..]).ok()?;
    Some((tx.to()?, tx.input().clone()))
}

impl Settler {
    /// Signs a call to `to` with every field set, so that the bytes stored are exactly the bytes sent.
    pub(super) async fn sign(
        &self,
        to: Address,
        input: Bytes,
        nonce: u64,
        gas_limit: u64,
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    ) -> Result<Signed, String> {
        let request = TransactionRequest::default()
            .with_from(self.operator)
            .with_to(to)
            .with_input(input)
            .with_chain_id(self.chain_id)
            .with_nonce(nonce)
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(max_fee_per_gas)
            .with_max_priority_fee_per_gas(max_priority_fee_per_gas);
        let envelope = request.build(&self.wallet).await.map_err(|e| e.to_string())?;
        Ok(Signed {
            raw: envelope.encoded_2718(),
            hash: *envelope.tx_hash(),
            nonce,
            gas_limit,
            max_fee_per_gas,
            max_priority_fee_per_gas,
        })
    }

    pub(super) async fn broadcast(&self, raw: &[u8]) -> Sent {
        sent(self.provider.send_raw_transaction(raw).await.map(|_| ()))
    }

    /// Follows the rows of `(operator, nonce)` until one is mined or the nonce is known to be used by another
    /// transaction. RPC and store errors are retried: only the chain decides.
    ///
    /// Why the nonce decides: a transaction lands only with its nonce, and a nonce is consumed once. While the
    /// operator's mined count (at the confirmation depth) has not passed `nonce`, one of these rows may still land,
    /// so nothing else is sent for their proposals: only the identical bytes again, or a replacement of the same
    /// nonce (at most one version can be mined). Once the count has passed it and no row has a receipt, none ever
    /// will: the rows are dead, and only then may their proposals fail and go out again.
    pub(super) async fn follow(&self, operator: Address, nonce: u64, stats: &SettlerStats) -> Outcome {
        // The replacement clock starts now, also after a restart: the first thing a restarted settler does with
        // a stored transaction is to send the very same bytes, never a new version.
        let mut since = Instant::now();
        let mut wait = Duration::from_millis(20);
        let mut round: u64 = 0;
        // When a look first found the nonce used with no receipt of ours: see `check`.
        let mut passed_at: Option<Instant> = None;
        loop {
            // Deposed: the next leader follows this nonce; nothing here may act on it any more.
            if self.is_deposed() {
                return Outcome::Gone;
            }
            let rows = match self.store.client().await {
                Ok(c) => settlement_txs::at_nonce(&**c, self.chain_id, operator, nonce).await,
                Err(e) => Err(e),
            };
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, nonce, "reading a stored settlement failed; retrying");
                    tokio::time::sleep(self.config.max_backoff).await;
                    continue;
                }
            };
            match self.check(&rows, operator, nonce).await {
                Ok(Look::Mined(outcome)) => return *outcome,
                Ok(Look::Pending) => passed_at = None,
                // A node can show the nonce consumed a moment before it serves the receipt of the block that
                // consumed it (anvil commits the state, then stores the block): one look proves nothing. Dead
                // only when a later look, `DEAD_AFTER` on, still finds no receipt.
                Ok(Look::Passed) => match passed_at {
                    Some(t) if t.elapsed() >= DEAD_AFTER => return Outcome::Dead(rows),
                    Some(_) => {}
                    None => passed_at = Some(Instant::now()),
                },
                Err(e) => tracing::debug!(error = %e, nonce, "looking for a settlement on chain failed; retrying"),
            }
            if passed_at.is_some() {
                tokio::time::sleep(DEAD_AFTER / 4).await;
                continue;
            }
            let Some(newest) = rows.iter().rev().find(|r| r.status == "pending").cloned() else {
                return Outcome::Gone;
            };
            // Not mined and its nonce unused: it may still land. Make sure the node holds it (a restarted or
            // pruned node forgets its pool) by sending the identical bytes again.
            if round.is_multiple_of(5) && !self.node_has(newest.hash).await {
                match self.broadcast(&newest.raw).await {
                    Sent::Accepted => tracing::info!(tx = %newest.hash, nonce, "stored settlement sent again"),
                    other => tracing::debug!(tx = %newest.hash, ?other, "sending a stored settlement again"),
                }
            }
            if since.elapsed() >= self.config.receipt_timeout {
                since = Instant::now();
                let replacements = rows.len().saturating_sub(1) as u32;
                if operator != self.operator {
                    tracing::warn!(tx = %newest.hash, nonce, %operator,
                        "a settlement of a former operator key is not mined; waiting (it cannot be replaced)");
                } else if replacements < self.config.max_replacements {
                    self.replace(&newest, stats).await;
                } else {
                    tracing::warn!(tx = %newest.hash, nonce, replacements,
                        "settlement still not mined after every fee bump; its nonce is unused, so it may still land: waiting");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.config.poll);
            round += 1;
        }
    }

    /// One look at the chain: a receipt of any row, or the nonce used by something else.
    async fn check(
        &self,
        rows: &[SettlementTx],
        operator: Address,
        nonce: u64,
    ) -> Result<Look, alloy::transports::TransportError> {
        if let Some(m) = self.receipt_of(rows).await? {
            return Ok(Look::Mined(Box::new(m)));
        }
        // The number of the operator's transactions mined at the confirmation depth is the next nonce there. The
        // count is read BEFORE the receipts below: whatever consumed the nonce is in a block those reads see.
        let head = self.provider.get_block_number().await?;
        let at = head.saturating_sub(self.config.confirmations);
        let used = self.provider.get_transaction_count(operator).number(at).await?;
        if used <= nonce {
            return Ok(Look::Pending);
        }
        if let Some(m) = self.receipt_of(rows).await? {
            return Ok(Look::Mined(Box::new(m)));
        }
        Ok(Look::Passed)
    }

    async fn receipt_of(&self, rows: &[SettlementTx]) -> Result<Option<Outcome>, alloy::transports::TransportError> {
        // Newest first: a replacement is likelier to be the one mined.
        for r in rows.iter().rev() {
            if let Some(receipt) = self.provider.get_transaction_receipt(r.hash).await? {
                return Ok(Some(Outcome::Mined(r.clone(), Box::new(receipt))));
            }
        }
        Ok(None)
    }

    async fn node_has(&self, hash: B256) -> bool {
        // An error counts as "has": sending again is for a node that answers and lost it.
        !matches!(self.provider.get_transaction_by_hash(hash).await, Ok(None))
    }

    /// A new version of `newest` with bumped fees (nodes require at least 10% more to replace), same nonce, same
    /// call, same gas limit, stored before it is sent.
    async fn replace(&self, newest: &SettlementTx, stats: &SettlerStats) {
        let Some((to, input)) = call_of(&newest.raw) else {
            tracing::error!(tx = %newest.hash, "a stored settlement does not decode; it is followed but not replaced");
            return;
        };
        let bump = |v: u128| v + v * self.config.bump_percent / 100 + 1;
        let (mut max_fee, mut tip) = (bump(newest.max_fee_per_gas), bump(newest.max_priority_fee_per_gas));
        if let Ok(now) = self.provider.estimate_eip1559_fees().await {
            max_fee = max_fee.max(now.max_fee_per_gas);
            tip = tip.max(now.max_priority_fee_per_gas);
        }
        let signed = match self.sign(to, input, newest.nonce, newest.gas_limit, max_fee, tip.min(max_fee)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "signing a replacement failed");
                return;
            }
        };
        let row = NewTx {
            chain_id: self.chain_id,
            operator: self.operator,
            nonce: signed.nonce,
            hash: signed.hash,
            raw: &signed.raw,
            proposals: &newest.proposals,
            gas_limit: signed.gas_limit,
            max_fee_per_gas: signed.max_fee_per_gas,
            max_priority_fee_per_gas: signed.max_priority_fee_per_gas,
        };
        let id = match settlement_txs::record_replacement(&self.store, &row, self.fence.as_ref()).await {
            Ok(id) => id,
            Err(e) if self.fenced(&e) => return,
            Err(e) => {
                tracing::warn!(error = %e, "storing a replacement failed; it is not sent");
                return;
            }
        };
        match self.broadcast(&signed.raw).await {
            Sent::Accepted => {
                stats.replaced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(old = %newest.hash, new = %signed.hash, nonce = newest.nonce, "settlement replaced with higher fees");
                let res = async {
                    let mut c = self.store.client().await?;
                    let tx = c.transaction().await?;
                    crate::store::leases::check_opt(&*tx, self.fence.as_ref()).await?;
                    crate::store::proposals::set_tx(&*tx, &newest.proposals, signed.hash).await?;
                    tx.commit().await?;
                    Ok::<_, crate::store::StoreError>(())
                }
                .await;
                if let Err(e) = res
                    && !self.fenced(&e)
                {
                    tracing::warn!(error = %e, "recording a replacement's hash failed");
                }
            }
            Sent::Refused(m) => {
                // Never held by anyone: it cannot land, and the older versions are still followed.
                tracing::warn!(error = %m, "the node refused a replacement");
                let reason = format!("refused by the node: {m}");
                let res = async {
                    let mut c = self.store.client().await?;
                    let tx = c.transaction().await?;
                    crate::store::leases::check_opt(&*tx, self.fence.as_ref()).await?;
                    settlement_txs::discard(&*tx, id, &reason).await?;
                    tx.commit().await?;
                    Ok::<_, crate::store::StoreError>(())
                }
                .await;
                if let Err(e) = res {
                    self.fenced(&e);
                }
                if let SendError::NoGasMoney(_) = classify_refusal(&m) {
                    stats.out_of_gas_money.store(true, Ordering::Relaxed);
                }
            }
            Sent::Unknown(m) => tracing::warn!(error = %m, "sending a replacement got no answer; it is followed"),
        }
    }
}

/// A refusal's message sorted as [`classify`] sorts errors.
pub fn classify_refusal(message: &str) -> SendError {
    let payload = serde_json::json!({"code": -32000, "message": message});
    match serde_json::from_value(payload) {
        Ok(p) => classify(&alloy::contract::Error::TransportError(alloy::transports::RpcError::ErrorResp(p))),
        Err(_) => SendError::Retryable(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::transports::{RpcError, TransportErrorKind};

    fn refused(message: &str) -> Result<(), alloy::transports::TransportError> {
        let payload = serde_json::from_value(serde_json::json!({"code": -32000, "message": message})).expect("payload");
        Err(RpcError::ErrorResp(payload))
    }

    #[test]
    fn a_node_that_already_holds_the_bytes_counts_as_accepting_them() {
        assert_eq!(sent(Ok(())), Sent::Accepted);
        assert_eq!(sent(refused("already known")), Sent::Accepted);
        assert_eq!(sent(refused("transaction already imported")), Sent::Accepted);
        assert!(matches!(sent(refused("nonce too low")), Sent::Refused(_)));
        assert!(matches!(sent(refused("insufficient funds for gas * price + value")), Sent::Refused(_)));
        assert!(matches!(sent(Err(RpcError::Transport(TransportErrorKind::BackendGone))), Sent::Unknown(_)));
        assert!(matches!(classify_refusal("Insufficient funds for gas * price + value"), SendError::NoGasMoney(_)));
        assert!(matches!(classify_refusal("replacement transaction underpriced"), SendError::Retryable(_)));
    }
}
