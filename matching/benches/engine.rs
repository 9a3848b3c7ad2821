// Matching engine benchmarks (criterion), plus a per-operation latency table (p50/p99/p99.9 timed one operation
// at a time with `Instant`), printed before criterion's groups run.
//
// Run: `cargo bench -p dragon-matching --bench engine` (all), or with a filter, e.g. `-- sparse/100000`.
// `DRAGON_BENCH_SIZES=10000,100000` limits the book sizes (default 10k, 100k, 1M).
// This file is also included by the root package's `benches/matching.rs`, so it has no inner attributes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dragon_matching::{
    Address, AppOrder, Command, Engine, Event, Nrlc, Order, OrderHash, RequestOrder, Tag, WorkerpoolOrder,
};

const CATEGORIES: u64 = 5;
const APPS: u64 = 100;
const REQUESTERS: u64 = 1_000;
const BIG: u64 = 1 << 40;

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n
    }
}

fn hash(n: u64) -> OrderHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    OrderHash(b)
}

fn address(kind: u8, n: u64) -> Address {
    let mut a = [0u8; 20];
    a[0] = kind;
    a[12..].copy_from_slice(&n.to_be_bytes());
    Address(a)
}

fn tag_bits(bits: u8) -> Tag {
    // Bits 1..7 of the last byte (bit 0 is TEE, left out so that tags alone decide).
    let mut t = [0u8; 32];
    t[31] = bits & 0xfe;
    Tag(t)
}

/// How the generated book looks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// No tags, no restrictions; asks in [1000, 2000), bids in [0, 1000): nothing crosses.
    Sparse,
    /// Tags (pools hold 3 of 7 bits, requests need 1) and restrictions (20 % of pools restrict the requester,
    /// 10 % the app); asks in [900, 2000), bids in [0, 1100): the 10 % of orders in the overlap cross on price
    /// and are kept apart only by tags and restrictions, which every scan must check.
    Dense,
}

struct Gen {
    rng: Rng,
    next: u64,
    shape: Shape,
}

impl Gen {
    fn new(shape: Shape, seed: u64) -> Self {
        Gen { rng: Rng(seed), next: 1, shape }
    }
    fn fresh(&mut self) -> OrderHash {
        self.next += 1;
        hash(self.next)
    }
    fn app(&mut self, app: u64) -> Order {
        Order::App(AppOrder {
            hash: self.fresh(),
            app: address(1, app),
            price: Nrlc(self.rng.next(10)),
            volume: BIG,
            tag: Tag::ZERO,
            dataset_restrict: Address::ZERO,
            workerpool_restrict: Address::ZERO,
            requester_restrict: Address::ZERO,
        })
    }
    fn pool_at(&mut self, price: u64, volume: u64) -> Order {
        let dense = self.shape == Shape::Dense;
        let r = &mut self.rng;
        let tag = if dense {
            tag_bits((1 << (1 + r.next(7))) | (1 << (1 + r.next(7))) | (1 << (1 + r.next(7))))
        } else {
            Tag::ZERO
        };
        let requester_restrict = if dense && r.next(5) == 0 { address(3, r.next(REQUESTERS)) } else { Address::ZERO };
        let app_restrict = if dense && r.next(10) == 0 { address(1, r.next(APPS)) } else { Address::ZERO };
        Order::Workerpool(WorkerpoolOrder {
            hash: self.fresh(),
            workerpool: address(2, self.rng.next(50)),
            price: Nrlc(price),
            volume,
            tag,
            category: self.rng.next(CATEGORIES),
            trust: 0,
            app_restrict,
            dataset_restrict: Address::ZERO,
            requester_restrict,
            record: Default::default(),
        })
    }
    fn resting_pool(&mut self) -> Order {
        let lo = if self.shape == Shape::Dense { 900 } else { 1000 };
        let price = lo + self.rng.next(2000 - lo);
        self.pool_at(price, BIG)
    }
    fn request_at(&mut self, max_price: u64) -> Order {
        let dense = self.shape == Shape::Dense;
        let tag = if dense { tag_bits(1 << (1 + self.rng.next(7))) } else { Tag::ZERO };
        Order::Request(RequestOrder {
            hash: self.fresh(),
            app: address(1, self.rng.next(APPS)),
            app_max_price: Nrlc(100),
            dataset: Address::ZERO,
            dataset_max_price: Nrlc(0),
            workerpool: Address::ZERO,
            workerpool_max_price: Nrlc(max_price),
            requester: address(3, self.rng.next(REQUESTERS)),
            volume: 1,
            tag,
            category: self.rng.next(CATEGORIES),
            trust: 0,
            min_record: Default::default(),
        })
    }
    fn resting_request(&mut self) -> Order {
        let hi = if self.shape == Shape::Dense { 1100 } else { 1000 };
        let price = self.rng.next(hi);
        self.request_at(price)
    }
}

