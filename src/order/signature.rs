//! Order signatures, accepted exactly as PoCo's hub accepts them (OpenZeppelin's `ECDSA.tryRecover`):
//! 65-byte `(r, s, v)` with v = 27 or 28 (or 0 or 1, which the hub lifts to 27 or 28), or 64-byte EIP-2098 `(r, vs)`; s in the lower half of the curve
//! order (high-s is the malleable twin and is refused); the signer is what `ecrecover` would return.
//!
//! Recovery runs on libsecp256k1, not k256: it is several times faster (see docs/benchmarks.md). Dragon
//! always *recovers* rather than verifying against a cached public key, even though the signer is known in
//! advance: ECDSA verification ignores the recovery bit, so a signature with a flipped `v` verifies against
//! the right key yet makes `ecrecover` on chain return another address, and the deal would fail at
//! settlement. Recovery checks exactly what the chain will check.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::{SignerSync, local::PrivateKeySigner};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey};

/// n / 2 for secp256k1: OpenZeppelin refuses any s above it.
pub const HALF_ORDER: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e,
    0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature")]
    Missing,
    #[error("signature must be 65 bytes (r, s, v) or 64 bytes (EIP-2098 r, vs), got {0} bytes")]
    Length(usize),
    #[error("signature v must be 27 or 28 (or 0 or 1), got {0}")]
    BadV(u8),
    #[error("signature s is in the upper half of the curve order (high-s); refused as OpenZeppelin's ECDSA does")]
    HighS,
    #[error("signature does not recover to any signer (r or s invalid)")]
    Unrecoverable,
    #[error("signed by {actual}, expected {expected}")]
    WrongSigner { expected: Address, actual: Address },
    /// The recovery threads are gone (the server is stopping).
    #[error("signature verification is shutting down")]
    Unavailable,
}

/// A parsed, canonical signature: low s, explicit parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcdsaSignature {
    r: [u8; 32],
    s: [u8; 32],
    odd_y: bool,
}

impl EcdsaSignature {
    pub fn parse(sig: &[u8]) -> Result<Self, SignatureError> {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        let odd_y = match sig.len() {
            65 => {
                r.copy_from_slice(&sig[..32]);
                s.copy_from_slice(&sig[32..64]);
                // The hub adds 27 to a v below 27 before `ecrecover`, so 0/1 are accepted as 27/28.
                match sig[64] {
                    0 | 27 => false,
                    1 | 28 => true,
                    v => return Err(SignatureError::BadV(v)),
                }
            }
            64 => {
                r.copy_from_slice(&sig[..32]);
                s.copy_from_slice(&sig[32..]);
                let odd = s[0] & 0x80 != 0;
                s[0] &= 0x7f;
                odd
            }
            n => return Err(SignatureError::Length(n)),
        };
        if U256::from_be_bytes(s) > HALF_ORDER {
            return Err(SignatureError::HighS);
        }
        Ok(EcdsaSignature { r, s, odd_y })
    }

    /// The 65-byte `(r, s, v)` form with v = 27 or 28, which every PoCo version accepts.
    pub fn to_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = 27 + u8::from(self.odd_y);
        out
    }

    /// The 64-byte EIP-2098 form.
    pub fn to_compact(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out[32] |= u8::from(self.odd_y) << 7;
        out
    }

    /// The public key `ecrecover` would find for this digest.
    pub fn recover_key(&self, digest: &B256) -> Result<PublicKey, SignatureError> {
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&self.r);
        rs[32..].copy_from_slice(&self.s);
        let recid = if self.odd_y { RecoveryId::One } else { RecoveryId::Zero };
        let sig = RecoverableSignature::from_compact(&rs, recid).map_err(|_| SignatureError::Unrecoverable)?;
        sig.recover(Message::from_digest(digest.0)).map_err(|_| SignatureError::Unrecoverable)
    }

    /// The address `ecrecover` would return for this digest.
    pub fn recover(&self, digest: &B256) -> Result<Address, SignatureError> {
        self.recover_key(digest).map(|pk| address_of(&pk))
    }
}

/// The Ethereum address of a public key: the last 20 bytes of keccak256 of its uncompressed coordinates.
pub fn address_of(pk: &PublicKey) -> Address {
    let uncompressed = pk.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// Recovers the signer of a digest from raw signature bytes.
pub fn recover_signer(digest: &B256, sig: &[u8]) -> Result<Address, SignatureError> {
    EcdsaSignature::parse(sig)?.recover(digest)
}

/// Checks that `sig` over `digest` was made by `expected`.
pub fn verify_signer(digest: &B256, sig: &[u8], expected: Address) -> Result<(), SignatureError> {
    let actual = recover_signer(digest, sig)?;
    if actual == expected { Ok(()) } else { Err(SignatureError::WrongSigner { expected, actual }) }
}

/// Signs a digest; the result is the 65-byte form with a low s (what every verifier accepts).
pub fn sign_digest(key: &PrivateKeySigner, digest: &B256) -> Result<Bytes, alloy::signers::Error> {
    let sig = key.sign_hash_sync(digest)?;
    Ok(Bytes::copy_from_slice(&sig.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrivateKeySigner {
        // The first anvil/hardhat development key: a public, well-known test vector.
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".parse().expect("valid key")
    }

    #[test]
    fn sign_then_recover_both_forms() {
        let k = key();
        let digest = keccak256("dragon");
        let sig = sign_digest(&k, &digest).expect("signs");
        assert_eq!(recover_signer(&digest, &sig), Ok(k.address()));
        let compact = EcdsaSignature::parse(&sig).expect("parses").to_compact();
        assert_eq!(recover_signer(&digest, &compact), Ok(k.address()));
        assert_eq!(EcdsaSignature::parse(&compact).map(|s| s.to_bytes().to_vec()), Ok(sig.to_vec()));
        assert_eq!(
            verify_signer(&keccak256("other"), &sig, k.address())
                .map_err(|e| matches!(e, SignatureError::WrongSigner { .. })),
            Err(true)
        );
    }

    #[test]
    fn high_s_twin_is_refused() {
        let k = key();
        let digest = keccak256("malleable");
        let sig = sign_digest(&k, &digest).expect("signs");
        // The malleable twin: s' = n - s, v flipped. ecrecover would accept it; OpenZeppelin does not.
        let n = HALF_ORDER * U256::from(2) + U256::from(1);
        let s = U256::from_be_slice(&sig[32..64]);
        let mut twin = sig.to_vec();
        twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
        twin[64] = if sig[64] == 27 { 28 } else { 27 };
        assert_eq!(recover_signer(&digest, &twin), Err(SignatureError::HighS));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let digest = keccak256("x");
        assert_eq!(recover_signer(&digest, &[0u8; 63]), Err(SignatureError::Length(63)));
        assert_eq!(recover_signer(&digest, &[0u8; 66]), Err(SignatureError::Length(66)));
        let mut sig = [1u8; 65];
        sig[64] = 2;
        assert_eq!(recover_signer(&digest, &sig), Err(SignatureError::BadV(2)));
        let mut zero = [0u8; 65];
        zero[64] = 27;
        assert_eq!(recover_signer(&digest, &zero), Err(SignatureError::Unrecoverable));
    }
}
