//! The `orders` table: inserts in groups (one statement, one commit for many orders), status and volume
//! changes, and the open orders the book is rebuilt from.

use super::{Cached, StoreError, fixed};
use crate::ids::OrderHash;
use crate::order::convert::engine_order;
use crate::order::record::{OrderRecord, OrderStatus};
use crate::order::{AnyOrder, OrderKind};
use alloy::primitives::{Address, B256, U256};
use tokio_postgres::GenericClient;

const COLUMNS: &str = "seq, order_hash, chain_id, kind, body, signer, remaining, status, \
     (extract(epoch FROM published_at) * 1000)::bigint";

fn opt_addr(a: Address) -> Option<Vec<u8>> {
    (a != Address::ZERO).then(|| a.to_vec())
}

/// Inserts `records` in one statement. Returns the hashes actually inserted: an order whose hash is already
/// stored is skipped (an order is never published twice, nor reopened once filled or cancelled on chain),
/// unless it is dead: its owner lost the stake or the asset, and may publish it again, as with the peer.
/// A group that no row can hold goes in faster with [`copy_fresh`].
pub async fn insert(client: &impl Cached, records: &[&OrderRecord]) -> Result<Vec<OrderHash>, StoreError> {
    let n = records.len();
    let mut seq = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut chain = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut signer = Vec::with_capacity(n);
    let mut asset = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut volume = Vec::with_capacity(n);
    let mut tag = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut trust = Vec::with_capacity(n);
    let (mut app, mut dataset, mut workerpool, mut requester, mut beneficiary) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut remaining = Vec::with_capacity(n);
    let mut published = Vec::with_capacity(n);
    for r in records {
        seq.push(r.seq as i64);
        hash.push(r.hash.0.to_vec());
        chain.push(r.chain_id as i64);
        kind.push(r.kind().as_str());
        body.push(r.json.get());
        signer.push(r.signer.to_vec());
        asset.push(r.asset().to_vec());
        price.push(r.price().to_string());
        volume.push(r.volume() as i64);
        tag.push(r.tag().to_vec());
        category.push(r.category().map(|c| c as i64));
        trust.push(r.trust().map(|t| t as i64));
        let roles = r.roles();
        app.push(opt_addr(roles.app));
        dataset.push(opt_addr(roles.dataset));
        workerpool.push(opt_addr(roles.workerpool));
        requester.push(opt_addr(roles.requester));
        beneficiary.push(opt_addr(roles.beneficiary));
        remaining.push(r.remaining as i64);
        published.push(r.published_ms);
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 19] = [
        &seq,
        &hash,
        &chain,
        &kind,
        &body,
        &signer,
        &asset,
        &price,
        &volume,
        &tag,
        &category,
        &trust,
        &app,
        &dataset,
        &workerpool,
        &requester,
        &beneficiary,
        &remaining,
        &published,
    ];
    let stmt = client.prepare_cached(INSERT_ORDERS).await?;
    returned(&client.query(&stmt, &params).await?)
}

