//! What the HTTP benchmarks share: logging in to `dragon serve` as its clients do, a lean HTTP client, CPU use.

#[allow(dead_code)]
pub mod raw;

use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;

/// `o` signed by `key` for `domain`.
#[allow(dead_code)] // Each bench compiles this module; not all publish orders.
pub fn signed(
    domain: &dragon::order::Domain,
    key: &PrivateKeySigner,
    mut o: dragon::order::AnyOrder,
) -> anyhow::Result<dragon::order::AnyOrder> {
    o.set_sign(dragon::order::signature::sign_digest(key, &o.order_hash(domain).0)?);
    Ok(o)
}

/// A public app order of `app` at `price` nRLC, volume 1, salted with `salt`, signed by `key`.
#[allow(dead_code)]
pub fn signed_app_order(
    domain: &dragon::order::Domain,
    key: &PrivateKeySigner,
    app: alloy::primitives::Address,
    price: u64,
    salt: u64,
) -> anyhow::Result<dragon::order::AnyOrder> {
    signed(domain, key, app_order(app, [price, 1], salt))
}

/// An unsigned public app order of `app`: `[price, volume]`, salted with `salt`.
#[allow(dead_code)]
pub fn app_order(app: alloy::primitives::Address, [price, volume]: [u64; 2], salt: u64) -> dragon::order::AnyOrder {
    use alloy::primitives::{Address, B256, U256};
    dragon::order::AnyOrder::App(dragon::order::AppOrder {
        app,
        appprice: dragon::money::Nrlc::from_u64(price),
        volume: U256::from(volume),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::left_padding_from(&salt.to_be_bytes()),
        sign: None,
    })
}

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

/// A public workerpool order of `pool` in `category` at `price` nRLC, trust 1, salted with `salt`, signed by `key`.
#[allow(dead_code)]
pub fn signed_pool_order(
    domain: &dragon::order::Domain,
    key: &PrivateKeySigner,
    pool: alloy::primitives::Address,
    [price, volume, category]: [u64; 3],
    salt: u64,
) -> anyhow::Result<dragon::order::AnyOrder> {
    use alloy::primitives::{Address, B256, U256};
    let o = dragon::order::AnyOrder::Workerpool(dragon::order::WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: dragon::money::Nrlc::from_u64(price),
        volume: U256::from(volume),
        tag: B256::ZERO,
        category: U256::from(category),
        trust: U256::from(1),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::left_padding_from(&salt.to_be_bytes()),
        sign: None,
    });
    signed(domain, key, o)
}

/// A request of `key` for `app` in `category`, volume 1, paying at most `max` nRLC to app and pool each,
/// salted with `salt`, signed.
#[allow(dead_code)]
pub fn signed_request(
    domain: &dragon::order::Domain,
    key: &PrivateKeySigner,
    app: alloy::primitives::Address,
    [max, category]: [u64; 2],
    salt: u64,
) -> anyhow::Result<dragon::order::AnyOrder> {
    use alloy::primitives::{Address, B256, U256};
    let me = key.address();
    let o = dragon::order::AnyOrder::Request(dragon::order::RequestOrder {
        app,
        appmaxprice: dragon::money::Nrlc::from_u64(max),
        dataset: Address::ZERO,
        datasetmaxprice: dragon::money::Nrlc::ZERO,
        workerpool: Address::ZERO,
        workerpoolmaxprice: dragon::money::Nrlc::from_u64(max),
        requester: me,
        volume: U256::from(1),
        tag: B256::ZERO,
        category: U256::from(category),
        trust: U256::from(1),
        beneficiary: me,
        callback: Address::ZERO,
        params: "{\"iexec_args\":\"failover\"}".into(),
        salt: B256::left_padding_from(&salt.to_be_bytes()),
        sign: None,
    });
    signed(domain, key, o)
}
