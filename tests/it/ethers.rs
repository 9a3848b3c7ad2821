//! Cross-check against an independent EIP-712 implementation: ethers v6 (the library iExec's SDK signs
//! with), run by node from `tests/ethers`. Hashes must be equal bit for bit, and each side must recover the
//! other's signatures: what iExec's tools sign verifies here, and what Dragon signs verifies there.

use crate::fixtures::{KEY0, Rng, maximal_order, random_order};
use crate::harness::root;
use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use dragon::order::{AnyOrder, Domain, OrderKind, signature};
use serde_json::{Value, json};

fn chain_ids() -> Vec<U256> {
    vec![U256::from(1), U256::from(134), U256::from(31337), U256::from(u64::MAX), U256::MAX]
}

fn hubs() -> Vec<Address> {
    vec![
        Address::ZERO,
        "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f".parse().expect("address"),
        Address::repeat_byte(0xff),
    ]
}

#[test]
fn hashes_and_signatures_match_ethers() {
    let key: PrivateKeySigner = KEY0.parse().expect("key");
    let mut rng = Rng::new(2026);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (i, chain_id) in chain_ids().into_iter().enumerate() {
        let hub = hubs()[i % hubs().len()];
        let domain = Domain::new(chain_id, hub);
        for kind in OrderKind::ALL {
            let mut orders = vec![maximal_order(kind)];
            orders.extend((0..6).map(|_| random_order(&mut rng, kind)));
            for order in orders {
                let hash = order.order_hash(&domain);
                let sign = signature::sign_digest(&key, &hash.0).expect("sign");
                cases.push(json!({
                    "kind": kind.as_str(),
                    "chainId": chain_id.to_string(),
                    "hub": hub.to_checksum(None),
                    "order": order.to_json(),
                    "dragonSign": format!("0x{}", alloy::hex::encode(&sign)),
                }));
                expected.push((order, domain.clone(), hash));
            }
        }
    }
    assert_eq!(cases.len(), 5 * 4 * 7);

    let dir = std::env::temp_dir().join(format!("dragon-ethers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("cases.json");
    std::fs::write(&input, json!({"key": KEY0, "cases": cases}).to_string()).expect("write cases");
    let script = root().join("tests/ethers/eip712.mjs");
    assert!(
        root().join("tests/ethers/node_modules/ethers").exists(),
        "ethers is not installed: run `make setup` (npm ci in tests/ethers)"
    );
    let out = std::process::Command::new("node").arg(&script).arg(&input).output().expect("run node");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "ethers script failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("ethers output is JSON");
    assert_eq!(results.len(), expected.len());

    for ((order, domain, hash), r) in expected.iter().zip(&results) {
        assert_eq!(r["hash"].as_str(), Some(hash.to_string().as_str()), "hash differs for {order:?}");
        let ethers_sign: Bytes = r["ethersSign"].as_str().expect("sign").parse().expect("hex");
        assert_eq!(
            signature::recover_signer(&order.order_hash(domain).0, &ethers_sign),
            Ok(key.address()),
            "ethers' signature does not verify here"
        );
        assert_eq!(r["dragonSigner"].as_str(), Some(key.address().to_checksum(None).as_str()));
    }
}

#[test]
fn changing_any_field_changes_the_hash() {
    // Guards against a field silently left out of the typed struct.
    let domain = Domain::new(U256::from(1), Address::ZERO);
    for kind in OrderKind::ALL {
        let base = random_order(&mut Rng::new(1), kind);
        let base_json = base.to_json();
        let h0 = base.order_hash(&domain);
        let fields: Vec<String> = base_json.as_object().expect("object").keys().cloned().collect();
        for field in fields {
            let mut j = base_json.clone();
            let v = &j[&field];
            j[&field] = match field.as_str() {
                "params" => json!(format!("{}x", v.as_str().unwrap_or(""))),
                _ if v.as_str().is_some_and(|s| s.len() == 66) => json!(format!("0x{}", "ab".repeat(32))),
                _ if v.as_str().is_some_and(|s| s.len() == 42) => json!(format!("0x{}", "cd".repeat(20))),
                _ => json!("123456789"),
            };
            if j == base_json {
                continue;
            }
            let changed = AnyOrder::from_json(kind, &j.to_string()).expect("still valid");
            assert_ne!(changed.order_hash(&domain), h0, "{kind} field `{field}` does not enter the hash");
        }
    }
}
