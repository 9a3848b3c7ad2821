//! The bot's HTTP calls: the pool's `GET /capacity`, and the exchange's REST API (session login, publication,
//! unpublication, the book, recent deals).

use crate::order::AnyOrder;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} unreachable: {1}")]
    Http(&'static str, reqwest::Error),
    #[error("{service} answered {status}: {body}")]
    Status { service: &'static str, status: u16, code: Option<String>, body: String },
    #[error("{0}'s answer is not what its API says: {1}")]
    Decode(&'static str, String),
    #[error("signing: {0}")]
    Sign(String),
}

impl ClientError {
    /// The exchange's stable error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> String {
        match self {
            ClientError::Http(..) => "unreachable".into(),
            ClientError::Status { code: Some(c), .. } => c.clone(),
            ClientError::Status { status, .. } => format!("http_{status}"),
            ClientError::Decode(..) => "bad_answer".into(),
            ClientError::Sign(_) => "sign".into(),
        }
    }
}

fn http() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| ClientError::Http("http client", e))
}

async fn decode<T: serde::de::DeserializeOwned>(
    service: &'static str,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ClientError> {
    let resp = resp.map_err(|e| ClientError::Http(service, e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| ClientError::Http(service, e))?;
    if !(200..300).contains(&status) {
        let code = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["code"].as_str().map(str::to_owned));
        let body = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(ClientError::Status { service, status, code, body });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(service, e.to_string()))
}

/// The pool's free capacity (see `crate::pool::capacity` for the rule).
#[derive(Debug, Clone, Deserialize)]
pub struct PoolCapacity {
    pub alive: u64,
    pub busy: u64,
    pub free: u64,
    /// Tasks by status: their total grows as the pool records deals.
    #[serde(default)]
    pub tasks: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct PoolClient {
    base: String,
    http: reqwest::Client,
}

impl PoolClient {
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Ok(PoolClient { base: base.trim_end_matches('/').to_owned(), http: http()? })
    }

    pub async fn capacity(&self) -> Result<PoolCapacity, ClientError> {
        decode("the pool", self.http.get(format!("{}/capacity", self.base)).send().await).await
    }
}

/// One order as the exchange shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub order_hash: String,
    pub order: Value,
    pub remaining: u64,
    pub status: String,
    pub signer: String,
}

impl Record {
    /// The workerpool price (a JSON number, or an exact decimal string above 2^53-1).
    pub fn price(&self) -> Option<u64> {
        number(&self.order["workerpoolprice"])
    }

    pub fn workerpool(&self) -> Option<Address> {
        self.order["workerpool"].as_str().and_then(|s| s.parse().ok())
    }
}

#[derive(Debug)]
pub struct ExchangeClient {
    base: String,
    chain_id: u64,
    http: reqwest::Client,
    key: PrivateKeySigner,
    /// The session token (`POST /sessions`): one signed challenge for many writes.
    token: Option<String>,
}

impl ExchangeClient {
    pub fn new(base: &str, chain_id: u64, key: PrivateKeySigner) -> Result<Self, ClientError> {
        Ok(ExchangeClient { base: base.trim_end_matches('/').to_owned(), chain_id, http: http()?, key, token: None })
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}chainId={}", self.base, self.chain_id)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode("the exchange", self.http.get(self.url(path)).send().await).await
    }

    /// A challenge signed as EIP-712 typed data, exchanged for a session token.
    async fn login(&mut self) -> Result<String, ClientError> {
        let c: Value = self.get(&format!("/challenge?address={:#x}", self.key.address())).await?;
        let text = crate::order::login::challenge_text(&c["data"])
            .ok_or_else(|| ClientError::Decode("the exchange", "no challenge text".into()))?;
        let header = crate::order::login::authorization(self.chain_id, text, &self.key)
            .map_err(|e| ClientError::Sign(e.to_string()))?;
        let s: Value =
            decode("the exchange", self.http.post(self.url("/sessions")).header("authorization", header).send().await)
                .await?;
        let token = s["token"].as_str().ok_or_else(|| ClientError::Decode("the exchange", "no token".into()))?;
        self.token = Some(token.to_owned());
        Ok(token.to_owned())
    }

    /// A write with the session token; a refused authorization (the session expired, or the exchange restarted
    /// on another database: the exchange does not say which) opens a session again, once.
    async fn write(&mut self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode("the bot", e.to_string()))?;
        match self.write_once(method.clone(), path, bytes.clone()).await {
            Err(e) if e.code() == Some("auth_invalid") => {
                self.token = None;
                self.write_once(method, path, bytes).await
            }
            other => other,
        }
    }

    async fn write_once(&mut self, method: reqwest::Method, path: &str, body: Vec<u8>) -> Result<Value, ClientError> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => self.login().await?,
        };
        let resp = self
            .http
            .request(method, self.url(path))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        decode("the exchange", resp).await
    }

    /// Publishes a signed order; returns its hash.
    pub async fn publish(&mut self, order: &AnyOrder) -> Result<String, ClientError> {
        let v = self.write(reqwest::Method::POST, "/workerpoolorders", &json!({"order": order.to_json()})).await?;
        v["published"]["orderHash"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode("the exchange", "no published.orderHash".into()))
    }

    /// Takes one order out of the book. An order no longer open (filled meanwhile) is not an error.
    pub async fn unpublish(&mut self, hash: &str) -> Result<(), ClientError> {
        let body = json!({"target": "unpublish_orderHash", "orderHash": hash});
        match self.write(reqwest::Method::PUT, "/workerpoolorders", &body).await {
            Err(e) if e.code() == Some("order_not_published") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Takes every open order of the workerpool signed by the bot's key out of the book.
    pub async fn unpublish_all(&mut self, workerpool: Address) -> Result<usize, ClientError> {
        let body = json!({"target": "unpublish_all", "workerpool": format!("{workerpool:#x}")});
        match self.write(reqwest::Method::PUT, "/workerpoolorders", &body).await {
            Err(e) if e.code() == Some("nothing_to_unpublish") => Ok(0),
            Err(e) => Err(e),
            Ok(v) => Ok(v["unpublished"].as_array().map_or(0, Vec::len)),
        }
    }

    pub async fn order(&self, hash: &str) -> Result<Record, ClientError> {
        self.get(&format!("/workerpoolorders/{hash}")).await
    }

    /// The cheapest open workerpool orders of a category (public ones, as requesters see them first).
    pub async fn asks(&self, category: u64) -> Result<Vec<Record>, ClientError> {
        let v: Value = self.get(&format!("/workerpoolorders?category={category}&pageSize=20")).await?;
        serde_json::from_value(v["orders"].clone()).map_err(|e| ClientError::Decode("the exchange", e.to_string()))
    }

    pub async fn best_bid(&self, category: u64) -> Result<Option<u64>, ClientError> {
        let v: Value = self.get(&format!("/depth?category={category}")).await?;
        Ok(v["bestBid"].as_u64())
    }

    /// The price of the category's most recent deal (`/ohlc` lists them newest first).
    pub async fn last_deal(&self, category: u64) -> Result<Option<u64>, ClientError> {
        let v: Value = self.get(&format!("/ohlc?category={category}")).await?;
        Ok(v["ohlc"].as_array().and_then(|a| a.first()).and_then(|e| number(&e[1])))
    }
}

/// A price as the market API writes it: a JSON number, or an exact decimal string above 2^53-1.
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
