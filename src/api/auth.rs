//! Authentication of writes, as iExec's market API does it, plus sessions.
//!
//! - `GET /challenge?chainId&address` answers EIP-712 typed data (domain `iExec Gateway` / `1` / chainId, type
//!   `Challenge(string challenge)`). The client signs it and sends `authorization: <hash>_<signature>_<address>`.
//!   A challenge is single use (deleted by its first use, whatever the outcome) and expires. A contract account
//!   (a smart wallet) signs through ERC-1271, as the hub accepts its orders.
//! - Beyond the peer: `POST /sessions` with such a header opens a short-lived session; later writes send
//!   `authorization: Bearer <token>`, so a bot publishing many orders signs one challenge, not one per request.
//!   Tokens are kept as their hash, never in clear.

use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate;
use crate::config::Limits;
use crate::order::{login, signature};
use crate::store::Store;
use actix_web::{HttpRequest, get, post, web};
use alloy::primitives::{Address, B256, keccak256};
use dashmap::DashMap;
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

// The login's pure pieces are shared with the clients (the CLI, the bot); these paths are kept for the benches
// and tests that log in through them.
pub use crate::order::login::{authorization, challenge_hash};

/// Why a request was not authenticated. Every reason is answered the same way, 403 `invalid authorization`
/// (the peer's answer): telling a stranger which part failed only helps him. The variant is logged.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid authorization")]
    Missing,
    #[error("invalid authorization")]
    Malformed(&'static str),
    #[error("invalid authorization")]
    Invalid,
    #[error("invalid authorization")]
    Session,
    #[error("the store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the chain is unavailable")]
    Chain,
    #[error("no secure random source: try again later")]
    NoRandomness,
    /// A session is opened with a signed challenge, not with another session.
    #[error("invalid authorization")]
    SessionFromSession,
}

#[derive(Debug)]
pub struct Auth {
    store: Store,
    /// Contract accounts (ERC-1271 wallets) prove themselves through the chain, as the hub checks them.
    reader: std::sync::Arc<crate::chain::reads::ChainReader>,
    chain_id: u64,
    limits: Limits,
    /// Sessions already checked: token hash -> (address, expiry).
    sessions: DashMap<B256, (Address, Instant)>,
}

/// 32 random bytes as hex, from `fill` (the OS generator in the server). A failing generator is an error, never a
/// fallback: a challenge or a session token made of zeros (or of the time) would be guessable.
fn random_hex_from(fill: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>) -> Result<String, AuthError> {
    let mut b = [0u8; 32];
    fill(&mut b).map_err(|e| {
        tracing::error!(error = %e, "the OS random generator failed");
        AuthError::NoRandomness
    })?;
    Ok(alloy::hex::encode(b))
}

fn random_hex() -> Result<String, AuthError> {
    random_hex_from(getrandom::fill)
}

impl Auth {
    pub fn new(
        store: Store,
        reader: std::sync::Arc<crate::chain::reads::ChainReader>,
        chain_id: u64,
        limits: Limits,
    ) -> Self {
        Auth { store, reader, chain_id, limits, sessions: DashMap::new() }
    }

    /// Issues a challenge for `address`: its typed data, recorded by its EIP-712 hash.
    pub async fn challenge(&self, address: Address) -> Result<serde_json::Value, AuthError> {
        let text = format!("Sign this message to log into iExec Gateway: {}", random_hex()?);
        let hash = challenge_hash(self.chain_id, &text);
        let client = self.store.client().await?;
        crate::store::challenges::insert(&client, &hash.0, address, self.limits.challenge_ttl()).await?;
        Ok(login::typed_data(self.chain_id, &text))
    }

