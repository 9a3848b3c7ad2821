//! What the HTTP benchmarks share: logging in to `dragon serve` as its clients do, a lean HTTP client, CPU use.

#[allow(dead_code)]
pub mod raw;

use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;

/// The `authorization` header of one signed challenge (single use).
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    key: &PrivateKeySigner,
    chain_id: u64,
) -> anyhow::Result<String> {
    let c: Value =
        http.get(format!("{base}/challenge?chainId={chain_id}&address={}", key.address())).send().await?.json().await?;
    let text = c["data"]["message"]["challenge"].as_str().unwrap_or_default();
    Ok(dragon::api::auth::authorization(chain_id, text, key)?)
}

/// `Bearer <token>` of a session opened with one signed challenge.
pub async fn session(
    http: &reqwest::Client,
    base: &str,
    key: &PrivateKeySigner,
    chain_id: u64,
) -> anyhow::Result<String> {
    let auth = login(http, base, key, chain_id).await?;
    let s: Value = http
        .post(format!("{base}/sessions?chainId={chain_id}"))
        .header("authorization", auth)
        .send()
        .await?
        .json()
        .await?;
    Ok(format!("Bearer {}", s["token"].as_str().unwrap_or_default()))
}
