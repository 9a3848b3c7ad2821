//! `dragon replay` against a reference written here from the issue's words: after every command, take the
//! resting requests in bid priority; for each, repeatedly take the first compatible (workerpool, app, dataset)
//! in ask priority and deal the smallest remaining volume. The reference re-runs that whole rule after every
//! command, with its own PoCo compatibility predicate over the JSON-level orders, so it shares nothing with the
//! engine's incremental implementation.

use crate::fixtures::Rng;
use crate::harness::dragon_bin;
use alloy::primitives::{Address, B256, U256};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, DatasetOrder, Domain, RequestOrder, WorkerpoolOrder};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, PartialEq, Eq)]
struct DealLine {
    app: B256,
    dataset: Option<B256>,
    workerpool: B256,
    request: B256,
    volume: u64,
}

struct Live {
    order: AnyOrder,
    hash: B256,
    seq: u64,
    remaining: u64,
    /// The order's price (its max workerpool price for a request), small in these streams.
    price: u64,
}

fn admits(restrict: Address, who: Address) -> bool {
    restrict == Address::ZERO || restrict == who
}

fn tee(tag: B256) -> bool {
    tag.0[31] & 1 == 1
}

/// PoCo's matchOrders checks 00, 02-07 and 10-1b (a conjunction; the tag checks come last only because
/// 256-bit operations are the slow ones in a debug build).
fn compatible(a: &AppOrder, d: Option<&DatasetOrder>, w: &WorkerpoolOrder, r: &RequestOrder) -> bool {
    let (d_addr, d_price, d_tag) =
        d.map_or((Address::ZERO, Nrlc::ZERO, B256::ZERO), |d| (d.dataset, d.datasetprice, d.tag));
    let tags = || {
        let union = a.tag | d_tag | r.tag;
        (union & w.tag) == union && (!tee(union) || tee(a.tag))
    };
    r.category == w.category
        && r.trust <= w.trust
        && r.appmaxprice >= a.appprice
        && r.datasetmaxprice >= d_price
        && r.workerpoolmaxprice >= w.workerpoolprice
        && r.app == a.app
        && r.dataset == d_addr
        && admits(r.workerpool, w.workerpool)
        && admits(a.datasetrestrict, d_addr)
        && admits(a.workerpoolrestrict, w.workerpool)
        && admits(a.requesterrestrict, r.requester)
        && d.is_none_or(|d| {
            admits(d.apprestrict, a.app)
                && admits(d.workerpoolrestrict, w.workerpool)
                && admits(d.requesterrestrict, r.requester)
        })
        && admits(w.apprestrict, a.app)
        && admits(w.datasetrestrict, d_addr)
        && admits(w.requesterrestrict, r.requester)
        && tags()
}

fn price_key(o: &AnyOrder) -> U256 {
    match o {
        AnyOrder::App(o) => o.appprice.0,
        AnyOrder::Dataset(o) => o.datasetprice.0,
        AnyOrder::Workerpool(o) => o.workerpoolprice.0,
        AnyOrder::Request(o) => o.workerpoolmaxprice.0,
    }
}

/// The request's maximum price for an offer of this kind (rules 03-05).
fn max_price(r: &RequestOrder, offer: &AnyOrder) -> U256 {
    match offer {
        AnyOrder::App(_) => r.appmaxprice.0,
        AnyOrder::Dataset(_) => r.datasetmaxprice.0,
        AnyOrder::Workerpool(_) => r.workerpoolmaxprice.0,
        AnyOrder::Request(_) => U256::ZERO,
    }
}

