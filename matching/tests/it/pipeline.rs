//! The pipeline under many producers: every shard's events equal a single-threaded engine run of the commands that
//! shard applied (its journal), producers' order is kept per shard, app/dataset volume is never over-filled across
//! shards, readers see monotone snapshots that end equal to the engines' books.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use dragon_matching::pipeline::{EventSink, Input, Pipeline, PipelineConfig, QueueSink, Scope, shard_of, share};
use dragon_matching::{Command, Engine, Event, Order, OrderHash, PipelineDown};

use crate::support::{app, dataset, h, pool, request};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 1_500;
const SHARDS: usize = 3;

/// A tiny deterministic generator (no dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Hash = producer * 1e6 + counter, so the test can tell who sent what and in which order.
fn producer_inputs(p: u64) -> Vec<(Input, Order)> {
    let mut g = Lcg(p + 1);
    let mut out = Vec::new();
    let mut mine: Vec<(OrderHash, Scope)> = Vec::new();
    for i in 0..PER_PRODUCER {
        let n = p * 1_000_000 + i;
        let category = g.next(5);
        let order = match g.next(10) {
            0 => Order::App(app(n, 1 + g.next(2) as u8, g.next(3), 1 + g.next(6))),
            1 => Order::Dataset(dataset(n, 3, g.next(3), 1 + g.next(6))),
            2..=5 => Order::Workerpool(pool(n, 5 + g.next(2) as u8, 2 + g.next(6), 1 + g.next(4), category)),
            _ => {
                let ds = if g.next(4) == 0 { 3 } else { 0 };
                Order::Request(request(n, 1 + g.next(2) as u8, ds, 1 + g.next(9), 1 + g.next(4), category))
            }
        };
        let scope = match order {
            Order::Workerpool(o) => Scope::Category(o.category),
            Order::Request(o) => Scope::Category(o.category),
            _ => Scope::AllShards,
        };
        out.push((Input::Add(order), order));
        mine.push((order.hash(), scope));
        if g.next(12) == 0 {
            let (hash, scope) = mine[g.next(mine.len() as u64) as usize];
            out.push((Input::Cancel { hash, scope }, order));
        }
    }
    out
}

