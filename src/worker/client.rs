//! The worker's side of the pool protocol ([`crate::pool::protocol`]): plain HTTP calls, all initiated by the
//! worker.

use crate::pool::protocol::{Assignment, Capacity, Challenge, Login, Session, StatusUpdate, Work, WorkRequest};
use alloy::primitives::{B256, Bytes};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("pool unreachable: {0}")]
    Http(#[from] reqwest::Error),
    /// The token was refused: log in again.
    #[error("the pool refused the session")]
    Unauthorized,
    /// Any other refusal; `code` is the pool's stable error code, when its body has one.
    #[error("the pool answered {status}: {body}")]
    Status { status: u16, code: Option<String>, body: String },
    #[error("the pool's answer is not what the protocol says: {0}")]
    Decode(String),
    #[error("signing the login challenge: {0}")]
    Sign(String),
}

impl ClientError {
    /// Whether the pool may take the same call later: it was unreachable, failed on its side (or could not read
    /// the chain), asked to slow down (429), or does not see on chain yet what this worker just did there (its
    /// node may lag behind the worker's).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http(_) => true,
            ClientError::Status { status, code, .. } => {
                *status >= 500 || *status == 429 || code.as_deref() == Some("not_on_chain")
            }
            _ => false,
        }
    }

    /// Whether the pool lost the session or the registration (a new database): log in and register again.
    pub fn is_session(&self) -> bool {
        match self {
            ClientError::Unauthorized => true,
            ClientError::Status { status: 409, code, .. } => matches!(code.as_deref(), Some("not_registered") | None),
            _ => false,
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// How many times a status report the pool cannot yet check on chain is sent, and how long apart.
const NOT_ON_CHAIN_TRIES: u32 = 3;
const NOT_ON_CHAIN_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct PoolClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl PoolClient {
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(PoolClient { base: base.trim_end_matches('/').to_owned(), http, token: None })
    }

    pub fn logged_in(&self) -> bool {
        self.token.is_some()
    }

    /// Forgets the session: the next round logs in again.
    pub fn logout(&mut self) {
        self.token = None;
    }

    /// Challenge, EIP-191 signature, token.
    pub async fn login(&mut self, key: &PrivateKeySigner) -> Result<(), ClientError> {
        let url = format!("{}/challenge?address={:#x}", self.base, key.address());
        let c: Challenge = decode(self.http.get(url).send().await?).await?;
        let sig = key.sign_message_sync(c.challenge.as_bytes()).map_err(|e| ClientError::Sign(e.to_string()))?;
        let login = Login { address: key.address(), challenge: c.challenge, signature: Bytes::from(sig.as_bytes()) };
        let s: Session = self.post_json("/workers/login", &login).await?;
        self.token = Some(s.token);
        Ok(())
    }

    pub async fn register(&self, cap: &Capacity) -> Result<(), ClientError> {
        self.post_json::<_, serde_json::Value>("/workers/register", cap).await.map(drop)
    }

    pub async fn ping(&self) -> Result<(), ClientError> {
        self.post_json::<_, serde_json::Value>("/workers/ping", &serde_json::json!({})).await.map(drop)
    }

    /// Asks for a replicate besides the ones `running`.
    pub async fn work(&self, running: &[B256]) -> Result<Option<Assignment>, ClientError> {
        let w: Work = self.post_json("/workers/work", &WorkRequest { running: running.to_vec() }).await?;
        Ok(w.work)
    }

    /// Reports a status change. The pool checks `CONTRIBUTED` and later against the chain; a report it cannot
    /// check yet (its node behind the worker's) is sent again a few times before the error is returned.
    pub async fn status(&self, u: &StatusUpdate) -> Result<(), ClientError> {
        let mut tries = 1;
        loop {
            match self.post_json::<_, serde_json::Value>("/workers/status", u).await {
                Err(e) if e.code() == Some("not_on_chain") && tries < NOT_ON_CHAIN_TRIES => {
                    tries += 1;
                    tokio::time::sleep(NOT_ON_CHAIN_PAUSE).await;
                }
                res => return res.map(drop),
            }
        }
    }

    /// Uploads the result archive. The first archive the pool takes for a task is final: when another winner's
    /// (or this worker's, from a try whose answer was lost) is stored already, there is nothing left to upload.
    pub async fn upload(&self, taskid: B256, zip: Vec<u8>) -> Result<(), ClientError> {
        let req = self
            .http
            .post(format!("{}{}", self.base, crate::pool::protocol::result_path(taskid)))
            .header("content-type", "application/zip")
            .body(zip);
        match decode::<serde_json::Value>(self.auth(req).send().await?).await {
            Err(e) if e.code() == Some("result_exists") => Ok(()),
            res => res.map(drop),
        }
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header("authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(bytes);
        decode(self.auth(req).send().await?).await
    }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    let status = resp.status().as_u16();
    let body = resp.bytes().await?;
    if status == 401 {
        return Err(ClientError::Unauthorized);
    }
    if !(200..300).contains(&status) {
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
        return Err(ClientError::Status { status, code, body: String::from_utf8_lossy(&body).into_owned() });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
}
