//! The `settlement_charges` table: the gas each mined settlement cost, split over its deals, with whom each deal
//! served. The settler's gas budgets are sums of these rows over a sliding window (see `chain::budget`).

use super::{StoreError, fixed};
use alloy::primitives::Address;
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// Whom a proposal's settlement serves, for the budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealKeys {
    pub proposal: i64,
    /// The request order's signer.
    pub requester: Address,
    /// The owner of the workerpool order's pool (at publication; chain sync kills the order when it changes).
    pub workerpool_owner: Address,
    /// Nobody pays anybody: app, dataset and workerpool prices are all 0.
    pub free: bool,
}

fn address(v: &[u8]) -> Result<Address, StoreError> {
    Ok(Address::from(fixed::<20>("settlement_charges", v)?))
}

/// The budget keys of proposals, read from the proposals and their stored orders (missing ones are left out).
pub async fn keys(client: &impl GenericClient, ids: &[i64]) -> Result<Vec<DealKeys>, StoreError> {
    let rows = client
        .query(
            "SELECT p.id, r.signer, w.owner, (p.app_price + p.dataset_price + p.workerpool_price) = 0
             FROM deal_proposals p
             JOIN orders r ON r.order_hash = p.request_hash
             JOIN orders w ON w.order_hash = p.workerpool_hash
             WHERE p.id = ANY($1)",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DealKeys {
                proposal: r.get(0),
                requester: address(r.get(1))?,
                workerpool_owner: address(r.get(2))?,
                free: r.get(3),
            })
        })
        .collect()
}

/// Charges the deals of mined transaction `tx_id`: `(proposal, gas)` each, at `gas_price` wei per gas.
pub async fn charge(
    client: &impl GenericClient,
    chain_id: u64,
    tx_id: i64,
    charges: &[(i64, u64)],
    gas_price: u128,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = charges.iter().map(|c| c.0).collect();
    let gas: Vec<i64> = charges.iter().map(|c| c.1 as i64).collect();
    client
        .execute(
            "INSERT INTO settlement_charges (chain_id, tx_id, proposal_id, requester, workerpool_owner, free, gas, wei)
             SELECT $1, $2, p.id, r.signer, w.owner, (p.app_price + p.dataset_price + p.workerpool_price) = 0,
                    u.gas, u.gas::numeric * $5::text::numeric
             FROM unnest($3::bigint[], $4::bigint[]) AS u(id, gas)
             JOIN deal_proposals p ON p.id = u.id
             JOIN orders r ON r.order_hash = p.request_hash
             JOIN orders w ON w.order_hash = p.workerpool_hash",
            &[&(chain_id as i64), &tx_id, &ids, &gas, &gas_price.to_string()],
        )
        .await?;
    Ok(())
}

/// Removes the charges of transactions that a reorg took off the chain (they are charged again when mined).
pub async fn uncharge(client: &impl GenericClient, tx_ids: &[i64]) -> Result<(), StoreError> {
    client.execute("DELETE FROM settlement_charges WHERE tx_id = ANY($1)", &[&tx_ids]).await?;
    Ok(())
}

/// Gas charged within the last `window_secs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spent {
    pub operator: u64,
    pub free: u64,
    pub requesters: HashMap<Address, u64>,
    pub workerpool_owners: HashMap<Address, u64>,
}

/// What was charged within the window: in total, for free deals, and for each of the given requesters and
/// workerpool owners.
pub async fn spent(
    client: &impl GenericClient,
    chain_id: u64,
    window_secs: u64,
    requesters: &[Address],
    owners: &[Address],
) -> Result<Spent, StoreError> {
    let (chain, window) = (chain_id as i64, window_secs as i64);
    let totals = client
        .query_one(
            "SELECT COALESCE(SUM(gas), 0)::bigint, COALESCE(SUM(gas) FILTER (WHERE free), 0)::bigint
             FROM settlement_charges WHERE chain_id = $1 AND charged_at > now() - $2::bigint * interval '1 second'",
            &[&chain, &window],
        )
        .await?;
    let by = async |column: &str, who: &[Address]| -> Result<HashMap<Address, u64>, StoreError> {
        let who: Vec<&[u8]> = who.iter().map(|a| a.as_slice()).collect();
        let rows = client
            .query(
                &format!(
                    "SELECT {column}, SUM(gas)::bigint FROM settlement_charges
                     WHERE {column} = ANY($3) AND chain_id = $1 AND charged_at > now() - $2::bigint * interval '1 second'
                     GROUP BY {column}"
                ),
                &[&chain, &window, &who],
            )
            .await?;
        rows.iter().map(|r| Ok((address(r.get(0))?, r.get::<_, i64>(1) as u64))).collect()
    };
    Ok(Spent {
        operator: totals.get::<_, i64>(0) as u64,
        free: totals.get::<_, i64>(1) as u64,
        requesters: by("requester", requesters).await?,
        workerpool_owners: by("workerpool_owner", owners).await?,
    })
}

/// One budget's charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Operator,
    Free,
    Requester(Address),
    WorkerpoolOwner(Address),
}

/// When the window will have let go of enough of `budget`'s charges that at most `allowed` gas remains charged
/// (Unix milliseconds); `None` if the charges in the window already fit.
pub async fn fits_at(
    client: &impl GenericClient,
    chain_id: u64,
    window_secs: u64,
    budget: Budget,
    allowed: u64,
) -> Result<Option<i64>, StoreError> {
    let (filter, who): (&str, Option<Address>) = match budget {
        Budget::Operator => ("TRUE", None),
        Budget::Free => ("free", None),
        Budget::Requester(a) => ("requester = $4", Some(a)),
        Budget::WorkerpoolOwner(a) => ("workerpool_owner = $4", Some(a)),
    };
    // Each charge leaves the window at charged_at + window; the first one whose leaving brings the rest under
    // `allowed` gives the time.
    let sql = format!(
        "SELECT (EXTRACT(EPOCH FROM charged_at + $2::bigint * interval '1 second') * 1000)::bigint FROM (
             SELECT charged_at, SUM(gas) OVER (ORDER BY charged_at, id) AS gone,
                    SUM(gas) OVER () AS total
             FROM settlement_charges
             WHERE chain_id = $1 AND charged_at > now() - $2::bigint * interval '1 second' AND {filter}
         ) c WHERE c.total - c.gone <= $3::bigint ORDER BY charged_at LIMIT 1"
    );
    let (chain, window, allowed) = (chain_id as i64, window_secs as i64, allowed.min(i64::MAX as u64) as i64);
    let row = match who {
        Some(a) => client.query_opt(&sql, &[&chain, &window, &allowed, &a.as_slice()]).await?,
        None => client.query_opt(&sql, &[&chain, &window, &allowed]).await?,
    };
    Ok(row.map(|r| r.get(0)))
}

/// Forgets charges older than `keep_secs` (they no longer count in any window).
pub async fn prune(client: &impl GenericClient, chain_id: u64, keep_secs: u64) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM settlement_charges WHERE chain_id = $1 AND charged_at < now() - $2::bigint * interval '1 second'",
            &[&(chain_id as i64), &(keep_secs as i64)],
        )
        .await?)
}
