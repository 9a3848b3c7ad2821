//! `explain` against the engine: after a random stream of commands, a new order's explanation (over the engine's
//! known orders, with their remaining volumes) has a combination without blockers exactly when the engine,
//! given that order, proposes a deal; and the first such combination is the engine's first deal.

use std::cmp::Reverse;
use std::collections::HashSet;

use dragon_matching::explain::{Blocker, Offers, Open, explain};
use dragon_matching::{Command, Engine, Event, Order, Rule, check, failures};
use proptest::prelude::*;

use crate::props::{Driver, Op, blocking_op, op};

/// The engine's known, not cancelled orders (resting, or holding reserved volume: remaining 0), each kind in book
/// priority.
struct Known {
    apps: Vec<Open<dragon_matching::AppOrder>>,
    datasets: Vec<Open<dragon_matching::DatasetOrder>>,
    pools: Vec<Open<dragon_matching::WorkerpoolOrder>>,
    requests: Vec<Open<dragon_matching::RequestOrder>>,
}

/// The track records the engine was given, per workerpool: the engine copies them into the pool's orders (those
/// known and those added later), so the explanation must see the orders with them.
type Records = std::collections::HashMap<dragon_matching::Address, dragon_matching::TrackRecord>;

fn with_record(o: Order, records: &Records) -> Order {
    match o {
        Order::Workerpool(mut w) => {
            w.record = records.get(&w.workerpool).copied().unwrap_or_default();
            Order::Workerpool(w)
        }
        other => other,
    }
}

fn known(engine: &Engine, added: &[Order], records: &Records) -> Known {
    let mut seen = HashSet::new();
    let mut k = Known { apps: Vec::new(), datasets: Vec::new(), pools: Vec::new(), requests: Vec::new() };
    let mut keyed: Vec<(u64, Order, u64)> = Vec::new();
    for o in added {
        if !seen.insert(o.hash()) {
            continue;
        }
        let Some(s) = engine.order_state(&o.hash()) else { continue };
        if s.cancelled || s.kind != o.kind() {
            continue;
        }
        keyed.push((s.seq, with_record(*o, records), s.remaining));
    }
    keyed.sort_by_key(|(seq, _, _)| *seq);
    for (_, o, remaining) in keyed {
        match o {
            Order::App(order) => k.apps.push(Open { order, remaining }),
            Order::Dataset(order) => k.datasets.push(Open { order, remaining }),
            Order::Workerpool(order) => k.pools.push(Open { order, remaining }),
            Order::Request(order) => k.requests.push(Open { order, remaining }),
        }
    }
    // Arrival order is kept among equal prices (stable sorts).
    k.apps.sort_by_key(|a| a.order.price);
    k.datasets.sort_by_key(|d| d.order.price);
    k.pools.sort_by_key(|w| w.order.price);
    k.requests.sort_by_key(|r| Reverse(r.order.workerpool_max_price));
    k
}

/// Runs `ops`, then explains each order `probes` would add and adds it: the explanation must agree with the
/// engine. Returns, per kind of probe (app, dataset, workerpool, request), how many matched and how many did not,
/// so the caller can see both happen.
fn agree(ops: &[Op], probes: &[Op]) -> Result<([usize; 4], [usize; 4]), TestCaseError> {
    let mut engine = Engine::new();
    let mut driver = Driver::default();
    let mut added = Vec::new();
    let (mut matched, mut blocked) = ([0; 4], [0; 4]);
    let mut records = Records::new();
    let slot = |o: &Order| match o {
        Order::App(_) => 0,
        Order::Dataset(_) => 1,
        Order::Workerpool(_) => 2,
        Order::Request(_) => 3,
    };
    for op in ops {
        let cmd = driver.command(op);
        if let Command::Add(o) = cmd {
            added.push(o);
        }
        if let Command::TrackRecord { workerpool, record } = cmd {
            records.insert(workerpool, record);
        }
        let events = engine.execute(cmd);
        driver.saw(&events);
    }
    for probe in probes {
        let cmd = driver.command(probe);
        let Command::Add(order) = cmd else { continue };
        if order.volume() == 0 || engine.order_state(&order.hash()).is_some() {
            continue;
        }
        let k = known(&engine, &added, &records);
        let offers = Offers { apps: &k.apps, datasets: &k.datasets, pools: &k.pools, requests: &k.requests };
        let subject = Open { order: with_record(order, &records), remaining: order.volume() };
        let explanation = explain(&subject, &offers, usize::MAX);
        let events = engine.execute(cmd);
        driver.saw(&events);
        added.push(order);
        let first_deal = events.iter().find_map(|e| if let Event::DealProposed(d) = e { Some(*d) } else { None });
        let first_free = explanation.iter().find(|p| p.matches());
        prop_assert_eq!(
            first_deal.is_some(),
            first_free.is_some(),
            "engine deal {:?} but explanation {:?}",
            first_deal,
            explanation
        );
        if let (Some(d), Some(p)) = (first_deal, first_free) {
            matched[slot(&order)] += 1;
            prop_assert_eq!(p.workerpool.map(|w| w.order.hash), Some(d.workerpool));
            prop_assert_eq!(p.app.map(|a| a.order.hash), Some(d.app));
            prop_assert_eq!(p.dataset.map(|x| x.order.hash), d.dataset);
            prop_assert_eq!(p.request.map(|r| r.order.hash), Some(d.request));
        } else {
            blocked[slot(&order)] += 1;
        }
        for p in &explanation {
            // Blockers are what the rules say of the members shown: the rules a real combination fails are
            // exactly `failures` of it, and `check` reports the first of them.
            if let (Some(a), Some(w), Some(r)) = (p.app, p.workerpool, p.request) {
                let f = failures(&a.order, p.dataset.map(|d| d.order).as_ref(), &w.order, &r.order);
                let rules: Vec<Rule> =
                    p.blockers.iter().filter_map(|b| if let Blocker::Rule(x) = b { Some(*x) } else { None }).collect();
                let missing_dataset = p.blockers.contains(&Blocker::NoDatasetOrder);
                if !missing_dataset {
                    prop_assert_eq!(&rules, &f.iter().collect::<Vec<_>>());
                    prop_assert_eq!(
                        check(&a.order, p.dataset.map(|d| d.order).as_ref(), &w.order, &r.order).err(),
                        f.first()
                    );
                }
            }
        }
        // Fewest blockers first.
        prop_assert!(explanation.windows(2).all(|w| w[0].blockers.len() <= w[1].blockers.len()));
    }
    Ok((matched, blocked))
}