/// The whole rule, run to the end on the live orders.
fn run_rule(live: &mut Vec<Live>, deals: &mut Vec<DealLine>) {
    // Priority orders do not change while volumes fall, so sort once; exhausted orders are skipped below.
    let by_priority = |live: &Vec<Live>, pick: fn(&AnyOrder) -> bool, desc: bool| {
        let mut v: Vec<usize> = (0..live.len()).filter(|&i| pick(&live[i].order)).collect();
        v.sort_by_key(|&i| (if desc { u64::MAX - live[i].price } else { live[i].price }, live[i].seq));
        v
    };
    let requests = by_priority(live, |o| matches!(o, AnyOrder::Request(_)), true);
    let pools = by_priority(live, |o| matches!(o, AnyOrder::Workerpool(_)), false);
    let apps = by_priority(live, |o| matches!(o, AnyOrder::App(_)), false);
    let datasets = by_priority(live, |o| matches!(o, AnyOrder::Dataset(_)), false);
    for ri in requests {
        loop {
            let AnyOrder::Request(r) = &live[ri].order else { unreachable!() };
            if live[ri].remaining == 0 {
                break;
            }
            // Candidates in priority order (narrowing by category, asset and price only skips what the
            // predicate would refuse anyway).
            let live_ = &*live;
            let open = |i: &&usize| {
                live_[**i].remaining > 0 && price_key(&live_[**i].order) <= max_price(r, &live_[**i].order)
            };
            let my_pools: Vec<usize> = pools
                .iter()
                .filter(open)
                .filter(|&&i| matches!(&live_[i].order, AnyOrder::Workerpool(w) if w.category == r.category))
                .copied()
                .collect();
            let my_apps: Vec<usize> = apps
                .iter()
                .filter(open)
                .filter(|&&i| matches!(&live_[i].order, AnyOrder::App(a) if a.app == r.app))
                .copied()
                .collect();
            let my_datasets: Vec<usize> = datasets
                .iter()
                .filter(open)
                .filter(|&&i| matches!(&live_[i].order, AnyOrder::Dataset(d) if d.dataset == r.dataset))
                .copied()
                .collect();
            let mut found = None;
            'search: for &wi in &my_pools {
                let AnyOrder::Workerpool(w) = &live[wi].order else { unreachable!() };
                for &ai in &my_apps {
                    let AnyOrder::App(a) = &live[ai].order else { unreachable!() };
                    if r.dataset == Address::ZERO {
                        if compatible(a, None, w, r) {
                            found = Some((wi, ai, None));
                            break 'search;
                        }
                        continue;
                    }
                    for &di in &my_datasets {
                        let AnyOrder::Dataset(d) = &live[di].order else { unreachable!() };
                        if compatible(a, Some(d), w, r) {
                            found = Some((wi, ai, Some(di)));
                            break 'search;
                        }
                    }
                }
            }
            let Some((wi, ai, di)) = found else { break };
            let mut volume = live[ri].remaining.min(live[wi].remaining).min(live[ai].remaining);
            if let Some(di) = di {
                volume = volume.min(live[di].remaining);
            }
            for i in [Some(ri), Some(wi), Some(ai), di].into_iter().flatten() {
                live[i].remaining -= volume;
            }
            deals.push(DealLine {
                app: live[ai].hash,
                dataset: di.map(|d| live[d].hash),
                workerpool: live[wi].hash,
                request: live[ri].hash,
                volume,
            });
        }
    }
    live.retain(|l| l.remaining > 0);
}