/// A book of about `n` resting orders (half asks, half bids, plus 10 app orders per app).
fn build(shape: Shape, n: usize) -> (Engine, Gen) {
    let mut engine = Engine::with_capacity(2 * n);
    let mut g = Gen::new(shape, 0x5eed ^ n as u64);
    let mut out = Vec::new();
    for app in 0..APPS {
        for _ in 0..10 {
            engine.apply(Command::Add(g.app(app)), &mut out);
        }
    }
    for i in 0..n {
        let o = if i % 2 == 0 { g.resting_pool() } else { g.resting_request() };
        engine.apply(Command::Add(o), &mut out);
        // Keep the build quiescent and small in memory: settle what matched.
        for e in out.drain(..) {
            if let Event::DealProposed(d) = e {
                engine.apply(Command::Confirm(d.id), &mut Vec::new());
            }
        }
    }
    (engine, g)
}

fn run_ops(engine: &mut Engine, ops: &[Command], out: &mut Vec<Event>) {
    for c in ops {
        out.clear();
        engine.apply(*c, out);
        black_box(&out);
    }
}

/// Settles the deals proposed by `events` (confirm), untimed.
fn settle(engine: &mut Engine, events: &[Event]) {
    let mut sink = Vec::new();
    for e in events {
        if let Event::DealProposed(d) = e {
            engine.apply(Command::Confirm(d.id), &mut sink);
        }
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("DRAGON_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

fn adds(g: &mut Gen, k: usize) -> Vec<Command> {
    (0..k)
        .map(|i| {
            let o = match i % 4 {
                0 | 1 => g.resting_request(),
                2 => g.resting_pool(),
                _ => {
                    let app = g.rng.next(APPS);
                    g.app(app)
                }
            };
            Command::Add(o)
        })
        .collect()
}

/// Adds, all resting (no match): requests below every ask, asks above every bid, app orders. In the dense book
/// some of them do cross and match; those are settled.
fn crossing_request(g: &mut Gen) -> Command {
    Command::Add(g.request_at(3_000))
}

fn bench_book(c: &mut Criterion, shape: Shape, n: usize) {
    let name = format!("{}/{n}", if shape == Shape::Sparse { "sparse" } else { "dense" });
    let (mut engine, mut g) = build(shape, n);
    let mut group = c.benchmark_group(&name);
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let chunk = 1_000usize;
    group.throughput(criterion::Throughput::Elements(chunk as u64));

    // add: `chunk` adds timed, then cancelled untimed.
    group.bench_function("add", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(64);
            for _ in 0..iters {
                let batch = adds(&mut g, chunk);
                let t = Instant::now();
                let mut all = Vec::new();
                for c in &batch {
                    out.clear();
                    engine.apply(*c, &mut out);
                    all.extend_from_slice(&out);
                }
                total += t.elapsed();
                settle(&mut engine, &all);
                let cancels: Vec<Command> = batch
                    .iter()
                    .filter_map(|c| if let Command::Add(o) = c { Some(Command::Cancel(o.hash())) } else { None })
                    .collect();
                run_ops(&mut engine, &cancels, &mut out);
            }
            total
        });
    });

    // cancel: `chunk` adds untimed, then their cancels timed.
    group.bench_function("cancel", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(64);
            for _ in 0..iters {
                let batch = adds(&mut g, chunk);
                let mut all = Vec::new();
                for c in &batch {
                    out.clear();
                    engine.apply(*c, &mut out);
                    all.extend_from_slice(&out);
                }
                settle(&mut engine, &all);
                let cancels: Vec<Command> = batch
                    .iter()
                    .filter_map(|c| if let Command::Add(o) = c { Some(Command::Cancel(o.hash())) } else { None })
                    .collect();
                let t = Instant::now();
                run_ops(&mut engine, &cancels, &mut out);
                total += t.elapsed();
            }
            total
        });
    });

    // match: `chunk` requests crossing the whole book, each filled by one deal (timed); the deals are confirmed
    // untimed, so the book keeps its size.
    group.bench_function("match", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(8);
            let mut all = Vec::with_capacity(chunk);
            for _ in 0..iters {
                let batch: Vec<Command> = (0..chunk).map(|_| crossing_request(&mut g)).collect();
                all.clear();
                let t = Instant::now();
                for c in &batch {
                    out.clear();
                    engine.apply(*c, &mut out);
                    all.extend_from_slice(&out);
                }
                total += t.elapsed();
                settle(&mut engine, &all);
            }
            total
        });
    });
    group.finish();
}

