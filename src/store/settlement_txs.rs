//! The `settlement_txs` table: the settler's write-ahead log. Each signed settlement transaction (and each
//! fee-bumped replacement, a row of the same nonce) is stored with its raw bytes before it is broadcast, so a
//! restart knows everything that may still reach the chain (see `chain::settler`, "Write-ahead settlement").
//!
//! [`record`] writes how a transaction ended together with what it implies for its proposals (`deal_proposals`)
//! and their gas charges (`settlement_charges`): the settlement log as one aggregate, in the caller's
//! transaction.

use super::leases::Fence;
use super::{StoreError, fixed};
use alloy::primitives::{Address, B256};
use tokio_postgres::GenericClient;

/// A stored settlement transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementTx {
    pub id: i64,
    pub chain_id: u64,
    pub operator: Address,
    pub nonce: u64,
    pub hash: B256,
    /// The signed EIP-2718 envelope.
    pub raw: Vec<u8>,
    /// The proposals it carries, in batch order.
    pub proposals: Vec<i64>,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    /// `pending`, `mined` or `dead`.
    pub status: String,
}

/// A transaction about to be broadcast.
#[derive(Debug, Clone, Copy)]
pub struct NewTx<'a> {
    pub chain_id: u64,
    pub operator: Address,
    pub nonce: u64,
    pub hash: B256,
    pub raw: &'a [u8],
    pub proposals: &'a [i64],
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

const COLUMNS: &str = "id, chain_id, operator, nonce, tx_hash, raw, proposals, gas_limit, max_fee_per_gas::text, \
                       max_priority_fee_per_gas::text, status";

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table: "settlement_txs", detail: detail.to_string() }
}

fn row(r: &tokio_postgres::Row) -> Result<SettlementTx, StoreError> {
    let fee = |i: usize| -> Result<u128, StoreError> {
        let s: String = r.get(i);
        s.parse().map_err(|_| corrupt(format!("fee {s} is not a u128")))
    };
    Ok(SettlementTx {
        id: r.get(0),
        chain_id: r.get::<_, i64>(1) as u64,
        operator: Address::from(fixed::<20>("settlement_txs", r.get(2))?),
        nonce: r.get::<_, i64>(3) as u64,
        hash: B256::from(fixed::<32>("settlement_txs", r.get(4))?),
        raw: r.get(5),
        proposals: r.get(6),
        gas_limit: r.get::<_, i64>(7) as u64,
        max_fee_per_gas: fee(8)?,
        max_priority_fee_per_gas: fee(9)?,
        status: r.get(10),
    })
}

/// Records a signed transaction as `pending` (it may reach the chain from now on); returns its id.
pub async fn insert(client: &impl GenericClient, t: &NewTx<'_>) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "INSERT INTO settlement_txs (chain_id, operator, nonce, tx_hash, raw, proposals, gas_limit,
                                         max_fee_per_gas, max_priority_fee_per_gas)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9::text::numeric) RETURNING id",
            &[
                &(t.chain_id as i64),
                &t.operator.as_slice(),
                &(t.nonce as i64),
                &t.hash.as_slice(),
                &t.raw,
                &t.proposals,
                &(t.gas_limit as i64),
                &t.max_fee_per_gas.to_string(),
                &t.max_priority_fee_per_gas.to_string(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The transactions that may still land (of any operator key this exchange used), by operator, nonce, age.
pub async fn pending(client: &impl GenericClient, chain_id: u64) -> Result<Vec<SettlementTx>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM settlement_txs WHERE chain_id = $1 AND status = 'pending'
                 ORDER BY operator, nonce, id"
            ),
            &[&(chain_id as i64)],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// Every row of one nonce (the original and its replacements), oldest first.
pub async fn at_nonce(
    client: &impl GenericClient,
    chain_id: u64,
    operator: Address,
    nonce: u64,
) -> Result<Vec<SettlementTx>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM settlement_txs WHERE chain_id = $1 AND operator = $2 AND nonce = $3
                 ORDER BY id"
            ),
            &[&(chain_id as i64), &operator.as_slice(), &(nonce as i64)],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// What a receipt says about a mined row.
#[derive(Debug, Clone, Copy)]
pub struct Mined {
    pub succeeded: bool,
    pub block_number: u64,
    pub gas_used: u64,
    pub effective_gas_price: u128,
}

/// Row `id` was mined; the other rows of its nonce can never be (same nonce): they are dead.
pub async fn mark_mined(client: &impl GenericClient, id: i64, m: &Mined) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE settlement_txs SET status = 'mined', reason = NULL, succeeded = $2, block_number = $3,
                    gas_used = $4, effective_gas_price = $5::text::numeric, updated_at = now()
             WHERE id = $1",
            &[&id, &m.succeeded, &(m.block_number as i64), &(m.gas_used as i64), &m.effective_gas_price.to_string()],
        )
        .await?;
    client
        .execute(
            "UPDATE settlement_txs o SET status = 'dead', reason = 'replaced by ' || '0x' || encode(m.tx_hash, 'hex'),
                    updated_at = now()
             FROM settlement_txs m
             WHERE m.id = $1 AND o.chain_id = m.chain_id AND o.operator = m.operator AND o.nonce = m.nonce
               AND o.id <> m.id AND o.status <> 'dead'",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Every row of a nonce that no row of ours consumed: none of them can land any more.
pub async fn mark_nonce_dead(
    client: &impl GenericClient,
    chain_id: u64,
    operator: Address,
    nonce: u64,
    reason: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE settlement_txs SET status = 'dead', reason = $4, updated_at = now()
             WHERE chain_id = $1 AND operator = $2 AND nonce = $3 AND status = 'pending'",
            &[&(chain_id as i64), &operator.as_slice(), &(nonce as i64), &reason],
        )
        .await?;
    Ok(())
}

