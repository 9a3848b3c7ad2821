//! The market API's login, as both sides compute it: the EIP-712 `Challenge` type and its domain (`iExec
//! Gateway` / `1` / chainId), the hash a client signs, and the `authorization: <hash>_<signature>_<address>`
//! header it sends. The exchange (`api::auth`) issues and verifies challenges; the CLI, the bot and the benches
//! sign them. Kept here, beside the order signatures, so that the clients do not depend on the server's API and
//! the two sides cannot drift apart.

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde_json::json;

alloy::sol! {
    /// The market API's login message.
    struct Challenge {
        string challenge;
    }
}

/// The EIP-712 domain's name and version, as iExec's market API signs its challenges.
const DOMAIN_NAME: &str = "iExec Gateway";
const DOMAIN_VERSION: &str = "1";

/// The EIP-712 hash a client signs for the challenge `text` (domain `iExec Gateway`, version `1`, chainId).
pub fn challenge_hash(chain_id: u64, text: &str) -> B256 {
    let domain = Eip712Domain::new(
        Some(DOMAIN_NAME.into()),
        Some(DOMAIN_VERSION.into()),
        Some(U256::from(chain_id)),
        None,
        None,
    );
    Challenge { challenge: text.to_owned() }.eip712_signing_hash(&domain)
}

/// The typed data of the challenge `text`, as `GET /challenge` answers it (and wallets sign it).
pub fn typed_data(chain_id: u64, text: &str) -> serde_json::Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}
            ],
            "Challenge": [{"name": "challenge", "type": "string"}]
        },
        // A string, as the peer writes it (signers read it as a uint256 either way).
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id.to_string()},
        "primaryType": "Challenge",
        "message": {"challenge": text}
    })
}

/// The challenge text inside typed data made by [`typed_data`] (the `data` of a `GET /challenge` answer).
pub fn challenge_text(typed_data: &serde_json::Value) -> Option<&str> {
    typed_data["message"]["challenge"].as_str()
}

/// The `authorization` header a client sends for the challenge `text`: `<hash>_<signature>_<address>`, the
/// challenge's EIP-712 hash signed by `key`.
pub fn authorization(chain_id: u64, text: &str, key: &PrivateKeySigner) -> Result<String, alloy::signers::Error> {
    let hash = challenge_hash(chain_id, text);
    let sig = super::signature::sign_digest(key, &hash)?;
    Ok(format!("{hash:#x}_{sig}_{:#x}", key.address()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{json, signature};

    #[test]
    fn the_header_carries_the_hash_of_the_text_and_recovers_to_the_signer() {
        let key = PrivateKeySigner::random();
        let header = authorization(134, "hello", &key).expect("sign");
        let parts: Vec<&str> = header.split('_').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], format!("{:#x}", challenge_hash(134, "hello")));
        assert_eq!(parts[2], format!("{:#x}", key.address()));
        let sig = json::parse_bytes(parts[1]).expect("hex");
        let signer = signature::recover_signer(&challenge_hash(134, "hello"), &sig).expect("recovers");
        assert_eq!(signer, key.address());
        assert_ne!(challenge_hash(134, "hello"), challenge_hash(1, "hello"), "the chain id is in the domain");
        assert_eq!(challenge_text(&typed_data(134, "hello")), Some("hello"));
    }
}