/// Times single operations with `Instant` and prints mean, p50, p99, p99.9, max and the rate they imply.
fn latency_table(shape: Shape, n: usize) {
    let (mut engine, mut g) = build(shape, n);
    let label = if shape == Shape::Sparse { "sparse" } else { "dense" };
    let samples: usize = std::env::var("DRAGON_BENCH_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut out = Vec::with_capacity(64);
    let kinds = ["add req", "add pool", "add app", "cancel", "match", "mixed"];
    let only: Option<usize> = std::env::var("DRAGON_BENCH_OP").ok().and_then(|v| v.parse().ok());
    for (kind, what) in kinds.iter().enumerate() {
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        let mut times = Vec::with_capacity(samples);
        let mut pending: Vec<OrderHash> = Vec::new();
        let scanned_before = engine.stats().requests_scanned;
        for i in 0..samples {
            let kind = if kind == 5 { [0, 1, 2, 3, 4, 4][i % 6] } else { kind };
            let cmd = match kind {
                0 => Command::Add(g.resting_request()),
                1 => Command::Add(g.resting_pool()),
                2 => {
                    let app = g.rng.next(APPS);
                    Command::Add(g.app(app))
                }
                3 => {
                    // Cancel a resting order added earlier (untimed add).
                    let h = match pending.pop() {
                        Some(h) => h,
                        None => {
                            let o = g.resting_request();
                            out.clear();
                            engine.apply(Command::Add(o), &mut out);
                            let ev = out.clone();
                            settle(&mut engine, &ev);
                            o.hash()
                        }
                    };
                    Command::Cancel(h)
                }
                _ => crossing_request(&mut g),
            };
            out.clear();
            let t = Instant::now();
            engine.apply(cmd, &mut out);
            let dt = t.elapsed();
            times.push(dt.as_nanos() as u64);
            let ev = out.clone();
            settle(&mut engine, &ev);
            // Keep the book's size: resting adds are cancelled later (by the mixed run) or now.
            if let Command::Add(o) = cmd
                && kind < 3
            {
                if what == &"mixed" {
                    pending.push(o.hash());
                } else {
                    engine.apply(Command::Cancel(o.hash()), &mut Vec::new());
                }
            }
        }
        let scanned = engine.stats().requests_scanned - scanned_before;
        times.sort_unstable();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
        let over = times.iter().filter(|t| **t > 10_000).count();
        println!(
            "| {label:6} | {n:>9} | {what:8} | {:>7.0} | {:>6} | {:>6} | {:>8} | {:>9} | {:>5} | {:>9.0} | {:>5.1} |",
            mean,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            times[times.len() - 1],
            over,
            1e9 / mean,
            scanned as f64 / samples as f64,
        );
    }
}

/// Throughput per kind of operation: batches of 1,000 commands of one kind applied back to back and timed as a
/// batch (as the engine's thread drains its queue), so that one command's cache misses may overlap the next
/// one's work. Resting adds are cancelled (and matches settled) untimed after each batch, so the book keeps its
/// size. Prints the median and the slowest tenth of the batches, in ns per command.
fn batch_table(shape: Shape, n: usize) {
    let (mut engine, mut g) = build(shape, n);
    let label = if shape == Shape::Sparse { "sparse" } else { "dense" };
    let batches: usize = std::env::var("DRAGON_BENCH_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let chunk = 1_000usize;
    let kinds = ["add req", "add pool", "add app", "cancel", "match", "mixed"];
    let mut out = Vec::with_capacity(64);
    for (kind, what) in kinds.iter().enumerate() {
        let mut per_op = Vec::with_capacity(batches);
        for _ in 0..batches {
            let make = |g: &mut Gen, i: usize| match if kind == 5 { [0, 1, 2, 4][i % 4] } else { kind } {
                0 | 3 => Command::Add(g.resting_request()),
                1 => Command::Add(g.resting_pool()),
                2 => {
                    let app = g.rng.next(APPS);
                    Command::Add(g.app(app))
                }
                _ => crossing_request(g),
            };
            let batch: Vec<Command> = (0..chunk).map(|i| make(&mut g, i)).collect();
            let mut events = Vec::new();
            let timed: Vec<Command> = if kind == 3 {
                // Cancels: the batch's requests are added untimed first.
                for c in &batch {
                    out.clear();
                    engine.apply(*c, &mut out);
                    events.extend_from_slice(&out);
                }
                settle(&mut engine, &events);
                events.clear();
                batch
                    .iter()
                    .filter_map(|c| if let Command::Add(o) = c { Some(Command::Cancel(o.hash())) } else { None })
                    .collect()
            } else {
                batch.clone()
            };
            let t = Instant::now();
            for c in &timed {
                out.clear();
                engine.apply(*c, &mut out);
                events.extend_from_slice(&out);
            }
            per_op.push(t.elapsed().as_nanos() as f64 / chunk as f64);
            settle(&mut engine, &events);
            if kind != 3 {
                for c in &batch {
                    if let Command::Add(o) = c {
                        engine.apply(Command::Cancel(o.hash()), &mut Vec::new());
                    }
                }
            }
        }
        per_op.sort_by(f64::total_cmp);
        let p50 = per_op[per_op.len() / 2];
        let p90 = per_op[(per_op.len() * 9 / 10).min(per_op.len() - 1)];
        println!("| {label:6} | {n:>9} | {what:8} | {p50:>9.0} | {p90:>9.0} | {:>9.0} |", 1e9 / p50);
    }
}

/// What keeps the resting orders of a blocked scenario from the new order, regardless of price.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Blocked {
    /// Requests need a tag bit no workerpool order has; new: a workerpool order.
    Tag,
    /// Requests need more trust than any workerpool order gives; new: a workerpool order.
    Trust,
    /// Requests restrict the workerpool to one that has no order; new: a workerpool order.
    PoolRestrict,
    /// Requests name an app that has no order; new: a workerpool order.
    NoAppOrder,
    /// Workerpool orders restrict the requester to someone else; new: a request.
    RequesterRestrict,
    /// Workerpool orders restrict the app to another one; new: a request.
    AppRestrict,
    /// Workerpool orders give less trust than the request needs; new: a request.
    AskTrust,
}

impl Blocked {
    const ALL: [Blocked; 7] = [
        Blocked::Tag,
        Blocked::Trust,
        Blocked::PoolRestrict,
        Blocked::NoAppOrder,
        Blocked::RequesterRestrict,
        Blocked::AppRestrict,
        Blocked::AskTrust,
    ];
    fn name(self) -> &'static str {
        match self {
            Blocked::Tag => "bids: tag",
            Blocked::Trust => "bids: trust",
            Blocked::PoolRestrict => "bids: pool restr.",
            Blocked::NoAppOrder => "bids: no app order",
            Blocked::RequesterRestrict => "asks: requester restr.",
            Blocked::AppRestrict => "asks: app restr.",
            Blocked::AskTrust => "asks: trust",
        }
    }
    fn new_order_is_pool(self) -> bool {
        matches!(self, Blocked::Tag | Blocked::Trust | Blocked::PoolRestrict | Blocked::NoAppOrder)
    }
}

