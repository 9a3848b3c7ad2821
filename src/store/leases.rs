//! Leases with epoch fencing (`leases`): which instance of a cluster owns a thing (the settler of a chain, later
//! each category's book), for how long by the database's clock, and the check that makes every write of the
//! owner conditional on still owning it.
//!
//! A lease is named (`settler:<chain_id>`, `category:<chain_id>:<id>`) and held by one instance id at one epoch.
//! [`acquire`] takes or renews it in one statement; the epoch grows with every new tenure (another holder, or the
//! same one after the lease expired), so `(holder, epoch)` names one continuous tenure.
//!
//! Why [`check`] inside the write's own transaction, with `FOR SHARE`, is a correct fence:
//!
//! - The check reads the row and locks it `FOR SHARE` until the transaction ends. A takeover is an `UPDATE` of
//!   the same row (`INSERT ... ON CONFLICT DO UPDATE` locks it `FOR NO KEY UPDATE`), which conflicts with
//!   `FOR SHARE`: it waits until every transaction that already passed the check has committed or rolled back.
//!   (`FOR KEY SHARE` would not do: it does not conflict with `FOR NO KEY UPDATE`, so a takeover could commit
//!   between a stale holder's check and its commit.)
//! - A check that comes after the takeover committed sees the new holder and epoch and fails.
//! - So every fenced write of epoch `e` commits before the row moves to `e + 1`, and every fenced write of
//!   `e + 1` starts after: the tenures' writes never interleave, whatever the holders' clocks, pauses or network.
//!
//! `FOR SHARE` is shared: the holder's own fenced transactions never wait for each other, only renewals and
//! takeovers wait for them (a renewal may be delayed by a long fenced transaction; that costs liveness, never
//! safety, and the holder steps down by its own clock before the database would let anyone else in).
//!
//! Expiry compares `expires_at` with `clock_timestamp()`, the database's clock at the moment of the check, not the
//! transaction's start (`now()`): a fenced transaction that began before expiry and checks after it is refused
//! even when nobody has taken the lease yet.

use super::StoreError;
use std::time::Duration;
use tokio_postgres::GenericClient;

/// One tenure of one lease: what every fenced write carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

/// A lease row as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    /// Whether `expires_at` is still ahead of the database's clock.
    pub live: bool,
}

/// The name of the settler's lease on a chain.
pub fn settler(chain_id: u64) -> String {
    format!("settler:{chain_id}")
}

/// The name of a category book's lease on a chain.
pub fn category(chain_id: u64, category: u64) -> String {
    format!("category:{chain_id}:{category}")
}

/// An instance id, new at every call (call it once per process start): random, so a restarted process on the
/// same host and pid is another holder, then host and pid for people reading the table.
pub fn instance_id() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the time still tells starts apart; the id only has to differ between tenures.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (t.as_nanos() as u64).to_be_bytes();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "localhost" } else { host };
    format!("{}@{host}:{}", alloy::hex::encode(bytes), std::process::id())
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Takes `name` for `holder` for `ttl` by the database's clock, or renews it: in one statement, so two
/// candidates racing for a free lease cannot both win (one inserts or updates, the other then finds the row
/// held and live). Returns the epoch held, or `None` when another holder's lease is still live.
///
/// The epoch stays when the holder renews a live lease of its own, and grows otherwise (another holder, or this
/// one after its lease expired: its writes of the expired tenure must not pass any more).
pub async fn acquire(
    client: &impl GenericClient,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<i64>, StoreError> {
    let row = client
        .query_opt(
            "INSERT INTO leases AS l (name, holder, epoch, expires_at, acquired_at, renewed_at)
             VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond', now(), now())
             ON CONFLICT (name) DO UPDATE SET
                 epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                              THEN l.epoch ELSE l.epoch + 1 END,
                 acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                                    THEN l.acquired_at ELSE now() END,
                 holder = EXCLUDED.holder,
                 expires_at = EXCLUDED.expires_at,
                 renewed_at = now()
             WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
             RETURNING epoch",
            &[&name, &holder, &ttl_ms(ttl)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Gives the lease up at once (a graceful stop), so another instance need not wait for the TTL. Only the tenure
/// `fence` names is ended; the next holder's epoch still grows. Returns whether it was still held.
pub async fn release(client: &impl GenericClient, fence: &Fence) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE leases SET expires_at = clock_timestamp()
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()",
            &[&fence.name, &fence.holder, &fence.epoch],
        )
        .await?;
    Ok(n == 1)
}

/// The fence: passes only while `fence`'s tenure is live, and holds the lease row `FOR SHARE` until the caller's
/// transaction ends, so no takeover commits before it does (see the module's doc). Call it inside the
/// transaction of the write it guards, before the write; outside a transaction it proves nothing.
pub async fn check(client: &impl GenericClient, fence: &Fence) -> Result<(), StoreError> {
    let held = client
        .query_opt(
            "SELECT 1 FROM leases
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
             FOR SHARE",
            &[&fence.name, &fence.holder, &fence.epoch],
        )
        .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced { lease: fence.name.clone(), epoch: fence.epoch }),
    }
}