/// Inserts a group of orders that the caller knows no row holds ([`super::Store::may_hold`]), with
/// `COPY ... (FORMAT binary)`: no statement to plan, no arrays to unnest, no conflict check, no expression per
/// row. All rows or none: should a hash be there after all (another writer on the same database), the unique
/// index refuses the whole COPY ([`is_unique_violation`]) and the caller runs [`insert`], which skips it.
pub async fn copy_fresh(client: &tokio_postgres::Client, records: &[&OrderRecord]) -> Result<(), StoreError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let sink = client
        .copy_in(
            "COPY orders (seq, order_hash, chain_id, kind, body, signer, asset, owner, price, volume, tag, category,
                          trust, app, dataset, workerpool, requester, beneficiary, remaining, published_at)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let b = Type::BYTEA;
    let types = [
        Type::INT8,
        b.clone(),
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        b.clone(),
        b.clone(),
        b.clone(),
        Type::NUMERIC,
        Type::INT8,
        b.clone(),
        Type::INT8,
        Type::INT8,
        b.clone(),
        b.clone(),
        b.clone(),
        b.clone(),
        b,
        Type::INT8,
        Type::TIMESTAMPTZ,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for r in records {
        let roles = r.roles();
        let opt = |a: Address| (a != Address::ZERO).then_some(a.0.0);
        let (seq, chain, volume, remaining) = (r.seq as i64, r.chain_id as i64, r.volume() as i64, r.remaining as i64);
        let (hash, signer, asset, tag) = (r.hash.0.0, r.signer.0.0, r.asset().0.0, r.tag());
        let category = r.category().map(|c| c as i64);
        let trust = r.trust().map(|t| t as i64);
        let (app, dataset, workerpool) = (opt(roles.app), opt(roles.dataset), opt(roles.workerpool));
        let (requester, beneficiary) = (opt(roles.requester), opt(roles.beneficiary));
        let published = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.published_ms.max(0) as u64);
        let row: [&(dyn ToSql + Sync); 20] = [
            &seq,
            &&hash[..],
            &chain,
            &r.kind().as_str(),
            &r.json.get(),
            &&signer[..],
            &&asset[..],
            &&signer[..],
            &rust_decimal::Decimal::from(r.price()),
            &volume,
            &&tag[..],
            &category,
            &trust,
            &app.as_ref().map(|a| &a[..]),
            &dataset.as_ref().map(|a| &a[..]),
            &workerpool.as_ref().map(|a| &a[..]),
            &requester.as_ref().map(|a| &a[..]),
            &beneficiary.as_ref().map(|a| &a[..]),
            &remaining,
            &published,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Whether `e` is a unique index refusing a row.
pub fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
}

/// The rows of a group, from one array per column; a stored hash is skipped unless its order is dead.
const INSERT_ORDERS: &str = "INSERT INTO orders (seq, order_hash, chain_id, kind, body, signer, asset, owner, price,
                                 volume, tag, category, trust, app, dataset, workerpool, requester, beneficiary,
                                 remaining, published_at)
             SELECT seq, h, c, k, b, s, a, s, p::numeric, v, t, cat, tr, ap, ds, wp, rq, bf, rem,
                    to_timestamp(pub / 1000.0)
             FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::text[], $5::text[], $6::bytea[],
                         $7::bytea[], $8::text[], $9::bigint[], $10::bytea[], $11::bigint[], $12::bigint[],
                         $13::bytea[], $14::bytea[], $15::bytea[], $16::bytea[], $17::bytea[], $18::bigint[],
                         $19::bigint[])
                  AS u(seq, h, c, k, b, s, a, p, v, t, cat, tr, ap, ds, wp, rq, bf, rem, pub)
             ON CONFLICT (order_hash) DO UPDATE
             SET seq = EXCLUDED.seq, body = EXCLUDED.body, signer = EXCLUDED.signer, owner = EXCLUDED.owner,
                 remaining = EXCLUDED.remaining, status = 'open', published_at = EXCLUDED.published_at,
                 closed_block = NULL, closed_reason = NULL, updated_at = now()
             WHERE orders.status = 'dead'
             RETURNING order_hash";

fn returned(rows: &[tokio_postgres::Row]) -> Result<Vec<OrderHash>, StoreError> {
    rows.iter().map(|row| Ok(OrderHash(B256::from(fixed::<32>("orders", row.get(0))?)))).collect()
}

/// Marks open orders `status` (canceled or dead). Returns the hashes that changed.
pub async fn close(
    client: &impl GenericClient,
    hashes: &[OrderHash],
    status: OrderStatus,
) -> Result<Vec<OrderHash>, StoreError> {
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
    let rows = client
        .query(
            "UPDATE orders SET status = $2, updated_at = now()
             WHERE order_hash = ANY($1) AND status = 'open' RETURNING order_hash",
            &[&hashes, &status.as_str()],
        )
        .await?;
    rows.iter().map(|row| Ok(OrderHash(B256::from(fixed::<32>("orders", row.get(0))?)))).collect()
}

/// Deletes open orders (unpublished: the same signed order may be published again). Returns those deleted.
pub async fn delete_open(client: &impl GenericClient, hashes: &[OrderHash]) -> Result<Vec<OrderHash>, StoreError> {
    let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
    let rows = client
        .query("DELETE FROM orders WHERE order_hash = ANY($1) AND status = 'open' RETURNING order_hash", &[&hashes])
        .await?;
    rows.iter().map(|row| Ok(OrderHash(B256::from(fixed::<32>("orders", row.get(0))?)))).collect()
}