/// The worst case of the incremental matching: `n` orders of category 0 that cross the other side on price but are
/// kept apart from it by one non-price rule, then new orders of the other side that cross them all. Before the
/// books were indexed by what blocks them, each new order walked all `n`. Prints the latency of such an add.
fn blocked_table(n: usize, blocked: Blocked) {
    let mut engine = Engine::with_capacity(2 * n);
    let mut g = Gen::new(Shape::Sparse, 7);
    let mut out = Vec::new();
    engine.apply(Command::Add(g.app(0)), &mut out);
    let pool = |g: &mut Gen| {
        let mut o = g.pool_at(500, 1);
        if let Order::Workerpool(w) = &mut o {
            w.category = 0;
        }
        o
    };
    let request = |g: &mut Gen| {
        let mut o = g.request_at(1_000);
        if let Order::Request(r) = &mut o {
            r.category = 0;
            r.app = address(1, 0);
        }
        o
    };
    if blocked.new_order_is_pool() {
        for _ in 0..20 {
            let o = pool(&mut g);
            engine.apply(Command::Add(o), &mut out);
        }
    }
    for _ in 0..n {
        let o = if blocked.new_order_is_pool() {
            let mut o = request(&mut g);
            if let Order::Request(r) = &mut o {
                match blocked {
                    Blocked::Tag => r.tag = tag_bits(0b10),
                    Blocked::Trust => r.trust = 5,
                    Blocked::PoolRestrict => r.workerpool = address(2, 999_999),
                    _ => r.app = address(1, 1 + r.requester.0[19] as u64 % 50),
                }
            }
            o
        } else {
            let mut o = pool(&mut g);
            if let Order::Workerpool(w) = &mut o {
                match blocked {
                    Blocked::RequesterRestrict => w.requester_restrict = address(3, 999_999),
                    Blocked::AppRestrict => w.app_restrict = address(1, 77),
                    _ => w.trust = 0,
                }
            }
            o
        };
        engine.apply(Command::Add(o), &mut out);
    }
    out.clear();
    let samples = if n >= 1_000_000 { 50 } else { 500 };
    let mut times = Vec::with_capacity(samples);
    let scanned_before = engine.stats().requests_scanned;
    for _ in 0..samples {
        let o = if blocked.new_order_is_pool() {
            pool(&mut g)
        } else {
            let mut o = request(&mut g);
            if let (Order::Request(r), Blocked::AskTrust) = (&mut o, blocked) {
                r.trust = 5;
            }
            o
        };
        let t = Instant::now();
        engine.apply(Command::Add(o), &mut out);
        times.push(t.elapsed().as_nanos() as u64);
        assert!(!out.iter().any(|e| matches!(e, Event::DealProposed(_))), "the scenario must not match");
        engine.apply(Command::Cancel(o.hash()), &mut out);
        out.clear();
    }
    let scanned = engine.stats().requests_scanned - scanned_before;
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "| {:22} | {n:>9} | {:8} | {:>7.0} | {:>6} | {:>6} | {:>9} | {:>9.0} | {:>7.1} |",
        blocked.name(),
        if blocked.new_order_is_pool() { "add pool" } else { "add req" },
        times.iter().sum::<u64>() as f64 / samples as f64,
        pct(0.5),
        pct(0.99),
        times[samples - 1],
        1e9 / (times.iter().sum::<u64>() as f64 / samples as f64),
        scanned as f64 / samples as f64,
    );
}

