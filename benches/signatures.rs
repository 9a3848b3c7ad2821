//! Signature checks per second on one core: a full public-key recovery versus a verification against a
//! public key known in advance, with k256 (pure Rust) and libsecp256k1 (C, crate `secp256k1`), plus
//! Dragon's own path (parse + recover + address) and a whole request order (EIP-712 hash + recover).
//!
//! Run: `cargo bench --bench signatures`. Figures and the design chosen from them: docs/benchmarks.md.

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dragon::money::Nrlc;
use dragon::order::{Domain, PocoOrder, RequestOrder, signature};
use std::hint::black_box;

const N: usize = 64;

struct Case {
    digest: B256,
    sig65: [u8; 65],
}

fn cases(key: &PrivateKeySigner) -> Vec<Case> {
    (0..N)
        .map(|i| {
            let digest = keccak256(i.to_le_bytes());
            let sig = signature::sign_digest(key, &digest).expect("sign");
            let mut sig65 = [0u8; 65];
            sig65.copy_from_slice(&sig);
            Case { digest, sig65 }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let key: PrivateKeySigner =
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".parse().expect("key");
    let cases = cases(&key);
    let mut g = c.benchmark_group("signature");
    g.throughput(Throughput::Elements(N as u64));

    // k256
    let k_sigs: Vec<(k256::ecdsa::Signature, k256::ecdsa::RecoveryId)> = cases
        .iter()
        .map(|c| {
            let sig = k256::ecdsa::Signature::from_slice(&c.sig65[..64]).expect("sig");
            (sig, k256::ecdsa::RecoveryId::from_byte(c.sig65[64] - 27).expect("recid"))
        })
        .collect();
    let k_vk = *key.credential().verifying_key();
    g.bench_function("k256_recover", |b| {
        b.iter(|| {
            for (c, (sig, recid)) in cases.iter().zip(&k_sigs) {
                let vk = k256::ecdsa::VerifyingKey::recover_from_prehash(c.digest.as_slice(), sig, *recid);
                black_box(vk.expect("recovers"));
            }
        })
    });
    g.bench_function("k256_verify_cached_key", |b| {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        b.iter(|| {
            for (c, (sig, _)) in cases.iter().zip(&k_sigs) {
                k_vk.verify_prehash(black_box(c.digest.as_slice()), sig).expect("verifies");
            }
        })
    });

    // libsecp256k1
    let s_sigs: Vec<secp256k1::ecdsa::RecoverableSignature> = cases
        .iter()
        .map(|c| {
            let id =
                if c.sig65[64] == 28 { secp256k1::ecdsa::RecoveryId::One } else { secp256k1::ecdsa::RecoveryId::Zero };
            secp256k1::ecdsa::RecoverableSignature::from_compact(&c.sig65[..64], id).expect("sig")
        })
        .collect();
    let s_plain: Vec<secp256k1::ecdsa::Signature> = s_sigs.iter().map(|s| s.to_standard()).collect();
    let s_pk = s_sigs[0].recover(secp256k1::Message::from_digest(cases[0].digest.0)).expect("pk");
    g.bench_function("secp256k1_recover", |b| {
        b.iter(|| {
            for (c, sig) in cases.iter().zip(&s_sigs) {
                black_box(sig.recover(secp256k1::Message::from_digest(c.digest.0)).expect("recovers"));
            }
        })
    });
    g.bench_function("secp256k1_verify_cached_key", |b| {
        b.iter(|| {
            for (c, sig) in cases.iter().zip(&s_plain) {
                sig.verify(secp256k1::Message::from_digest(black_box(c.digest.0)), &s_pk).expect("verifies");
            }
        })
    });

    // Dragon's path: parse (OZ rules) + libsecp256k1 recover + keccak to an address.
    g.bench_function("dragon_recover_signer", |b| {
        b.iter(|| {
            for c in &cases {
                black_box(signature::recover_signer(&c.digest, &c.sig65).expect("recovers"));
            }
        })
    });

    // A whole request order: EIP-712 struct hash + digest + recover.
    let domain = Domain::new(U256::from(134), Address::repeat_byte(0x11));
    let orders: Vec<RequestOrder> = (0..N)
        .map(|i| {
            let mut o = RequestOrder {
                app: Address::repeat_byte(1),
                appmaxprice: Nrlc::from_u64(100),
                dataset: Address::ZERO,
                datasetmaxprice: Nrlc::ZERO,
                workerpool: Address::ZERO,
                workerpoolmaxprice: Nrlc::from_u64(1_000),
                requester: key.address(),
                volume: U256::from(1),
                tag: B256::ZERO,
                category: U256::from(0),
                trust: U256::from(1),
                beneficiary: key.address(),
                callback: Address::ZERO,
                params: format!("{{\"iexec_args\":\"task {i}\"}}"),
                salt: keccak256(i.to_be_bytes()),
                sign: None,
            };
            let h = o.order_hash(&domain);
            o.sign = Some(signature::sign_digest(&key, &h.0).expect("sign"));
            o
        })
        .collect();
    g.bench_function("request_order_hash_and_recover", |b| {
        b.iter(|| {
            for o in &orders {
                let h = o.order_hash(&domain);
                let sign = o.sign.as_ref().expect("signed");
                signature::verify_signer(black_box(&h.0), sign, key.address()).expect("valid");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