/// One row that the node refused at its first and only broadcast: no copy of it exists outside the store.
pub async fn discard(client: &impl GenericClient, id: i64, reason: &str) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE settlement_txs SET status = 'dead', reason = $2, updated_at = now()
             WHERE id = $1 AND status = 'pending'",
            &[&id, &reason],
        )
        .await?;
    Ok(())
}

/// Of `ids`, the proposals a transaction may still settle: carried by a row that may land, or by a mined row
/// that succeeded (chain sync settles its deals, possibly only after its confirmations).
pub async fn in_flight(client: &impl GenericClient, chain_id: u64, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT DISTINCT p FROM settlement_txs t, unnest(t.proposals) AS p
             WHERE t.chain_id = $1 AND t.proposals && $2::bigint[] AND p = ANY($2)
               AND (t.status = 'pending' OR (t.status = 'mined' AND t.succeeded))",
            &[&(chain_id as i64), &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether the store holds a transaction with this hash (proposals submitted before this table existed
/// have a hash and no row).
pub async fn known(client: &impl GenericClient, hash: B256) -> Result<bool, StoreError> {
    Ok(client.query_opt("SELECT 1 FROM settlement_txs WHERE tx_hash = $1", &[&hash.as_slice()]).await?.is_some())
}

/// A reorg orphaned blocks `from..`: rows mined there may land again (or already did elsewhere), so they are
/// followed again from `pending`, together with the rows of their nonce. Returns the rows reopened.
pub async fn reopen_from(
    client: &impl GenericClient,
    chain_id: u64,
    from: u64,
) -> Result<Vec<SettlementTx>, StoreError> {
    let rows = client
        .query(
            &format!(
                "UPDATE settlement_txs o SET status = 'pending', reason = NULL, succeeded = NULL, block_number = NULL,
                        gas_used = NULL, effective_gas_price = NULL, updated_at = now()
                 FROM settlement_txs m
                 WHERE m.chain_id = $1 AND m.status = 'mined' AND m.block_number >= $2
                   AND o.chain_id = m.chain_id AND o.operator = m.operator AND o.nonce = m.nonce
                   AND (o.id = m.id OR o.reason LIKE 'replaced by %')
                 RETURNING {}",
                COLUMNS
                    .split(", ")
                    .map(|c| if c.contains("::") { format!("o.{c}") } else { format!("o.{}", c.trim()) })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&(chain_id as i64), &(from as i64)],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// What the settlement log records about a followed transaction, in the same store transaction as the failures
/// of its proposals (so a crash never records one without the other).
#[derive(Debug, Clone)]
pub enum Record {
    None,
    /// A row was mined (the others of its nonce are dead): its deals are charged their share of the gas, charges
    /// older than `keep_secs` are pruned, and for a reverted batch its proposals go back to `proposed` to be
    /// settled one by one (`unsubmit`).
    Mined {
        row: Box<SettlementTx>,
        mined: Mined,
        unsubmit: bool,
        charges: Vec<(i64, u64)>,
        keep_secs: u64,
    },
    /// No row of this nonce can land.
    Dead {
        operator: Address,
        nonce: u64,
        reason: String,
    },
}

/// Writes `record` in the caller's transaction.
pub async fn record(client: &impl GenericClient, chain_id: u64, record: &Record) -> Result<(), StoreError> {
    use super::{proposals, settlement_charges};
    match record {
        Record::None => {}
        Record::Mined { row, mined, unsubmit, charges, keep_secs } => {
            mark_mined(client, row.id, mined).await?;
            proposals::set_tx(client, &row.proposals, row.hash).await?;
            settlement_charges::charge(client, chain_id, row.id, charges, mined.effective_gas_price).await?;
            settlement_charges::prune(client, chain_id, *keep_secs).await?;
            if *unsubmit {
                proposals::unsubmit(client, &row.proposals).await?;
            }
        }
        Record::Dead { operator, nonce, reason } => {
            mark_nonce_dead(client, chain_id, *operator, *nonce, reason).await?
        }
    }
    Ok(())
}

/// A new transaction and its proposals' `submitted`, in one store transaction: the write-ahead record, committed
/// before any byte of the transaction leaves.
/// Under `fence`, the settler's tenure: a deposed leader's record is refused, so it never sends.
pub async fn record_new(store: &super::Store, row: &NewTx<'_>, fence: Option<&Fence>) -> Result<i64, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    super::leases::check_opt(&*tx, fence).await?;
    let id = insert(&*tx, row).await?;
    super::proposals::mark_submitted(&*tx, row.proposals, row.hash).await?;
    tx.commit().await?;
    Ok(id)
}

/// A row the node refused at its only broadcast: dead, and its proposals back to `proposed`, together.
pub async fn record_refused(
    store: &super::Store,
    id: i64,
    proposals: &[i64],
    message: &str,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    super::leases::check_opt(&*tx, fence).await?;
    discard(&*tx, id, &format!("refused by the node: {message}")).await?;
    super::proposals::unsubmit(&*tx, proposals).await?;
    tx.commit().await?;
    Ok(())
}

/// A fee-bumped replacement, stored under `fence` before it is sent (a deposed leader stores and sends nothing).
pub async fn record_replacement(
    store: &super::Store,
    row: &NewTx<'_>,
    fence: Option<&Fence>,
) -> Result<i64, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    super::leases::check_opt(&*tx, fence).await?;
    let id = insert(&*tx, row).await?;
    tx.commit().await?;
    Ok(id)
}