/// What parking costs: `n` resting requests of one app that has no order; the app's first order puts them all back
/// in the bid groups, its cancel parks them again. Both walk the `n` requests: the cost that a cap on requests per
/// app bounds. Prints the latency of each.
fn parking_table(n: usize) {
    let mut engine = Engine::with_capacity(2 * n);
    let mut g = Gen::new(Shape::Sparse, 11);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut o = g.request_at(1_000);
        if let Order::Request(r) = &mut o {
            r.app = address(1, 0);
        }
        engine.apply(Command::Add(o), &mut out);
    }
    let samples = if n >= 1_000_000 { 10 } else { 50 };
    let (mut arrive, mut leave) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let o = g.app(0);
        let t = Instant::now();
        engine.apply(Command::Add(o), &mut out);
        arrive.push(t.elapsed().as_nanos() as u64);
        let t = Instant::now();
        engine.apply(Command::Cancel(o.hash()), &mut out);
        leave.push(t.elapsed().as_nanos() as u64);
        assert!(!out.iter().any(|e| matches!(e, Event::DealProposed(_))), "no workerpool order: no deal");
        out.clear();
    }
    for (what, times) in [("first app order", &mut arrive), ("its cancel", &mut leave)] {
        times.sort_unstable();
        println!(
            "| parking | {n:>9} | {what:15} | {:>9} | {:>9} | {:>6.0} ns per request |",
            times[times.len() / 2],
            times[times.len() - 1],
            times[times.len() / 2] as f64 / n as f64,
        );
    }
}