fn adds() -> impl Strategy<Value = Op> {
    op().prop_filter("an order", |o| {
        matches!(o, Op::App { .. } | Op::Dataset { .. } | Op::Pool { .. } | Op::Request { .. })
    })
}

fn blocking_adds() -> impl Strategy<Value = Op> {
    blocking_op().prop_filter("an order", |o| {
        matches!(o, Op::App { .. } | Op::Dataset { .. } | Op::Pool { .. } | Op::Request { .. })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn explanation_has_no_blocker_exactly_when_the_engine_matches(
        ops in proptest::collection::vec(op(), 0..50),
        probes in proptest::collection::vec(adds(), 1..8),
    ) {
        agree(&ops, &probes)?;
    }

    #[test]
    fn explanation_agrees_on_blocking_streams(
        ops in proptest::collection::vec(blocking_op(), 0..60),
        probes in proptest::collection::vec(blocking_adds(), 1..8),
    ) {
        agree(&ops, &probes)?;
    }
}

/// The properties above are not vacuous: probes both match and stay blocked, for every kind of order.
#[test]
fn generated_probes_both_match_and_block() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut matched, mut blocked) = ([0; 4], [0; 4]);
    for _ in 0..500 {
        let ops = proptest::collection::vec(op(), 10..50).new_tree(&mut runner).expect("tree").current();
        let probes = proptest::collection::vec(adds(), 4..8).new_tree(&mut runner).expect("tree").current();
        let (m, b) = agree(&ops, &probes).expect("agreement");
        for k in 0..4 {
            matched[k] += m[k];
            blocked[k] += b[k];
        }
    }
    // Per kind: app, dataset, workerpool, request.
    eprintln!("probes matched {matched:?}, blocked {blocked:?}");
    assert!(matched.iter().chain(&blocked).all(|n| *n > 10), "matched {matched:?}, blocked {blocked:?}");
}

/// A request with nothing to pair with says so, and still shows the rules the offers fail.
#[test]
fn missing_orders_are_blockers() {
    use crate::support::{h, pool, request};
    let mut r = request(1, 1, 0, 2, 5, 0);
    r.dataset = crate::support::addr(3);
    let subject = Open { order: Order::Request(r), remaining: 5 };
    let pools = [Open { order: pool(2, 5, 9, 1, 0), remaining: 1 }];
    let offers = Offers { pools: &pools, ..Offers::default() };
    let e = explain(&subject, &offers, 10);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].workerpool.map(|w| w.order.hash), Some(h(2)));
    assert_eq!(e[0].blockers, vec![Blocker::Rule(Rule::WorkerpoolPrice), Blocker::NoAppOrder, Blocker::NoDatasetOrder]);
    let none = explain(&subject, &Offers::default(), 10);
    assert_eq!(none[0].blockers, vec![Blocker::NoWorkerpoolOrder, Blocker::NoAppOrder, Blocker::NoDatasetOrder]);
}