/// Sets remaining volumes; an order with nothing left becomes `filled`, and back `open` when volume returns.
/// Closed (canceled, dead) orders are left alone.
pub async fn set_remaining(client: &impl GenericClient, updates: &[(OrderHash, u64)]) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let hashes: Vec<Vec<u8>> = updates.iter().map(|(h, _)| h.0.to_vec()).collect();
    let remaining: Vec<i64> = updates.iter().map(|(_, r)| *r as i64).collect();
    client
        .execute(
            "UPDATE orders o SET remaining = u.r,
                    status = CASE WHEN u.r = 0 THEN 'filled' ELSE 'open' END, updated_at = now()
             FROM unnest($1::bytea[], $2::bigint[]) AS u(h, r)
             WHERE o.order_hash = u.h AND o.status IN ('open', 'filled')",
            &[&hashes, &remaining],
        )
        .await?;
    Ok(())
}

/// The open orders of a chain in arrival order: what the book is rebuilt from.
pub async fn load_open(client: &impl GenericClient, chain_id: u64) -> Result<Vec<OrderRecord>, StoreError> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM orders WHERE status = 'open' AND chain_id = $1 ORDER BY seq"),
            &[&(chain_id as i64)],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// One order by hash, in any status.
pub async fn get(client: &impl GenericClient, hash: &OrderHash) -> Result<Option<OrderRecord>, StoreError> {
    let row =
        client.query_opt(&format!("SELECT {COLUMNS} FROM orders WHERE order_hash = $1"), &[&hash.0.as_slice()]).await?;
    row.as_ref().map(record).transpose()
}

/// The highest arrival number given so far (0 when none).
/// Arrival numbers per block taken from `orders_seq_blocks` (schema/0014_seq_blocks.sql).
pub const SEQ_BLOCK: u64 = 4096;

/// A block of arrival numbers no other instance holds: `[start, start + SEQ_BLOCK)`.
pub async fn reserve_seq_block(client: &impl GenericClient) -> Result<u64, StoreError> {
    let b: i64 = client.query_one("SELECT nextval('orders_seq_blocks')", &[]).await?.get(0);
    Ok(b as u64 * SEQ_BLOCK)
}

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table: "orders", detail: detail.to_string() }
}

fn record(row: &tokio_postgres::Row) -> Result<OrderRecord, StoreError> {
    let seq: i64 = row.get(0);
    let hash = OrderHash(B256::from(fixed::<32>("orders", row.get(1))?));
    let chain_id: i64 = row.get(2);
    let kind: &str = row.get(3);
    let kind = OrderKind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(|| corrupt(kind))?;
    let body: &str = row.get(4);
    let order = AnyOrder::from_json(kind, body).map_err(corrupt)?;
    let signer = Address::from(fixed::<20>("orders", row.get(5))?);
    let remaining: i64 = row.get(6);
    let status: &str = row.get(7);
    let status = OrderStatus::parse(status).ok_or_else(|| corrupt(status))?;
    let published_ms: i64 = row.get(8);
    let view = engine_order(&order, hash, order.volume()).map_err(corrupt)?;
    Ok(OrderRecord {
        seq: seq as u64,
        hash,
        chain_id: chain_id as u64,
        json: crate::order::record::raw_json(&order),
        order,
        signer,
        remaining: remaining as u64,
        status,
        published_ms,
        view,
        shown: Default::default(),
    })
}

/// What publication must know of an order hash, in one round trip: its stored status and first publication
/// time, the volume that Dragon's unsettled proposals hold, and the hub's own state as chain sync indexed it
/// (the volume its deals consumed, whether it was closed, who presigned it). Chain sync reads every deal, closure
/// and presignature from the hub's deployment block on, so an order absent from these tables has none on chain
/// up to sync's cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prior {
    pub stored: Option<(OrderStatus, i64)>,
    pub reserved: u64,
    pub consumed: u64,
    pub closed: bool,
    pub presigner: Option<Address>,
}

/// [`prior_many`], reading the database only for the hashes it may hold ([`super::seen::Seen`]): a batch of new
/// orders takes no connection and no round trip.
pub async fn prior_known(store: &super::Store, hashes: &[OrderHash]) -> Result<Vec<Prior>, StoreError> {
    // Asked once per hash: a concurrent write may turn a "no" into a "maybe" between two asks.
    let asks: Vec<bool> = hashes.iter().map(|h| store.may_hold(h)).collect();
    let maybe: Vec<OrderHash> = hashes.iter().zip(&asks).filter(|(_, m)| **m).map(|(h, _)| *h).collect();
    if maybe.is_empty() {
        return Ok(vec![Prior::default(); hashes.len()]);
    }
    let client = store.client().await?;
    let mut read = prior_many(&client, &maybe).await?.into_iter();
    drop(client);
    Ok(asks.into_iter().map(|m| if m { read.next().unwrap_or_default() } else { Prior::default() }).collect())
}