/// A random market in small domains, so that compatible combinations are frequent.
fn stream(seed: u64, len: usize) -> (Vec<Value>, Vec<DealLine>) {
    let mut rng = Rng::new(seed);
    let addr = |n: u8| Address::repeat_byte(n);
    let apps = [addr(0xa1), addr(0xa2), addr(0xa3)];
    let datasets = [addr(0xd1), addr(0xd2)];
    let pools = [addr(0xb1), addr(0xb2), addr(0xb3)];
    let requesters = [addr(0xc1), addr(0xc2), addr(0xc3)];
    let pick = |rng: &mut Rng, set: &[Address]| set[(rng.next() % set.len() as u64) as usize];
    let restrict = |rng: &mut Rng, set: &[Address]| {
        if rng.next().is_multiple_of(4) { pick(rng, set) } else { Address::ZERO }
    };
    let tag = |rng: &mut Rng, bits: u64| {
        let mut t = B256::ZERO;
        t.0[31] = (rng.next() % bits) as u8;
        t
    };
    let small = |rng: &mut Rng, n: u64| U256::from(rng.next() % n);
    let domain = Domain::new(U256::from(1), Address::ZERO);

    let mut lines = Vec::new();
    let mut added: Vec<(AnyOrder, B256)> = Vec::new();
    let mut live: Vec<Live> = Vec::new();
    let mut deals = Vec::new();
    let mut seq = 0;
    for _ in 0..len {
        let roll = rng.next() % 20;
        if roll == 0 && !added.is_empty() {
            let (_, h) = added[(rng.next() % added.len() as u64) as usize].clone();
            lines.push(json!({"type": "cancel", "orderHash": format!("{h:#x}")}));
            live.retain(|l| l.hash != h);
            continue;
        }
        let order = if roll == 1 && !added.is_empty() {
            added[(rng.next() % added.len() as u64) as usize].0.clone()
        } else {
            let salt = B256::from(U256::from(rng.next()));
            let volume = U256::from(1 + rng.next() % 4);
            match rng.next() % 10 {
                0..=2 => AnyOrder::App(AppOrder {
                    app: pick(&mut rng, &apps),
                    appprice: Nrlc(small(&mut rng, 4)),
                    volume,
                    tag: tag(&mut rng, 4),
                    datasetrestrict: restrict(&mut rng, &datasets),
                    workerpoolrestrict: restrict(&mut rng, &pools),
                    requesterrestrict: restrict(&mut rng, &requesters),
                    salt,
                    sign: None,
                }),
                3 => AnyOrder::Dataset(DatasetOrder {
                    dataset: pick(&mut rng, &datasets),
                    datasetprice: Nrlc(small(&mut rng, 4)),
                    volume,
                    tag: tag(&mut rng, 4),
                    apprestrict: restrict(&mut rng, &apps),
                    workerpoolrestrict: restrict(&mut rng, &pools),
                    requesterrestrict: restrict(&mut rng, &requesters),
                    salt,
                    sign: None,
                }),
                4..=6 => AnyOrder::Workerpool(WorkerpoolOrder {
                    workerpool: pick(&mut rng, &pools),
                    workerpoolprice: Nrlc(small(&mut rng, 6)),
                    volume,
                    tag: tag(&mut rng, 8),
                    category: small(&mut rng, 2),
                    trust: small(&mut rng, 4),
                    apprestrict: restrict(&mut rng, &apps),
                    datasetrestrict: restrict(&mut rng, &datasets),
                    requesterrestrict: restrict(&mut rng, &requesters),
                    salt,
                    sign: None,
                }),
                _ => AnyOrder::Request(RequestOrder {
                    app: pick(&mut rng, &apps),
                    appmaxprice: Nrlc(small(&mut rng, 5)),
                    dataset: if rng.next().is_multiple_of(2) { Address::ZERO } else { pick(&mut rng, &datasets) },
                    datasetmaxprice: Nrlc(small(&mut rng, 5)),
                    workerpool: restrict(&mut rng, &pools),
                    workerpoolmaxprice: Nrlc(small(&mut rng, 8)),
                    requester: pick(&mut rng, &requesters),
                    volume,
                    tag: tag(&mut rng, 4),
                    category: small(&mut rng, 2),
                    trust: small(&mut rng, 4),
                    beneficiary: Address::ZERO,
                    callback: Address::ZERO,
                    params: String::new(),
                    salt,
                    sign: None,
                }),
            }
        };
        let hash = order.order_hash(&domain).0;
        let kind = order.kind().as_str();
        lines.push(json!({"type": format!("{kind}order"), "order": order.to_json()}));
        if !live.iter().any(|l| l.hash == hash) {
            let remaining = u64::try_from(order.volume()).expect("small volume");
            let price = u64::try_from(price_key(&order)).expect("small price");
            live.push(Live { order: order.clone(), hash, seq, remaining, price });
            seq += 1;
            run_rule(&mut live, &mut deals);
        }
        added.push((order, hash));
    }
    (lines, deals)
}

fn run_replay(input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(dragon_bin())
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The command may exit before reading everything (it stops at the first bad argument or line).
    if let Err(e) = child.stdin.take().expect("stdin").write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing stdin: {e}");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn parse_deals(stdout: &str) -> Vec<DealLine> {
    let h = |v: &Value| v.as_str().expect("hash string").parse::<B256>().expect("hash");
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("deal line is JSON");
            DealLine {
                app: h(&v["apporderHash"]),
                dataset: (!v["datasetorderHash"].is_null()).then(|| h(&v["datasetorderHash"])),
                workerpool: h(&v["workerpoolorderHash"]),
                request: h(&v["requestorderHash"]),
                volume: v["volume"].as_u64().expect("volume"),
            }
        })
        .collect()
}

#[test]
fn replay_reproduces_the_rule_on_random_streams() {
    let mut total = 0;
    let mut with_dataset = 0;
    for seed in 0..16 {
        let (lines, expected) = stream(seed, 250);
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (code, stdout, stderr) = run_replay(&input);
        assert_eq!(code, Some(0), "replay failed: {stderr}");
        let got = parse_deals(&stdout);
        if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i)) {
            let dir = std::env::temp_dir().join(format!("dragon-replay-seed-{seed}.jsonl"));
            let _ = std::fs::write(&dir, &input);
            panic!(
                "seed {seed}: deal {i} of {} differs from the rule (stream kept in {}):\n  replay:    {:?}\n  reference: {:?}",
                expected.len(),
                dir.display(),
                got.get(i),
                expected.get(i)
            );
        }
        total += got.len();
        with_dataset += got.iter().filter(|d| d.dataset.is_some()).count();
    }
    eprintln!("{total} deals, {with_dataset} with a dataset");
    // The streams must exercise the rule, not pass vacuously.
    assert!(total > 400, "only {total} deals over all seeds");
    assert!(with_dataset > 100, "only {with_dataset} deals with a dataset");
}

