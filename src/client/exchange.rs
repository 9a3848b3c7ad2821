//! The exchange's REST API as the client uses it: reads, and writes authenticated by a signed login
//! challenge (the peer's `authorization: <hash>_<signature>_<address>` header).

use super::error::{CliError, chain_of, failure, input};
use crate::order::{AnyOrder, OrderKind};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Exchange {
    pub base: String,
    pub chain_id: u64,
    http: reqwest::Client,
}

/// Why a call did not give an answer.
#[derive(Debug)]
pub enum Refusal {
    /// No HTTP answer at all.
    Unreachable(String),
    /// An error answer: status, stable code, message.
    Refused { status: u16, code: String, error: String },
    /// Failed before the call (e.g. the login challenge).
    Before(CliError),
}

impl Refusal {
    /// The one line a user reads.
    pub fn into_cli(self, base: &str) -> CliError {
        match self {
            Refusal::Unreachable(e) => failure(format!("the exchange at {base} is unreachable: {e}")),
            Refusal::Refused { status, code, error } if status < 500 => {
                input(format!("the exchange refused: {error} ({code})"))
            }
            Refusal::Refused { status, code, error } => {
                failure(format!("the exchange failed ({status}): {error} ({code})"))
            }
            Refusal::Before(e) => e,
        }
    }
}

impl Exchange {
    pub fn new(base: &str, chain_id: u64) -> Exchange {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Exchange { base: base.to_owned(), chain_id, http }
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}chainId={}", self.base, self.chain_id)
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<Value, Refusal> {
        let resp = req.send().await.map_err(|e| Refusal::Unreachable(chain_of(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| Refusal::Unreachable(chain_of(&e)))?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| Refusal::Refused {
            status,
            code: "not_json".into(),
            error: format!("the answer is not JSON (is {} Dragon's exchange?)", self.base),
        })?;
        if (200..300).contains(&status) {
            return Ok(v);
        }
        Err(Refusal::Refused {
            status,
            code: v["code"].as_str().unwrap_or("unknown").to_owned(),
            error: v["error"].as_str().unwrap_or("no message").to_owned(),
        })
    }

    /// GET, with the error turned into the CLI's.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.try_get(path).await.map_err(|r| r.into_cli(&self.base))
    }

    /// GET, keeping a refusal for the caller to interpret (a 404 is often an answer).
    pub async fn try_get(&self, path: &str) -> Result<Value, Refusal> {
        self.answer(self.http.get(self.url(path))).await
    }

    /// Best effort: a JSON answer from another service (a pool's status API), or nothing.
    pub async fn peek(&self, url: &str) -> Option<Value> {
        let resp = self.http.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        serde_json::from_slice(&resp.bytes().await.ok()?).ok()
    }

    /// The authorization header of one write: a fresh challenge signed as EIP-712 typed data.
    async fn authorization(&self, key: &PrivateKeySigner) -> Result<String, CliError> {
        let c = self.get(&format!("/challenge?address={}", key.address())).await?;
        let text = crate::order::login::challenge_text(&c["data"])
            .ok_or_else(|| failure(format!("the exchange at {} sent no login challenge", self.base)))?;
        crate::order::login::authorization(self.chain_id, text, key)
            .map_err(|e| failure(format!("signing failed: {e}")))
    }

    async fn write(
        &self,
        key: &PrivateKeySigner,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Refusal> {
        let auth = self.authorization(key).await.map_err(Refusal::Before)?;
        let req = self
            .http
            .request(method, self.url(path))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.answer(req).await
    }

    /// Publishes a signed order; the refusal is left to the caller, which knows what it means.
    pub async fn publish(&self, key: &PrivateKeySigner, order: &AnyOrder) -> Result<Value, Refusal> {
        let path = format!("/{}orders", order.kind());
        self.write(key, reqwest::Method::POST, &path, &json!({"order": order.to_json()})).await
    }

    /// Explains a draft order (`POST /explain`, no login: nothing is published).
    pub async fn explain_draft(&self, order: &AnyOrder) -> Result<Value, CliError> {
        let req = self
            .http
            .post(self.url("/explain"))
            .header("content-type", "application/json")
            .body(json!({"kind": order.kind().as_str(), "order": order.to_json()}).to_string());
        self.answer(req).await.map_err(|r| r.into_cli(&self.base))
    }

    /// Takes orders out of the book (`target` as the peer's API names it).
    pub async fn unpublish(&self, key: &PrivateKeySigner, kind: OrderKind, body: &Value) -> Result<Value, CliError> {
        let path = format!("/{kind}orders");
        self.write(key, reqwest::Method::PUT, &path, body).await.map_err(|r| r.into_cli(&self.base))
    }
}