    /// The address a request's `authorization` header proves: a signed challenge or a session token.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Address, AuthError> {
        let header = header.ok_or(AuthError::Missing)?.trim();
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.session(token.trim()).await;
        }
        self.signed_challenge(header).await
    }

    /// The address a signed challenge (`<hash>_<signature>_<address>`) proves; sessions are not accepted.
    pub async fn signed_challenge(&self, header: &str) -> Result<Address, AuthError> {
        if header.starts_with("Bearer ") {
            return Err(AuthError::SessionFromSession);
        }
        let mut parts = header.split('_');
        let (Some(hash), Some(sig), Some(addr), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::Malformed("expected <challengeHash>_<signature>_<address>"));
        };
        let hash: B256 = crate::wire::json::parse_bytes32(hash).map_err(|_| AuthError::Malformed("bad hash"))?;
        let sig = crate::wire::json::parse_bytes(sig).map_err(|_| AuthError::Malformed("bad signature"))?;
        let address = validate::parse_address(addr).ok_or(AuthError::Malformed("bad address"))?;
        if address == Address::ZERO {
            return Err(AuthError::Malformed("zero address"));
        }
        // Consume first: a challenge is gone after one attempt, right or wrong.
        let client = self.store.client().await?;
        let issued_to = crate::store::challenges::take(&client, &hash.0).await?;
        drop(client);
        if issued_to != Some(address) {
            return Err(AuthError::Invalid);
        }
        // A contract account signs as the hub would accept it for an order: through ERC-1271.
        let is_contract = self.reader.has_code(address).await.map_err(|_| AuthError::Chain)?;
        let valid = if is_contract {
            self.reader.contract_accepts(address, hash, sig).await.map_err(|_| AuthError::Chain)?
        } else {
            signature::recover_signer(&hash, &sig).is_ok_and(|signer| signer == address)
        };
        if !valid {
            return Err(AuthError::Invalid);
        }
        Ok(address)
    }

    async fn session(&self, token: &str) -> Result<Address, AuthError> {
        let key = keccak256(token.as_bytes());
        if let Some(e) = self.sessions.get(&key)
            && e.1 > Instant::now()
        {
            return Ok(e.0);
        }
        self.sessions.remove(&key);
        let client = self.store.client().await?;
        let (address, left_ms) = crate::store::challenges::session(&client, &key.0).await?.ok_or(AuthError::Session)?;
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        self.sessions.insert(key, (address, Instant::now() + left));
        Ok(address)
    }

    /// Forgets the cached sessions that expired: the cache holds no more than the sessions alive now.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.sessions.retain(|_, (_, expiry)| *expiry > now);
    }

    /// Opens a session for an address that just proved itself with a signed challenge; returns the token and
    /// its lifetime.
    pub async fn open_session(&self, address: Address) -> Result<(String, Duration), AuthError> {
        let token = random_hex()?;
        let ttl = self.limits.session_ttl();
        let client = self.store.client().await?;
        crate::store::challenges::open_session(&**client, &keccak256(token.as_bytes()).0, address, ttl).await?;
        Ok((token, ttl))
    }
}

/// The `authorization` header of a request, authenticated (on the main runtime).
pub async fn authenticated(state: &AppState, req: &HttpRequest) -> Result<Address, ApiError> {
    let header = req.headers().get("authorization").and_then(|h| h.to_str().ok()).map(str::to_owned);
    let auth = state.auth.clone();
    let address = state.on_main(async move { auth.authenticate(header.as_deref()).await }).await?;
    Ok(address)
}

/// The query of `/challenge` (besides chainId).
pub const CHALLENGE_PARAMS: [(&str, validate::Param); 1] = [("address", validate::Param::Address)];

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeAnswer {
    pub ok: bool,
    /// EIP-712 typed data to sign.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A login challenge (EIP-712 typed data), single use, valid for a few minutes.
#[get("/challenge")]
pub async fn challenge(state: web::Data<AppState>, req: HttpRequest) -> Result<web::Json<ChallengeAnswer>, ApiError> {
    let q = validate::Query::parse(req.query_string());
    // Declared [chainId, address]: yup checks the address first.
    let p = validate::params(&q, &CHALLENGE_PARAMS, &["address"]).map_err(ApiError::BadRequest)?;
    crate::api::check_chain(&state, &q)?;
    let address = p.address("address").unwrap_or_default();
    let auth = state.auth.clone();
    let data = state.on_main(async move { auth.challenge(address).await }).await?;
    Ok(web::Json(ChallengeAnswer { ok: true, data }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAnswer {
    pub ok: bool,
    /// Send as `authorization: Bearer <token>`.
    pub token: String,
    pub address: String,
    /// Seconds the token stays valid.
    pub expires_in: u64,
}

/// Opens a session from one signed challenge (`authorization: <hash>_<signature>_<address>`). A session token
/// cannot open another: a session ends when its lifetime does, whatever its holder does.
#[post("/sessions")]
pub async fn open_session(state: web::Data<AppState>, req: HttpRequest) -> Result<web::Json<SessionAnswer>, ApiError> {
    crate::api::check_chain(&state, &validate::Query::parse(req.query_string()))?;
    let header = req.headers().get("authorization").and_then(|h| h.to_str().ok()).map(|h| h.trim().to_owned());
    let auth = state.auth.clone();
    let address = state
        .on_main(async move {
            let header = header.ok_or(AuthError::Missing)?;
            auth.signed_challenge(&header).await
        })
        .await?;
    let auth = state.auth.clone();
    let (token, ttl) = state.on_main(async move { auth.open_session(address).await }).await?;
    Ok(web::Json(SessionAnswer { ok: true, token, address: address.to_checksum(None), expires_in: ttl.as_secs() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_random_source_is_an_error_not_zeros() {
        let failed = random_hex_from(|_| Err(getrandom::Error::UNSUPPORTED));
        assert!(matches!(failed, Err(AuthError::NoRandomness)), "{failed:?}");
        let ok = random_hex().expect("the OS generator works here");
        assert_eq!(ok.len(), 64);
        assert_ne!(ok, "0".repeat(64));
    }
}