#[test]
fn replay_rejects_bad_lines_with_exit_2() {
    let cases = [
        ("not json\n", "line 1"),
        ("{\"type\": \"bidorder\", \"order\": {}}\n", "unknown type"),
        ("{\"type\": \"cancel\"}\n", "orderHash"),
        ("{\"type\": \"cancel\", \"orderHash\": \"0x12\"}\n", "orderHash"),
        ("\n{\"type\": \"apporder\", \"order\": {\"app\": 1}}\n", "line 2"),
    ];
    for (input, needle) in cases {
        let (code, stdout, stderr) = run_replay(input);
        assert_eq!(code, Some(2), "input {input:?}: {stderr}");
        assert!(stderr.contains(needle), "stderr {stderr:?} lacks {needle:?}");
        assert!(stdout.is_empty());
    }
    // A value the engine cannot hold is refused with its field named.
    let (lines, _) = stream(99, 40);
    let mut big = lines.into_iter().find(|l| l["type"] == "workerpoolorder").expect("a workerpool order");
    big["order"]["workerpoolprice"] = json!(U256::MAX.to_string());
    let (code, _, stderr) = run_replay(&format!("{big}\n"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("workerpoolprice") && stderr.contains("too large"), "{stderr}");
}

#[test]
fn replay_is_deterministic() {
    let (lines, _) = stream(7, 400);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let first = run_replay(&input).1;
    assert!(!first.is_empty());
    assert_eq!(run_replay(&input).1, first);
}

/// A request asking a minimum track record is not matched until a `trackrecord` line gives its workerpool one
/// that meets it; then it is, with no order arriving. A record of more completed than finished tasks is refused.
#[test]
fn replay_weighs_track_records() {
    let (app, pool, me) = (Address::repeat_byte(1), Address::repeat_byte(2), Address::repeat_byte(3));
    let app_order = AnyOrder::App(AppOrder {
        app,
        appprice: Nrlc(U256::from(1)),
        volume: U256::from(10),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(1),
        sign: None,
    });
    let pool_order = AnyOrder::Workerpool(WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: Nrlc(U256::from(5)),
        volume: U256::from(10),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::ZERO,
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(2),
        sign: None,
    });
    let request = AnyOrder::Request(RequestOrder {
        app,
        appmaxprice: Nrlc(U256::from(1)),
        dataset: Address::ZERO,
        datasetmaxprice: Nrlc(U256::ZERO),
        workerpool: Address::ZERO,
        workerpoolmaxprice: Nrlc(U256::from(5)),
        requester: me,
        volume: U256::from(1),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::ZERO,
        beneficiary: me,
        callback: Address::ZERO,
        params: r#"{"dragon_min_track_record":{"tasks":2,"completed":0.5}}"#.into(),
        salt: B256::repeat_byte(3),
        sign: None,
    });
    let lines: Vec<Value> = vec![
        json!({"type": "apporder", "order": app_order.to_json()}),
        json!({"type": "workerpoolorder", "order": pool_order.to_json()}),
        json!({"type": "requestorder", "order": request.to_json()}),
        json!({"type": "trackrecord", "workerpool": pool.to_string(), "finished": 2, "completed": 0}),
    ];
    let text = |lines: &[Value]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let (code, stdout, stderr) = run_replay(&text(&lines));
    assert_eq!((code, stdout.as_str()), (Some(0), ""), "0 of 2 completed falls short: {stderr}");
    let mut met = lines.clone();
    met.push(json!({"type": "trackrecord", "workerpool": pool.to_string(), "finished": 2, "completed": 1}));
    let (code, stdout, stderr) = run_replay(&text(&met));
    assert_eq!(code, Some(0), "{stderr}");
    let deals = parse_deals(&stdout);
    assert_eq!(deals.len(), 1, "{stdout}");
    assert_eq!(deals[0].request, request.order_hash(&Domain::new(U256::from(1), Address::ZERO)).0, "{stdout}");
    let bad = json!({"type": "trackrecord", "workerpool": pool.to_string(), "finished": 1, "completed": 2});
    let (code, _, stderr) = run_replay(&format!("{bad}\n"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("more than finished"), "{stderr}");
}