/// [`check`] when there is a fence: writers that run alone (no cluster) pass `None`.
pub async fn check_opt(client: &impl GenericClient, fence: Option<&Fence>) -> Result<(), StoreError> {
    match fence {
        Some(f) => check(client, f).await,
        None => Ok(()),
    }
}

/// The lease row, if it was ever taken.
pub async fn get(client: &impl GenericClient, name: &str) -> Result<Option<Lease>, StoreError> {
    let row = client
        .query_opt("SELECT name, holder, epoch, expires_at > clock_timestamp() FROM leases WHERE name = $1", &[&name])
        .await?;
    Ok(row.map(|r| Lease { name: r.get(0), holder: r.get(1), epoch: r.get(2), live: r.get(3) }))
}

/// The name of an instance's membership lease: held by the instance alone, it says the instance is alive, and
/// the live ones share the categories (`cluster::owner`).
pub fn member(chain_id: u64, holder: &str) -> String {
    format!("member:{chain_id}:{holder}")
}

/// The holders of the chain's live membership leases, sorted.
pub async fn live_members(client: &impl GenericClient, chain_id: u64) -> Result<Vec<String>, StoreError> {
    let prefix = format!("member:{chain_id}:");
    let rows = client
        .query(
            "SELECT holder FROM leases
             WHERE starts_with(name, $1) AND expires_at > clock_timestamp() ORDER BY holder",
            &[&prefix],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// [`check`] for several tenures of one holder at once (a group commit touching several categories): passes only
/// when every one is live, and holds each row `FOR SHARE` until the caller's transaction ends.
pub async fn check_all(client: &impl GenericClient, fences: &[&Fence]) -> Result<(), StoreError> {
    let Some(first) = fences.first() else { return Ok(()) };
    let names: Vec<&str> = fences.iter().map(|f| f.name.as_str()).collect();
    let epochs: Vec<i64> = fences.iter().map(|f| f.epoch).collect();
    let held: Vec<String> = client
        .query(
            "SELECT l.name FROM leases l
             JOIN unnest($1::text[], $2::bigint[]) AS f(name, epoch) ON l.name = f.name AND l.epoch = f.epoch
             WHERE l.holder = $3 AND l.expires_at > clock_timestamp()
             FOR SHARE OF l",
            &[&names, &epochs, &first.holder],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    match fences.iter().find(|f| !held.contains(&f.name)) {
        None => Ok(()),
        Some(f) => Err(StoreError::Fenced { lease: f.name.clone(), epoch: f.epoch }),
    }
}

/// The identity of the cluster this database serves (`schema/0015_cluster_identity.sql`): 16 hex digits.
pub async fn cluster_id(client: &impl GenericClient) -> Result<String, StoreError> {
    Ok(client.query_one("SELECT id FROM cluster_identity", &[]).await?.get(0))
}