/// End to end through the pipeline: `producers` threads each submit `per` resting adds then cancel them; a
/// consumer thread drains the event queue. Reports commands per second until every shard is idle.
fn pipeline_throughput(shards: usize, producers: u64, per: u64) {
    use dragon_matching::pipeline::{Input, Pipeline, PipelineConfig, QueueSink, Scope};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let config = PipelineConfig {
        shards,
        queue_capacity: 65_536,
        publish_every: 4_096,
        depth_levels: 10,
        listed_orders: 10,
        capacity: (2 * producers * per) as usize / shards,
        journal: false,
    };
    let sink = Arc::new(QueueSink::new());
    let pipeline = Pipeline::start(config, Arc::clone(&sink));
    let done = Arc::new(AtomicBool::new(false));
    let drainer = {
        let (sink, done) = (Arc::clone(&sink), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                match sink.pop() {
                    Some(_) => n += 1,
                    None => std::thread::yield_now(),
                }
            }
            while sink.pop().is_some() {
                n += 1;
            }
            n
        })
    };
    // Orders are generated before the clock starts.
    let inputs: Vec<Vec<Input>> = (0..producers)
        .map(|p| {
            let mut g = Gen::new(Shape::Sparse, 100 + p);
            g.next = (p + 1) << 40;
            let orders: Vec<Order> =
                (0..per).map(|i| if i % 2 == 0 { g.resting_request() } else { g.resting_pool() }).collect();
            let cancels = orders.iter().map(|o| {
                let category = match o {
                    Order::Request(r) => r.category,
                    Order::Workerpool(w) => w.category,
                    _ => 0,
                };
                Input::Cancel { hash: o.hash(), scope: Scope::Category(category) }
            });
            orders.iter().map(|o| Input::Add(*o)).chain(cancels).collect()
        })
        .collect();
    let t = Instant::now();
    let threads: Vec<_> = inputs
        .into_iter()
        .map(|batch| {
            let sub = pipeline.submitter();
            std::thread::spawn(move || {
                for i in batch {
                    sub.submit(i).expect("the bench's writers do not panic");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("producer");
    }
    let sub = pipeline.submitter();
    while !sub.idle() {
        std::thread::yield_now();
    }
    let elapsed = t.elapsed();
    done.store(true, Ordering::Relaxed);
    let events = drainer.join().expect("drainer");
    pipeline.shutdown();
    let commands = 2 * producers * per;
    println!(
        "| pipeline | {shards} shard(s), {producers} producers | {commands} commands | {:.0} ms | {:.0} commands/s | {events} events |",
        elapsed.as_secs_f64() * 1e3,
        commands as f64 / elapsed.as_secs_f64()
    );
}

/// The books the tables run on: both shapes (or `DRAGON_BENCH_SHAPE`'s), each at every size.
fn tabled_books() -> Vec<(Shape, usize)> {
    let only = std::env::var("DRAGON_BENCH_SHAPE").ok();
    [(Shape::Sparse, "sparse"), (Shape::Dense, "dense")]
        .into_iter()
        .filter(|(_, name)| only.as_deref().is_none_or(|s| s == *name))
        .flat_map(|(shape, _)| sizes().into_iter().map(move |n| (shape, n)))
        .collect()
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut c = Criterion::default().configure_from_args();
    if std::env::var_os("DRAGON_BENCH_NO_TABLE").is_none() && !std::env::args().any(|a| a == "--test" || a == "--list")
    {
        println!("per-operation latency, one operation timed at a time (ns; Instant overhead ~20-30 ns included)");
        println!(
            "| book   |    orders | op       | mean ns | p50 ns | p99 ns | p99.9 ns |    max ns | >10us | ops/s     | req scanned/op |"
        );
        println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (shape, n) in tabled_books() {
            latency_table(shape, n);
        }
        if std::env::var_os("DRAGON_BENCH_NO_BATCH").is_none() {
            println!();
            println!("throughput per kind: batches of 1,000 commands of one kind, timed per batch (ns per command)");
            println!("| book   |    orders | op       | p50 batch | p90 batch | ops/s (p50) |");
            println!("|---|---:|---|---:|---:|---:|");
            for (shape, n) in tabled_books() {
                batch_table(shape, n);
            }
        }
        println!();
        println!("blocked orders: n orders of one category cross the new order on price but one rule keeps them apart");
        println!("| blocked by | n | new | mean ns | p50 ns | p99 ns | max ns | ops/s | req scanned/op |");
        println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
        let only: Option<usize> = std::env::var("DRAGON_BENCH_BLOCKED").ok().and_then(|v| v.parse().ok());
        for (k, blocked) in Blocked::ALL.into_iter().enumerate() {
            if only.is_none_or(|o| o == k) {
                for n in sizes() {
                    blocked_table(n, blocked);
                }
            }
        }
        if only.is_none_or(|o| o == Blocked::ALL.len()) {
            println!();
            println!("| parking | requests of the app | command | p50 ns | max ns | p50 per request |");
            println!("|---|---:|---|---:|---:|---:|");
            for n in sizes() {
                parking_table(n);
            }
        }
        if std::env::var_os("DRAGON_BENCH_NO_PIPELINE").is_none() {
            println!();
            println!("| pipeline | setup | commands | wall time | throughput | events |");
            println!("|---|---|---:|---:|---:|---:|");
            pipeline_throughput(1, 1, 500_000);
            pipeline_throughput(1, 2, 250_000);
            pipeline_throughput(2, 2, 250_000);
        }
    }
    for shape in [Shape::Sparse, Shape::Dense] {
        for n in sizes() {
            let name = format!("{}/{n}", if shape == Shape::Sparse { "sparse" } else { "dense" });
            if wanted(&name) || filter.iter().any(|f| ["add", "cancel", "match"].iter().any(|x| f.contains(x))) {
                bench_book(&mut c, shape, n);
            }
        }
    }
    c.final_summary();
}
