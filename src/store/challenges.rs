//! The login aggregate, tables `challenges` and `sessions`: challenges (single use, short-lived) and the session
//! tokens a login can open. Both expire and are purged together ([`purge`]).

use super::{StoreError, fixed};
use alloy::primitives::Address;
use std::time::Duration;
use tokio_postgres::GenericClient;

/// Records a challenge for `address`, valid for `ttl` (expired ones are dropped by [`purge`]).
pub async fn insert(
    client: &impl super::Cached,
    hash: &[u8; 32],
    address: Address,
    ttl: Duration,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO challenges (hash, address, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
        )
        .await?;
    client.execute(&stmt, &[&hash.as_slice(), &address.as_slice(), &ttl.as_secs_f64()]).await?;
    Ok(())
}

/// Consumes a challenge: returns the address it was issued to when it exists and has not expired. A challenge
/// is deleted by its first use, whatever the outcome, so a replay finds nothing.
pub async fn take(client: &impl super::Cached, hash: &[u8; 32]) -> Result<Option<Address>, StoreError> {
    let stmt =
        client.prepare_cached("DELETE FROM challenges WHERE hash = $1 RETURNING address, expires_at >= now()").await?;
    let row = client.query_opt(&stmt, &[&hash.as_slice()]).await?;
    match row {
        Some(r) if r.get::<_, bool>(1) => Ok(Some(Address::from(fixed::<20>("challenges", r.get(0))?))),
        _ => Ok(None),
    }
}

/// Deletes the expired challenges and sessions (an index scan on their expiry); returns how many.
pub async fn purge(client: &impl GenericClient) -> Result<u64, StoreError> {
    let c = client.execute("DELETE FROM challenges WHERE expires_at < now()", &[]).await?;
    let s = client.execute("DELETE FROM sessions WHERE expires_at < now()", &[]).await?;
    Ok(c + s)
}

/// Opens a session for `address`; `token_hash` is the hash of the token handed to the client.
pub async fn open_session(
    client: &impl GenericClient,
    token_hash: &[u8; 32],
    address: Address,
    ttl: Duration,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO sessions (token_hash, address, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            &[&token_hash.as_slice(), &address.as_slice(), &ttl.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// The address of a live session and its remaining lifetime in milliseconds.
pub async fn session(client: &impl super::Cached, token_hash: &[u8; 32]) -> Result<Option<(Address, i64)>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT address, (extract(epoch FROM expires_at - now()) * 1000)::bigint FROM sessions
             WHERE token_hash = $1 AND expires_at > now()",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&token_hash.as_slice()]).await?;
    row.map(|r| Ok((Address::from(fixed::<20>("sessions", r.get(0))?), r.get(1)))).transpose()
}