/// What the store knows of many order hashes ([`Prior`]), in one query (a batch's), in the order given.
pub async fn prior_many(client: &impl Cached, hashes: &[OrderHash]) -> Result<Vec<Prior>, StoreError> {
    let keys: Vec<&[u8]> = hashes.iter().map(|h| h.0.as_slice()).collect();
    let stmt = client
        .prepare_cached(
            "SELECT o.status, (extract(epoch FROM o.published_at) * 1000)::bigint,
                    (SELECT COALESCE(SUM(volume), 0)::bigint FROM deal_proposals
                     WHERE status IN ('proposed', 'submitted')
                       AND (app_hash = h.hash OR dataset_hash = h.hash OR workerpool_hash = h.hash
                            OR request_hash = h.hash)),
                    (SELECT LEAST(COALESCE(SUM(volume), 0), 9223372036854775807)::bigint FROM deals
                     WHERE app_hash = h.hash OR dataset_hash = h.hash OR workerpool_hash = h.hash
                        OR request_hash = h.hash),
                    EXISTS (SELECT 1 FROM order_marks WHERE order_hash = h.hash AND mark = 'closed'),
                    (SELECT signer FROM order_marks WHERE order_hash = h.hash AND mark = 'presigned'
                     ORDER BY block_number DESC, log_index DESC LIMIT 1)
             FROM unnest($1::bytea[]) WITH ORDINALITY AS h(hash, i)
             -- LATERAL: one index lookup per hash. A plain join lets the planner hash-join the whole table.
             LEFT JOIN LATERAL (SELECT status, published_at FROM orders WHERE order_hash = h.hash) o ON true
             ORDER BY h.i",
        )
        .await?;
    let rows = client.query(&stmt, &[&keys]).await?;
    rows.iter()
        .map(|row| {
            let status: Option<&str> = row.get(0);
            let stored = match status {
                Some(s) => Some((OrderStatus::parse(s).ok_or_else(|| corrupt(s))?, row.get::<_, i64>(1))),
                None => None,
            };
            Ok(Prior {
                stored,
                reserved: row.get::<_, i64>(2).max(0) as u64,
                consumed: row.get::<_, i64>(3).max(0) as u64,
                closed: row.get(4),
                presigner: super::order_marks::signer(row.get(5))?,
            })
        })
        .collect()
}

/// Volumes the store keeps (BIGINT). iExec's "infinite" bulk dataset volume, 2^53 - 1, fits.
pub fn volume_fits(v: U256) -> bool {
    v <= U256::from(i64::MAX as u64)
}

/// Orders by hash, in any status (those not stored are left out).
pub async fn get_many(client: &impl GenericClient, hashes: &[OrderHash]) -> Result<Vec<OrderRecord>, StoreError> {
    let hashes: Vec<&[u8]> = hashes.iter().map(|h| h.0.as_slice()).collect();
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM orders WHERE order_hash = ANY($1) ORDER BY seq"), &[&hashes])
        .await?;
    rows.iter().map(record).collect()
}

/// What is left of each given open or filled order ($1): its volume less its deals on chain and its proposals not
/// yet settled, negative when they promise more than it has.
const LEFT: &str = "
    SELECT o.seq, o.order_hash, o.volume - (
        (SELECT COALESCE(SUM(volume), 0) FROM deals WHERE app_hash = o.order_hash)
      + (SELECT COALESCE(SUM(volume), 0) FROM deals WHERE dataset_hash = o.order_hash)
      + (SELECT COALESCE(SUM(volume), 0) FROM deals WHERE workerpool_hash = o.order_hash)
      + (SELECT COALESCE(SUM(volume), 0) FROM deals WHERE request_hash = o.order_hash)
      + (SELECT COALESCE(SUM(volume), 0) FROM deal_proposals
          WHERE status IN ('proposed', 'submitted')
            AND (app_hash = o.order_hash OR dataset_hash = o.order_hash
                 OR workerpool_hash = o.order_hash OR request_hash = o.order_hash))
    ) AS left_
    FROM orders o
    WHERE o.order_hash = ANY($1) AND o.status IN ('open', 'filled')";