#[test]
fn shards_replay_exactly_and_never_over_fill() {
    let config = PipelineConfig {
        shards: SHARDS,
        queue_capacity: 256,
        publish_every: 64,
        depth_levels: 8,
        listed_orders: 5,
        capacity: 1_000,
        journal: true,
    };
    let sink = Arc::new(QueueSink::new());
    let pipeline = Pipeline::start(config, Arc::clone(&sink));

    let producers_done = Arc::new(AtomicBool::new(false));
    // The consumer confirms two deals of three and releases the third, like the settlement side would.
    let consumer = {
        let sink = Arc::clone(&sink);
        let sub = pipeline.submitter();
        let done = Arc::clone(&producers_done);
        thread::spawn(move || {
            let mut seen: Vec<(usize, Event)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                match sink.pop() {
                    Some((s, e)) => {
                        if let Event::DealProposed(d) = e {
                            let input = if (d.id.0 / SHARDS as u64) % 3 == 2 {
                                Input::Release(d.id)
                            } else {
                                Input::Confirm(d.id)
                            };
                            sub.submit(input).expect("writers stay up");
                        }
                        seen.push((s, e));
                    }
                    None => {
                        if done.load(Ordering::SeqCst) && sub.idle() && sink.pop().is_none() {
                            // Nothing in flight: producers are done and this thread submits nothing more.
                            if sub.idle() {
                                break;
                            }
                        }
                        assert!(Instant::now() < deadline, "pipeline did not go idle");
                        thread::yield_now();
                    }
                }
            }
            seen
        })
    };

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let sub = pipeline.submitter();
            thread::spawn(move || {
                let inputs = producer_inputs(p);
                for (input, _) in &inputs {
                    sub.submit(*input).expect("writers stay up");
                }
                inputs
            })
        })
        .collect();
    // Meanwhile this thread reads snapshots: `applied` is monotone per shard.
    let mut last = [0u64; SHARDS];
    while !producers.iter().all(|t| t.is_finished()) {
        for (s, l) in last.iter_mut().enumerate() {
            let snap = pipeline.snapshot(s);
            assert!(snap.applied >= *l, "snapshot went back in time");
            *l = snap.applied;
        }
        thread::yield_now();
    }
    let inputs: Vec<Vec<(Input, Order)>> = producers.into_iter().map(|t| t.join().expect("producer")).collect();
    producers_done.store(true, Ordering::SeqCst);
    let seen = consumer.join().expect("consumer");

    let final_snaps: Vec<_> = (0..SHARDS).map(|s| pipeline.snapshot(s)).collect();
    let applied = pipeline.applied();
    let reports = pipeline.shutdown();

    let mut per_shard: Vec<Vec<Event>> = vec![Vec::new(); SHARDS];
    for (s, e) in &seen {
        per_shard[*s].push(*e);
    }
    let mut total_deals = 0;
    let mut net: HashMap<OrderHash, i128> = HashMap::new();
    for r in &reports {
        // 1. Deterministic replay of the shard's journal.
        let mut engine = Engine::with_proposal_ids(r.shard as u64, SHARDS as u64);
        let mut replay = Vec::new();
        for cmd in &r.journal {
            engine.apply(*cmd, &mut replay);
        }
        assert_eq!(replay, per_shard[r.shard], "shard {} differs from its replay", r.shard);
        assert_eq!(applied[r.shard], r.journal.len() as u64);
        // 2. Producer order is kept within a shard.
        let mut last_seen: HashMap<u64, u64> = HashMap::new();
        for cmd in &r.journal {
            if let Command::Add(o) = cmd {
                let n = u64::from_be_bytes(o.hash().0[..8].try_into().expect("8 bytes"));
                let (producer, i) = (n / 1_000_000, n % 1_000_000);
                if let Some(prev) = last_seen.insert(producer, i) {
                    assert!(prev < i, "producer {producer}'s orders reordered in shard {}", r.shard);
                }
            }
        }
        // 3. Workerpool and request orders only in their category's shard.
        for cmd in &r.journal {
            match cmd {
                Command::Add(Order::Workerpool(o)) => assert_eq!(shard_of(o.category, SHARDS), r.shard),
                Command::Add(Order::Request(o)) => assert_eq!(shard_of(o.category, SHARDS), r.shard),
                _ => {}
            }
        }
        // 4. Snapshot published at idle equals the engine's books.
        let snap = &final_snaps[r.shard];
        assert_eq!(snap.applied, r.journal.len() as u64);
        for c in r.engine.categories() {
            let view = snap.category(c).expect("every category of the engine is in the snapshot");
            assert_eq!(view.depth, r.engine.depth(c, 8));
            assert_eq!(view.top_asks, r.engine.top_asks(c, 5));
            assert_eq!(view.top_bids, r.engine.top_bids(c, 5));
            assert_eq!(snap.best_ask(c), r.engine.best_ask(c));
            assert_eq!(snap.best_bid(c), r.engine.best_bid(c));
        }
        for e in &per_shard[r.shard] {
            if let Event::DealProposed(d) = e {
                total_deals += 1;
                for m in [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten() {
                    *net.entry(m).or_default() += i128::from(d.volume);
                }
                if (d.id.0 / SHARDS as u64) % 3 == 2 {
                    for m in [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten() {
                        *net.entry(m).or_default() -= i128::from(d.volume);
                    }
                }
            }
        }
        assert_eq!(r.engine.pending_proposals(), 0, "every proposal was confirmed or released");
    }
    eprintln!("{total_deals} deals across {SHARDS} shards");
    assert!(total_deals > 200, "only {total_deals} deals: the test does not exercise matching");
    // 5. Every input reached its shards; app/dataset volume is split without over-fill.
    let all: Vec<(Input, Order)> = inputs.into_iter().flatten().collect();
    let adds_expected: usize = all
        .iter()
        .map(|(i, _)| match i {
            Input::Add(Order::App(o)) => (0..SHARDS).filter(|&s| share(o.volume, s, SHARDS) > 0).count(),
            Input::Add(Order::Dataset(o)) => (0..SHARDS).filter(|&s| share(o.volume, s, SHARDS) > 0).count(),
            Input::Add(_) => 1,
            _ => 0,
        })
        .sum();
    let adds_applied: usize =
        reports.iter().map(|r| r.journal.iter().filter(|c| matches!(c, Command::Add(_))).count()).sum();
    assert_eq!(adds_applied, adds_expected);
    for (i, o) in &all {
        if let Input::Add(_) = i {
            let used = net.get(&o.hash()).copied().unwrap_or(0);
            assert!(used <= i128::from(o.volume()), "order {} over-filled: {used} > {}", o.hash(), o.volume());
        }
    }
}

/// Panics on the writer thread of shard 1 once it has published `after` events; shard 0's events pass.
#[derive(Debug)]
struct PanickingSink {
    after: u64,
    seen: AtomicU64,
}

impl EventSink for PanickingSink {
    fn publish(&self, shard: usize, events: &[Event]) {
        if shard == 1 && self.seen.fetch_add(events.len() as u64, Ordering::SeqCst) + events.len() as u64 > self.after {
            panic!("the sink of shard 1 fails on purpose");
        }
    }
}

#[test]
fn a_dead_writer_is_reported_and_submit_does_not_hang() {
    // A tiny queue: without the liveness check, the second push beyond capacity would spin forever.
    let config = PipelineConfig { shards: 2, queue_capacity: 4, publish_every: 1, ..PipelineConfig::default() };
    let pipeline = Pipeline::start(config, PanickingSink { after: 5, seen: AtomicU64::new(0) });
    assert_eq!(pipeline.check_alive(), Ok(()));
    let sub = pipeline.submitter();
    // The submits run on another thread so that a regression fails on a timeout instead of hanging the suite.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut first_err = None;
        // Category 1 is shard 1: each add publishes one `Resting` event, so the sink panics after a few.
        for n in 0..1_000 {
            if let Err(e) = sub.submit(Input::Add(Order::Workerpool(pool(n, 5, 10, 1, 1)))) {
                first_err = Some((n, e));
                break;
            }
        }
        let live_shard = sub.submit(Input::Add(Order::Workerpool(pool(5_000, 5, 10, 1, 0))));
        let broadcast = sub.submit(Input::Add(Order::App(app(5_001, 1, 3, 10))));
        let again = sub.submit(Input::Add(Order::Workerpool(pool(5_002, 5, 10, 1, 1))));
        tx.send((first_err, live_shard, broadcast, again, sub.check_alive())).expect("the test waits");
    });
    let (first_err, live_shard, broadcast, again, alive) =
        rx.recv_timeout(Duration::from_secs(60)).expect("submit hung on a dead writer");
    let (n, err) = first_err.expect("the writer of shard 1 died, so some submit fails");
    assert!(n >= 5, "the first {n} submits happened before the writer could die");
    assert_eq!(err, PipelineDown { shard: 1 });
    assert_eq!(err.to_string(), "matching writer of shard 1 has stopped");
    assert_eq!(live_shard, Ok(()), "shard 0 is alive and still takes its commands");
    assert_eq!(broadcast, Err(PipelineDown { shard: 1 }), "an app order reaches shard 0 but not shard 1");
    assert_eq!(again, Err(PipelineDown { shard: 1 }));
    assert_eq!(alive, Err(PipelineDown { shard: 1 }));
    assert_eq!(pipeline.check_alive(), Err(PipelineDown { shard: 1 }));

    let reports = pipeline.try_shutdown();
    assert_eq!(reports.len(), 2);
    let live = reports[0].as_ref().expect("shard 0 shuts down normally");
    assert!(live.engine.order_state(&h(5_000)).is_some() && live.engine.order_state(&h(5_001)).is_some());
    assert_eq!(reports[1].as_ref().err(), Some(&PipelineDown { shard: 1 }));
}

