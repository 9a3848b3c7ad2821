//! `dragon order hash|sign|verify`: the exact command shapes, and bad input exiting with 2 and one line that
//! names the problem and the field.

use crate::fixtures::{KEY0, KEY1, Rng, maximal_order, random_order};
use crate::harness::dragon_bin;
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use dragon::order::{AnyOrder, Domain, OrderKind, signature::EcdsaSignature};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Output, Stdio};

const HUB: &str = "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f";

fn dragon(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(dragon_bin());
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("DRAGON_PRIVATE_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn dragon");
    // The command may exit before reading everything (it stops at the first bad argument or line).
    if let Err(e) = child.stdin.take().expect("stdin").write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing stdin: {e}");
    }
    child.wait_with_output().expect("dragon runs")
}

fn order_args<'a>(verb: &'a str, kind: &'a str, chain_id: &'a str) -> Vec<&'a str> {
    vec!["order", verb, "--kind", kind, "--chain-id", chain_id, "--hub", HUB, "-"]
}

fn stdout_line(out: &Output) -> String {
    assert!(out.status.success(), "dragon failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert_eq!(s.lines().count(), 1, "expected one line, got {s:?}");
    s.trim_end().to_owned()
}

/// Asserts exit code 2 and a single stderr line containing every `needle`.
fn assert_bad_input(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "expected one line, got {err:?}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} does not mention {n:?}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
}

#[test]
fn hash_matches_the_library_for_every_kind_and_chain() {
    let mut rng = Rng::new(42);
    for chain_id in ["1", "134", "115792089237316195423570985164122560694447469148302466399298359"] {
        let domain = Domain::new(chain_id.parse::<U256>().expect("u256"), HUB.parse::<Address>().expect("hub"));
        for kind in OrderKind::ALL {
            for order in [maximal_order(kind), random_order(&mut rng, kind)] {
                let out = dragon(&order_args("hash", kind.as_str(), chain_id), &order.to_json().to_string(), &[]);
                assert_eq!(stdout_line(&out), order.order_hash(&domain).to_string());
            }
        }
    }
}

#[test]
fn hash_reads_a_file_and_large_json_integers() {
    // uint256 values as bare JSON integers far above 2^64 must be read exactly.
    let order = maximal_order(OrderKind::Workerpool);
    let text = order
        .to_json()
        .to_string()
        .replace(&format!("\"volume\":\"{}\"", U256::MAX), &format!("\"volume\":{}", U256::MAX));
    assert!(text.contains(&format!("\"volume\":{}", U256::MAX)), "{text}");
    let file = std::env::temp_dir().join(format!("dragon-cli-{}.json", std::process::id()));
    std::fs::write(&file, &text).expect("write");
    let out = dragon(
        &["order", "hash", "--kind", "workerpool", "--chain-id", "1", "--hub", HUB, &file.to_string_lossy()],
        "",
        &[],
    );
    let _ = std::fs::remove_file(&file);
    let domain = Domain::new(U256::from(1), HUB.parse().expect("hub"));
    assert_eq!(stdout_line(&out), order.order_hash(&domain).to_string());
}

#[test]
fn sign_then_verify_round_trips_with_env_key_and_key_file() {
    let k0: PrivateKeySigner = KEY0.parse().expect("key");
    let k1: PrivateKeySigner = KEY1.parse().expect("key");
    let key_file = std::env::temp_dir().join(format!("dragon-key-{}", std::process::id()));
    std::fs::write(&key_file, format!("{KEY1}\n")).expect("write key");
    let mut rng = Rng::new(9);
    for kind in OrderKind::ALL {
        let order = random_order(&mut rng, kind).to_json().to_string();
        let signed = dragon(&order_args("sign", kind.as_str(), "134"), &order, &[("DRAGON_PRIVATE_KEY", KEY0)]);
        let signed = stdout_line(&signed);
        let signed_json: Value = serde_json::from_str(&signed).expect("signed order is JSON");
        assert_eq!(signed_json["sign"].as_str().map(str::len), Some(2 + 130), "65-byte signature");
        let who = dragon(&order_args("verify", kind.as_str(), "134"), &signed, &[]);
        assert_eq!(stdout_line(&who), k0.address().to_checksum(None));

        // Another chain id is another domain: same signature, another signer.
        let who = dragon(&order_args("verify", kind.as_str(), "1"), &signed, &[]);
        assert_ne!(stdout_line(&who), k0.address().to_checksum(None));

        let mut args = order_args("sign", kind.as_str(), "134");
        let kf = key_file.to_string_lossy().into_owned();
        args.splice(2..2, ["--key-file", kf.as_str()]);
        let signed = stdout_line(&dragon(&args, &order, &[]));
        let who = dragon(&order_args("verify", kind.as_str(), "134"), &signed, &[]);
        assert_eq!(stdout_line(&who), k1.address().to_checksum(None));
    }
    let _ = std::fs::remove_file(&key_file);
}

#[test]
fn verify_accepts_eip2098_compact_signatures() {
    let k0: PrivateKeySigner = KEY0.parse().expect("key");
    let order = random_order(&mut Rng::new(3), OrderKind::Request).to_json().to_string();
    let signed = stdout_line(&dragon(&order_args("sign", "request", "1"), &order, &[("DRAGON_PRIVATE_KEY", KEY0)]));
    let mut j: Value = serde_json::from_str(&signed).expect("json");
    let sig: alloy::primitives::Bytes = j["sign"].as_str().expect("sign").parse().expect("hex");
    let compact = EcdsaSignature::parse(&sig).expect("parse").to_compact();
    j["sign"] = json!(format!("0x{}", alloy::hex::encode(compact)));
    let who = dragon(&order_args("verify", "request", "1"), &j.to_string(), &[]);
    assert_eq!(stdout_line(&who), k0.address().to_checksum(None));
}

fn app_order_json() -> Value {
    random_order(&mut Rng::new(5), OrderKind::App).to_json()
}

#[test]
fn bad_orders_exit_2_naming_the_field() {
    let hash = |j: &Value| dragon(&order_args("hash", "app", "1"), &j.to_string(), &[]);

    let mut j = app_order_json();
    j.as_object_mut().expect("object").remove("volume");
    assert_bad_input(&hash(&j), &["missing field", "volume"]);

    let mut j = app_order_json();
    j["category"] = json!("0");
    assert_bad_input(&hash(&j), &["unknown field", "category"]);

    let mut j = app_order_json();
    j["datasetrestrict"] = json!("0x1234");
    assert_bad_input(&hash(&j), &["datasetrestrict", "not an address"]);

    let mut j = app_order_json();
    j["app"] = json!(42);
    assert_bad_input(&hash(&j), &["app", "address"]);

    let mut j = app_order_json();
    j["appprice"] = json!(format!("{}0", U256::MAX));
    assert_bad_input(&hash(&j), &["appprice", "out of range"]);

    let mut j = app_order_json();
    j["volume"] = json!(-5);
    assert_bad_input(&hash(&j), &["volume", "negative"]);

    let mut j = app_order_json();
    j["volume"] = json!(1.5);
    assert_bad_input(&hash(&j), &["volume", "not an unsigned integer"]);

    let mut j = app_order_json();
    j["tag"] = json!("0x01");
    assert_bad_input(&hash(&j), &["tag", "bytes32"]);

    assert_bad_input(&dragon(&order_args("hash", "app", "1"), "[1, 2]", &[]), &["invalid app order"]);
    assert_bad_input(&dragon(&order_args("hash", "app", "1"), "{\"app\":", &[]), &["invalid app order", "EOF"]);
    assert_bad_input(&dragon(&order_args("hash", "app", "1"), "", &[]), &["invalid app order"]);

    // A request order is not an app order: its extra fields are unknown here.
    let req = random_order(&mut Rng::new(5), OrderKind::Request).to_json();
    assert_bad_input(&hash(&req), &["unknown field"]);
}

#[test]
fn bad_signatures_exit_2_naming_sign() {
    let verify = |j: &Value| dragon(&order_args("verify", "app", "1"), &j.to_string(), &[]);
    let unsigned = app_order_json();
    assert_bad_input(&verify(&unsigned), &["sign", "missing signature"]);

    let mut j = unsigned.clone();
    j["sign"] = json!("0x123");
    assert_bad_input(&verify(&j), &["sign", "hex"]);

    j["sign"] = json!(format!("0x{}", "11".repeat(66)));
    assert_bad_input(&verify(&j), &["sign", "66 bytes"]);

    j["sign"] = json!(format!("0x{}02", "11".repeat(64)));
    assert_bad_input(&verify(&j), &["sign", "v must be 27 or 28"]);

    // A genuine signature turned into its high-s twin.
    let signed =
        stdout_line(&dragon(&order_args("sign", "app", "1"), &unsigned.to_string(), &[("DRAGON_PRIVATE_KEY", KEY0)]));
    let mut j: Value = serde_json::from_str(&signed).expect("json");
    let sig: alloy::primitives::Bytes = j["sign"].as_str().expect("sign").parse().expect("hex");
    let n = dragon::order::signature::HALF_ORDER * U256::from(2) + U256::from(1);
    let mut twin = sig.to_vec();
    twin[32..64].copy_from_slice(&(n - U256::from_be_slice(&sig[32..64])).to_be_bytes::<32>());
    twin[64] ^= 27 ^ 28;
    j["sign"] = json!(format!("0x{}", alloy::hex::encode(&twin)));
    assert_bad_input(&verify(&j), &["sign", "high-s"]);
}

#[test]
fn bad_arguments_exit_2() {
    let order = app_order_json().to_string();
    let missing = std::env::temp_dir().join("dragon-no-such-file.json");
    let missing = missing.to_string_lossy();
    let out = dragon(&["order", "hash", "--kind", "app", "--chain-id", "1", "--hub", HUB, &missing], "", &[]);
    assert_bad_input(&out, &["cannot read", "dragon-no-such-file.json"]);

    let out = dragon(&["order", "hash", "--kind", "apps", "--chain-id", "1", "--hub", HUB, "-"], &order, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kind"));

    let out = dragon(&["order", "hash", "--kind", "app", "--chain-id", "-1", "--hub", HUB, "-"], &order, &[]);
    assert_eq!(out.status.code(), Some(2));

    let out = dragon(&["order", "hash", "--kind", "app", "--chain-id", "1", "--hub", "0xnope", "-"], &order, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hub"));

    assert_bad_input(&dragon(&order_args("sign", "app", "1"), &order, &[]), &["DRAGON_PRIVATE_KEY"]);
    let out = dragon(&order_args("sign", "app", "1"), &order, &[("DRAGON_PRIVATE_KEY", "0x1234")]);
    assert_bad_input(&out, &["DRAGON_PRIVATE_KEY", "private key"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("0x1234"), "never echo a key");
}

#[test]
fn lowercase_addresses_parse_and_print_checksummed() {
    // Lowercase and uppercase addresses are the same order.
    let o = random_order(&mut Rng::new(11), OrderKind::Request);
    let lower = o.to_json().to_string().to_lowercase();
    let reparsed = AnyOrder::from_json(OrderKind::Request, &lower);
    // Lowercasing also lowercases params, so compare address fields only.
    let reparsed = reparsed.expect("lowercase addresses parse");
    let (AnyOrder::Request(a), AnyOrder::Request(b)) = (&o, &reparsed) else { panic!("kind") };
    assert_eq!((a.app, a.requester, a.callback), (b.app, b.requester, b.callback));
    assert_eq!(reparsed.to_json()["app"].as_str(), Some(a.app.to_checksum(None).as_str()));
}