/// Locks the rows of the given orders (in hash order, so two lockers never deadlock) until the transaction ends,
/// then returns those whose deals and pending proposals exceed their volume. Several instances of a cluster
/// reserve the same app or dataset order: each locks it before it counts, so the second counts the first's
/// committed proposals (READ COMMITTED takes a new snapshot per statement), and a promise made twice is seen.
pub async fn overdrawn(client: &impl GenericClient, hashes: &[OrderHash]) -> Result<Vec<OrderHash>, StoreError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<&[u8]> = hashes.iter().map(|h| h.0.as_slice()).collect();
    client.query("SELECT 1 FROM orders WHERE order_hash = ANY($1) ORDER BY order_hash FOR UPDATE", &[&hashes]).await?;
    let rows = client.query(&format!("SELECT order_hash FROM ({LEFT}) l WHERE left_ < 0"), &[&hashes]).await?;
    returned(&rows)
}

/// Sets the remaining volume of each given open or filled order to what the chain and the pending proposals
/// leave of it: volume - volume of its deals on chain - volume of its proposals not yet settled. Returns the
/// orders as they now are. This is the one definition of `remaining` that restarts and reorgs rely on.
pub async fn recompute(client: &impl GenericClient, hashes: &[OrderHash]) -> Result<Vec<OrderRecord>, StoreError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<&[u8]> = hashes.iter().map(|h| h.0.as_slice()).collect();
    let rows = client
        .query(
            &format!(
                "WITH used AS ({LEFT})
                UPDATE orders o SET remaining = GREATEST(0, used.left_)::bigint,
                       status = CASE WHEN used.left_ > 0 THEN 'open' ELSE 'filled' END,
                       updated_at = now()
                FROM used WHERE o.seq = used.seq
                RETURNING {}",
                COLUMNS.replace("seq,", "o.seq,").replace("order_hash,", "o.order_hash,")
            ),
            &[&hashes],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// Closes open (or fully reserved) orders because of something the chain did at `block`: returns those closed.
/// A cancelled order has nothing left (remaining 0, as the peer shows it); a dead one keeps its remaining volume.
pub async fn close_at_block(
    client: &impl GenericClient,
    hashes: &[OrderHash],
    status: OrderStatus,
    block: u64,
    reason: &str,
) -> Result<Vec<OrderRecord>, StoreError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes: Vec<&[u8]> = hashes.iter().map(|h| h.0.as_slice()).collect();
    let rows = client
        .query(
            &format!(
                "UPDATE orders SET status = $2, closed_block = $3, closed_reason = $4, updated_at = now(),
                        remaining = CASE WHEN $2 = 'canceled' THEN 0 ELSE remaining END
                 WHERE order_hash = ANY($1) AND status IN ('open', 'filled')
                 RETURNING {COLUMNS}"
            ),
            &[&hashes, &status.as_str(), &(block as i64), &reason],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// Open (or fully reserved) orders whose `column` (owner, signer, asset) is `address`, of the given kinds.
pub async fn live_by(
    client: &impl GenericClient,
    column: LiveBy,
    address: Address,
    kinds: &[OrderKind],
) -> Result<Vec<OrderRecord>, StoreError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    // Publication stores the owner as the signer (the owner must sign, or presign): one column and one index
    // (`orders_live_by_owner`) serve both.
    let col = match column {
        LiveBy::Owner | LiveBy::Signer => "owner",
        LiveBy::Asset => "asset",
    };
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM orders
                 WHERE {col} = $1 AND kind = ANY($2) AND status IN ('open', 'filled') ORDER BY seq"
            ),
            &[&address.as_slice(), &kinds],
        )
        .await?;
    rows.iter().map(record).collect()
}

/// Which address column [`live_by`] looks at.
#[derive(Debug, Clone, Copy)]
pub enum LiveBy {
    Owner,
    Signer,
    Asset,
}

/// Reopens the orders chain sync closed at or above `block` (a reorg orphaned what closed them); returns their
/// hashes, whose remaining volume the caller recomputes.
pub async fn reopen_from(client: &impl GenericClient, block: u64) -> Result<Vec<OrderHash>, StoreError> {
    let rows = client
        .query(
            "UPDATE orders SET status = 'open', closed_block = NULL, closed_reason = NULL, updated_at = now()
             WHERE closed_block >= $1 RETURNING order_hash",
            &[&(block as i64)],
        )
        .await?;
    rows.iter().map(|r| Ok(OrderHash(B256::from(fixed::<32>("orders", r.get(0))?)))).collect()
}