/// A track record goes to every shard: one workerpool's orders in two categories (two shards) both become
/// acceptable to requests that ask a minimum record, and each shard proposes its deal.
#[test]
fn a_track_record_reaches_every_shard() {
    use dragon_matching::{MinTrackRecord, TrackRecord};
    let sink = Arc::new(QueueSink::new());
    struct Shared(Arc<QueueSink>);
    impl EventSink for Shared {
        fn publish(&self, shard: usize, events: &[Event]) {
            self.0.publish(shard, events);
        }
    }
    let config = PipelineConfig { shards: 2, ..PipelineConfig::default() };
    let pipeline = Pipeline::start(config, Shared(sink.clone()));
    let sub = pipeline.submitter();
    assert_ne!(shard_of(0, 2), shard_of(1, 2), "categories 0 and 1 are on different shards");
    let need = MinTrackRecord { tasks: 10, completed_bp: 9_000 };
    sub.submit(Input::Add(Order::App(app(1, 1, 1, 100)))).expect("app");
    for c in 0..2u64 {
        sub.submit(Input::Add(Order::Workerpool(pool(10 + c, 5, 5, 1, c)))).expect("pool");
        let r = dragon_matching::RequestOrder { min_record: need, ..request(20 + c, 1, 0, 5, 1, c) };
        sub.submit(Input::Add(Order::Request(r))).expect("request");
    }
    let record = TrackRecord { finished: 10, completed: 9 };
    sub.submit(Input::TrackRecord { workerpool: crate::support::addr(5), record }).expect("record");
    let reports = pipeline.shutdown();
    let mut deals = Vec::new();
    while let Some((shard, e)) = sink.pop() {
        if let Event::DealProposed(d) = e {
            deals.push((shard, d.category, d.request));
        }
    }
    deals.sort();
    let expected: Vec<(usize, u64, OrderHash)> = (0..2u64).map(|c| (shard_of(c, 2), c, h(20 + c))).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(deals, expected, "each shard matched its category once the record came");
    assert_eq!(reports.len(), 2);
}
