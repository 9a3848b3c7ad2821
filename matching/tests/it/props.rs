//! Property tests on random command streams over small domains (2 apps, 2 datasets, 2 workerpools, 2
//! requesters, 3 tag bits, prices 0-3, volumes 0-3, 2 categories), so that matches, conflicts and restrictions
//! are frequent.
//!
//! Properties, checked after every command:
//! - the engine's events equal those of the reference implementation (`reference.rs`);
//! - every proposed deal passes the independent predicate `support::poco_ok`, its volume is the smallest
//!   remaining volume of its orders, and it respects priority: no better request could still match, no better
//!   workerpool order, no better app order for that workerpool, no better dataset order for those two;
//! - no over-fill: per order, proposed minus released volume never exceeds its volume, and the remaining volume
//!   tracked from the events alone never goes below zero and equals the engine's;
//! - no compatible combination remains among resting orders;
//! - the same stream always gives the same events (a second engine replays it).

use std::collections::HashMap;

use dragon_matching::{
    Address, AppOrder, Command, DatasetOrder, Deal, Engine, Event, Level, MinTrackRecord, Nrlc, Order, OrderHash,
    ProposalId, RequestOrder, TrackRecord, WorkerpoolOrder,
};
use proptest::prelude::*;

use crate::reference::Reference;
use crate::support::{addr, h, poco_ok};

#[derive(Clone, Debug)]
pub enum Op {
    App {
        app: u8,
        price: u64,
        volume: u64,
        tag: u8,
        rd: u8,
        rw: u8,
        rr: u8,
    },
    Dataset {
        dataset: u8,
        price: u64,
        volume: u64,
        tag: u8,
        ra: u8,
        rw: u8,
        rr: u8,
    },
    Pool {
        pool: u8,
        price: u64,
        volume: u64,
        tag: u8,
        category: u64,
        trust: u64,
        ra: u8,
        rd: u8,
        rr: u8,
    },
    Request {
        app: u8,
        dataset: u8,
        pool: u8,
        requester: u8,
        prices: (u64, u64, u64),
        volume: u64,
        tag: u8,
        category: u64,
        trust: u64,
        /// Index into [`MINS`]: the request's minimum track record.
        min: usize,
    },
    /// A workerpool's track record: index into [`RECORDS`].
    Record {
        pool: u8,
        record: usize,
    },
    Dup(usize),
    Cancel(usize),
    Lower(usize, u64),
    Confirm(usize),
    Release(usize),
    /// A release with caps per member (app, dataset, workerpool, request): `None` = no cap.
    ReleaseCapped(usize, [Option<u64>; 4]),
}

/// Minimum track records a request may ask (the first is none), and records a workerpool may get: each
/// requirement is met by some records and not others, at the boundary too (3 of 4 is exactly 75%).
const MINS: [MinTrackRecord; 4] = [
    MinTrackRecord::NONE,
    MinTrackRecord { tasks: 2, completed_bp: 7_500 },
    MinTrackRecord { tasks: 1, completed_bp: 10_000 },
    MinTrackRecord { tasks: 4, completed_bp: 0 },
];
const RECORDS: [TrackRecord; 5] = [
    TrackRecord { finished: 0, completed: 0 },
    TrackRecord { finished: 4, completed: 3 },
    TrackRecord { finished: 1, completed: 1 },
    TrackRecord { finished: 5, completed: 2 },
    TrackRecord { finished: 2, completed: 2 },
];

fn min() -> impl Strategy<Value = usize> {
    prop_oneof![8 => Just(0usize), 3 => 1usize..MINS.len()]
}

fn record_op(pools: &'static [u8]) -> impl Strategy<Value = Op> {
    (proptest::sample::select(pools), 0usize..RECORDS.len()).prop_map(|(pool, record)| Op::Record { pool, record })
}

fn caps() -> impl Strategy<Value = [Option<u64>; 4]> {
    let cap = || proptest::option::weighted(0.5, 0u64..6);
    (cap(), cap(), cap(), cap()).prop_map(|(a, b, c, d)| [a, b, c, d])
}

/// Tag bits 0-2 are the last byte's bits 0-2 (bit 0 = TEE), as in `support::tag`; bits 3-7 land in other bytes
/// (the engine folds and groups tags by all 32 bytes, so the blocking streams use them).
fn wide_tag(t: u8) -> dragon_matching::Tag {
    let mut b = [0u8; 32];
    b[31] = t & 0b111;
    for (bit, byte, mask) in [(3, 31, 0x20), (4, 16, 0x01), (5, 0, 0x80), (6, 8, 0x08), (7, 24, 0x40)] {
        if t & (1 << bit) != 0 {
            b[byte] |= mask;
        }
    }
    dragon_matching::Tag(b)
}

// Address plan: apps 1-2, datasets 3-4, workerpools 5-6, requesters 7-8; the blocking streams add app 9,
// dataset 10, workerpool 11 and requester 12, which often have no order.
fn restrict(a: u8, b: u8) -> impl Strategy<Value = u8> {
    prop_oneof![10 => Just(0u8), 1 => Just(a), 1 => Just(b)]
}
fn vol() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0u64), 8 => 1u64..4]
}
fn small_tag() -> impl Strategy<Value = u8> {
    prop_oneof![6 => Just(0u8), 1 => 0u8..8]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..=2, 0u64..3, vol(), small_tag(), restrict(3, 4), restrict(5, 6), restrict(7, 8))
            .prop_map(|(app, price, volume, tag, rd, rw, rr)| Op::App { app, price, volume, tag, rd, rw, rr }),
        2 => (3u8..=4, 0u64..3, vol(), small_tag(), restrict(1, 2), restrict(5, 6), restrict(7, 8)).prop_map(
            |(dataset, price, volume, tag, ra, rw, rr)| Op::Dataset { dataset, price, volume, tag, ra, rw, rr }
        ),
        4 => (
            5u8..=6,
            0u64..3,
            vol(),
            prop_oneof![1 => 0u8..8, 2 => Just(7u8)],
            0u64..2,
            0u64..3,
            (restrict(1, 2), restrict(3, 4), restrict(7, 8))
        )
            .prop_map(|(pool, price, volume, tag, category, trust, (ra, rd, rr))| Op::Pool {
                pool,
                price,
                volume,
                tag,
                category,
                trust,
                ra,
                rd,
                rr
            }),
        5 => (
            1u8..=2,
            prop_oneof![3 => Just(0u8), 1 => Just(3u8), 1 => Just(4u8)],
            restrict(5, 6),
            7u8..=8,
            (1u64..4, 1u64..4, 0u64..4),
            vol(),
            small_tag(),
            0u64..2,
            0u64..2
        )
            .prop_flat_map(|x| (Just(x), min()))
            .prop_map(|((app, dataset, pool, requester, prices, volume, tag, category, trust), min)| Op::Request {
                app,
                dataset,
                pool,
                requester,
                prices,
                volume,
                tag,
                category,
                trust,
                min
            }),
        2 => record_op(&[5, 6]),
        1 => any::<usize>().prop_map(Op::Dup),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (any::<usize>(), 0u64..4).prop_map(|(i, v)| Op::Lower(i, v)),
        2 => any::<usize>().prop_map(Op::Confirm),
        2 => any::<usize>().prop_map(Op::Release),
        1 => (any::<usize>(), caps()).prop_map(|(i, c)| Op::ReleaseCapped(i, c)),
    ]
}

fn restrict3(a: u8, b: u8, c: u8) -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 1 => Just(a), 1 => Just(b), 1 => Just(c)]
}

/// Streams where most orders cross on price and are kept apart by what the engine indexes: many tags (8 bits over
/// 5 bytes), restrictions on every side, trust levels 0-4, and requests for apps and datasets that often have no
/// order (app 9, dataset 10) or lose their only one (app and dataset orders of volume 1-2), then get one again.
pub fn blocking_op() -> impl Strategy<Value = Op> {
    let tag = || prop_oneof![3 => Just(0u8), 2 => any::<u8>().prop_map(|t| t & !1), 1 => any::<u8>()];
    prop_oneof![
        3 => (prop_oneof![Just(1u8), Just(2), Just(9)], 0u64..2, 1u64..3, tag(), restrict(3, 10), restrict(5, 11),
              restrict(7, 12))
            .prop_map(|(app, price, volume, tag, rd, rw, rr)| Op::App { app, price, volume, tag, rd, rw, rr }),
        2 => (prop_oneof![Just(3u8), Just(10)], 0u64..2, 1u64..3, tag(), restrict(1, 9), restrict(5, 11),
              restrict(7, 12))
            .prop_map(|(dataset, price, volume, tag, ra, rw, rr)| Op::Dataset { dataset, price, volume, tag, ra, rw, rr }),
        5 => (
            prop_oneof![Just(5u8), Just(6), Just(11)],
            0u64..3,
            1u64..4,
            prop_oneof![1 => any::<u8>(), 1 => Just(0xffu8), 1 => Just(0u8)],
            0u64..2,
            0u64..5,
            (restrict3(1, 2, 9), restrict(3, 10), restrict3(7, 8, 12))
        )
            .prop_map(|(pool, price, volume, tag, category, trust, (ra, rd, rr))| Op::Pool {
                pool,
                price,
                volume,
                tag,
                category,
                trust,
                ra,
                rd,
                rr
            }),
        7 => (
            prop_oneof![Just(1u8), Just(2), Just(9)],
            prop_oneof![3 => Just(0u8), 1 => Just(3u8), 1 => Just(10u8)],
            restrict3(5, 6, 11),
            prop_oneof![Just(7u8), Just(8), Just(12)],
            (1u64..3, 1u64..3, 0u64..4),
            1u64..3,
            tag(),
            0u64..2,
            0u64..5
        )
            .prop_flat_map(|x| (Just(x), min()))
            .prop_map(|((app, dataset, pool, requester, prices, volume, tag, category, trust), min)| Op::Request {
                app,
                dataset,
                pool,
                requester,
                prices,
                volume,
                tag,
                category,
                trust,
                min
            }),
        2 => record_op(&[5, 6, 11]),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (any::<usize>(), 0u64..3).prop_map(|(i, v)| Op::Lower(i, v)),
        2 => any::<usize>().prop_map(Op::Confirm),
        2 => any::<usize>().prop_map(Op::Release),
        1 => (any::<usize>(), caps()).prop_map(|(i, c)| Op::ReleaseCapped(i, c)),
    ]
}

/// Turns ops into commands, using what happened so far (added orders, proposals made).
#[derive(Default)]
pub struct Driver {
    next_hash: u64,
    added: Vec<Order>,
    proposals: u64,
}

impl Driver {
    pub fn command(&mut self, op: &Op) -> Command {
        let mut fresh = || {
            self.next_hash += 1;
            h(self.next_hash)
        };
        let pick = |added: &Vec<Order>, i: usize| {
            if added.is_empty() { h(u64::MAX) } else { added[i % added.len()].hash() }
        };
        let cmd = match *op {
            Op::App { app, price, volume, tag: t, rd, rw, rr } => Command::Add(Order::App(AppOrder {
                hash: fresh(),
                app: addr(app),
                price: Nrlc(price),
                volume,
                tag: wide_tag(t),
                dataset_restrict: addr(rd),
                workerpool_restrict: addr(rw),
                requester_restrict: addr(rr),
            })),
            Op::Dataset { dataset, price, volume, tag: t, ra, rw, rr } => Command::Add(Order::Dataset(DatasetOrder {
                hash: fresh(),
                dataset: addr(dataset),
                price: Nrlc(price),
                volume,
                tag: wide_tag(t),
                app_restrict: addr(ra),
                workerpool_restrict: addr(rw),
                requester_restrict: addr(rr),
            })),
            Op::Pool { pool, price, volume, tag: t, category, trust, ra, rd, rr } => {
                Command::Add(Order::Workerpool(WorkerpoolOrder {
                    hash: fresh(),
                    workerpool: addr(pool),
                    price: Nrlc(price),
                    volume,
                    tag: wide_tag(t),
                    category,
                    trust,
                    app_restrict: addr(ra),
                    dataset_restrict: addr(rd),
                    requester_restrict: addr(rr),
                    record: TrackRecord::default(),
                }))
            }
            Op::Request { app, dataset, pool, requester, prices, volume, tag: t, category, trust, min } => {
                Command::Add(Order::Request(RequestOrder {
                    hash: fresh(),
                    app: addr(app),
                    app_max_price: Nrlc(prices.0),
                    dataset: addr(dataset),
                    dataset_max_price: Nrlc(prices.1),
                    workerpool: addr(pool),
                    workerpool_max_price: Nrlc(prices.2),
                    requester: addr(requester),
                    volume,
                    tag: wide_tag(t),
                    category,
                    trust,
                    min_record: MINS[min],
                }))
            }
            Op::Record { pool, record } => Command::TrackRecord { workerpool: addr(pool), record: RECORDS[record] },
            Op::Dup(i) => {
                if self.added.is_empty() {
                    Command::Cancel(h(u64::MAX))
                } else {
                    Command::Add(self.added[i % self.added.len()])
                }
            }
            Op::Cancel(i) => Command::Cancel(pick(&self.added, i)),
            Op::Lower(i, v) => Command::Lower { hash: pick(&self.added, i), remaining: v },
            Op::Confirm(i) => Command::Confirm(ProposalId(i as u64 % (self.proposals + 1) + 1)),
            Op::Release(i) => Command::Release(ProposalId(i as u64 % (self.proposals + 1) + 1)),
            Op::ReleaseCapped(i, caps) => Command::ReleaseCapped {
                id: ProposalId(i as u64 % (self.proposals + 1) + 1),
                caps: caps.map(|c| c.unwrap_or(u64::MAX)),
            },
        };
        if let Command::Add(o) = cmd {
            self.added.push(o);
        }
        cmd
    }

    pub fn saw(&mut self, events: &[Event]) {
        self.proposals += events.iter().filter(|e| matches!(e, Event::DealProposed(_))).count() as u64;
    }
}

#[derive(Clone, Debug)]
struct Obs {
    order: Order,
    seq: u64,
    volume: u64,
    remaining: u64,
    reserved: u64,
    cancelled: bool,
    /// Proposed minus released volume.
    net: u64,
}

impl Obs {
    fn live(&self) -> bool {
        !self.cancelled && self.remaining > 0
    }
}

/// The book as seen from the commands and the engine's events alone.
#[derive(Default)]
struct Observer {
    orders: HashMap<OrderHash, Obs>,
    proposals: HashMap<ProposalId, Deal>,
    next_seq: u64,
    records: HashMap<Address, TrackRecord>,
}

fn members(d: &Deal) -> Vec<OrderHash> {
    [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten().collect()
}

impl Observer {
    fn forget_dead(&mut self, hash: &OrderHash) {
        if let Some(o) = self.orders.get(hash)
            && (o.remaining == 0 || o.cancelled)
            && o.reserved == 0
        {
            self.orders.remove(hash);
        }
    }

    fn live<T>(&self, f: impl Fn(&Order) -> Option<T>) -> Vec<(u64, u64, T)> {
        // (price key, seq, order)
        let mut v: Vec<(u64, u64, T)> = self
            .orders
            .values()
            .filter(|o| o.live())
            .filter_map(|o| {
                let price = match o.order {
                    Order::App(a) => a.price.0,
                    Order::Dataset(d) => d.price.0,
                    Order::Workerpool(w) => w.price.0,
                    Order::Request(r) => u64::MAX - r.workerpool_max_price.0,
                };
                f(&o.order).map(|t| (price, o.seq, t))
            })
            .collect();
        v.sort_by_key(|x| (x.0, x.1));
        v
    }

    fn apps(&self) -> Vec<(u64, u64, AppOrder)> {
        self.live(|o| if let Order::App(a) = o { Some(*a) } else { None })
    }
    fn datasets(&self) -> Vec<(u64, u64, DatasetOrder)> {
        self.live(|o| if let Order::Dataset(a) = o { Some(*a) } else { None })
    }
    fn pools(&self) -> Vec<(u64, u64, WorkerpoolOrder)> {
        self.live(|o| if let Order::Workerpool(a) = o { Some(*a) } else { None })
    }
    fn requests(&self) -> Vec<(u64, u64, RequestOrder)> {
        self.live(|o| if let Order::Request(a) = o { Some(*a) } else { None })
    }

    /// Every compatible (workerpool, app, dataset) for `r` among live orders, with their priority keys.
    #[allow(clippy::type_complexity)]
    fn combinations(&self, r: &RequestOrder) -> Vec<((u64, u64), (u64, u64), Option<(u64, u64)>)> {
        let mut out = Vec::new();
        let datasets = self.datasets();
        for (wp, ws, w) in self.pools() {
            for (ap, as_, a) in self.apps() {
                if poco_ok(&a, None, &w, r) {
                    out.push(((wp, ws), (ap, as_), None));
                }
                for (dp, ds, d) in &datasets {
                    if poco_ok(&a, Some(d), &w, r) {
                        out.push(((wp, ws), (ap, as_), Some((*dp, *ds))));
                    }
                }
            }
        }
        out
    }

    fn key(&self, h: &OrderHash) -> (u64, u64) {
        let o = &self.orders[h];
        let price = match o.order {
            Order::App(a) => a.price.0,
            Order::Dataset(d) => d.price.0,
            Order::Workerpool(w) => w.price.0,
            Order::Request(r) => u64::MAX - r.workerpool_max_price.0,
        };
        (price, o.seq)
    }

    /// Checks a deal against the state just before it, then applies it.
    fn deal(&mut self, d: &Deal) {
        let get = |h: &OrderHash| self.orders.get(h).unwrap_or_else(|| panic!("deal names unknown order {h}"));
        let (Order::App(a), Order::Workerpool(w), Order::Request(r)) =
            (get(&d.app).order, get(&d.workerpool).order, get(&d.request).order)
        else {
            panic!("deal names orders of the wrong kinds: {d:?}");
        };
        let ds = d.dataset.map(|h| match get(&h).order {
            Order::Dataset(x) => x,
            o => panic!("dataset slot holds {o:?}"),
        });
        assert!(poco_ok(&a, ds.as_ref(), &w, &r), "deal fails the PoCo predicate: {d:?}");
        for m in members(d) {
            assert!(get(&m).live(), "deal uses an order that is not resting: {d:?}");
        }
        let min = members(d).iter().map(|m| get(m).remaining).min().expect("orders");
        assert_eq!(d.volume, min, "deal volume is the smallest remaining volume");
        assert_eq!((d.app_price, d.workerpool_price, d.category), (a.price, w.price, r.category));
        assert_eq!(d.dataset_price, ds.map_or(Nrlc(0), |x| x.price));

        // Priority.
        let rkey = self.key(&d.request);
        for (p, s, other) in self.requests() {
            if (p, s) < rkey {
                assert!(self.combinations(&other).is_empty(), "a better request {:?} could still match", other.hash);
            }
        }
        let combos = self.combinations(&r);
        let (wk, ak) = (self.key(&d.workerpool), self.key(&d.app));
        let dk = d.dataset.map(|h| self.key(&h));
        let best = combos.iter().min().expect("the deal itself is a combination");
        assert_eq!(*best, (wk, ak, dk), "not the first combination in priority order");

        for m in members(d) {
            let o = self.orders.get_mut(&m).expect("member");
            o.remaining -= d.volume;
            o.reserved += d.volume;
            o.net += d.volume;
            assert!(o.net <= o.volume, "over-fill of {m}");
        }
        self.proposals.insert(d.id, *d);
    }

    fn apply(&mut self, cmd: &Command, events: &[Event]) {
        let rejected = events.iter().any(|e| matches!(e, Event::Rejected { .. }));
        if rejected {
            assert_eq!(events.len(), 1, "a rejection comes alone: {events:?}");
            return;
        }
        match *cmd {
            Command::Add(mut order) => {
                if let Order::Workerpool(w) = &mut order {
                    w.record = self.records.get(&w.workerpool).copied().unwrap_or_default();
                }
                self.orders.insert(
                    order.hash(),
                    Obs {
                        order,
                        seq: self.next_seq,
                        volume: order.volume(),
                        remaining: order.volume(),
                        reserved: 0,
                        cancelled: false,
                        net: 0,
                    },
                );
                self.next_seq += 1;
            }
            Command::Cancel(hash) => {
                let o = self.orders.get_mut(&hash).expect("cancelled order known");
                o.cancelled = true;
                o.remaining = 0;
                self.forget_dead(&hash);
            }
            Command::Lower { hash, remaining } => {
                let o = self.orders.get_mut(&hash).expect("lowered order known");
                assert!(remaining <= o.remaining);
                o.remaining = remaining;
                self.forget_dead(&hash);
            }
            Command::Confirm(id) => {
                let d = self.proposals.remove(&id).expect("confirmed proposal known");
                for m in members(&d) {
                    let o = self.orders.get_mut(&m).expect("member");
                    o.reserved -= d.volume;
                    self.forget_dead(&m);
                }
            }
            Command::Release(id) => self.release(id, [u64::MAX; 4]),
            Command::ReleaseCapped { id, caps } => self.release(id, caps),
            Command::TrackRecord { workerpool, record } => {
                self.records.insert(workerpool, record);
                for o in self.orders.values_mut() {
                    if let Order::Workerpool(w) = &mut o.order
                        && w.workerpool == workerpool
                    {
                        w.record = record;
                    }
                }
            }
        }
        for e in events {
            if let Event::DealProposed(d) = e {
                self.deal(d);
            }
        }
    }

    fn release(&mut self, id: ProposalId, caps: [u64; 4]) {
        let d = self.proposals.remove(&id).expect("released proposal known");
        let capped = [
            Some((d.app, caps[0])),
            d.dataset.map(|h| (h, caps[1])),
            Some((d.workerpool, caps[2])),
            Some((d.request, caps[3])),
        ];
        for (m, cap) in capped.into_iter().flatten() {
            let o = self.orders.get_mut(&m).expect("member");
            o.reserved -= d.volume;
            o.net -= d.volume;
            if !o.cancelled {
                o.remaining = (o.remaining + d.volume).min(cap.saturating_sub(o.reserved));
            }
            self.forget_dead(&m);
        }
    }

    fn check_quiescent(&self, engine: &Engine) {
        for (_, _, r) in self.requests() {
            assert!(self.combinations(&r).is_empty(), "a compatible combination remains for {:?}", r.hash);
        }
        assert_eq!(engine.known_orders(), self.orders.len());
        assert_eq!(engine.pending_proposals(), self.proposals.len());
        for (h, o) in &self.orders {
            let s = engine.order_state(h).expect("engine knows the order");
            assert_eq!((s.remaining, s.reserved, s.cancelled, s.seq), (o.remaining, o.reserved, o.cancelled, o.seq));
        }
        self.check_views(engine);
    }

    /// Best prices, depth and listings (kept from per-price counters and merged groups) against the live orders.
    fn check_views(&self, engine: &Engine) {
        let pools = self.pools();
        let requests = self.requests();
        let mut cats: Vec<u64> =
            pools.iter().map(|x| x.2.category).chain(requests.iter().map(|x| x.2.category)).collect();
        cats.sort_unstable();
        cats.dedup();
        assert_eq!(engine.categories(), cats, "categories with a book");
        for c in cats {
            let asks: Vec<(Nrlc, u64, OrderHash)> = pools
                .iter()
                .filter(|x| x.2.category == c)
                .map(|x| (x.2.price, self.orders[&x.2.hash].remaining, x.2.hash))
                .collect();
            let bids: Vec<(Nrlc, u64, OrderHash)> = requests
                .iter()
                .filter(|x| x.2.category == c)
                .map(|x| (x.2.workerpool_max_price, self.orders[&x.2.hash].remaining, x.2.hash))
                .collect();
            assert_eq!(engine.best_ask(c), asks.first().map(|x| x.0));
            assert_eq!(engine.best_bid(c), bids.first().map(|x| x.0));
            let levels = |side: &[(Nrlc, u64, OrderHash)], n: usize| {
                let mut out: Vec<Level> = Vec::new();
                for &(price, volume, _) in side {
                    match out.last_mut() {
                        Some(l) if l.price == price => {
                            l.volume += volume;
                            l.orders += 1;
                        }
                        _ => out.push(Level { price, volume, orders: 1 }),
                    }
                }
                out.truncate(n);
                out
            };
            let depth = engine.depth(c, 3);
            assert_eq!(depth.asks, levels(&asks, 3), "ask depth of category {c}");
            assert_eq!(depth.bids, levels(&bids, 3), "bid depth of category {c}");
            assert_eq!((depth.ask_orders, depth.bid_orders), (asks.len(), bids.len()));
            let top = |side: &[(Nrlc, u64, OrderHash)]| -> Vec<(OrderHash, Nrlc, u64)> {
                side.iter().take(4).map(|&(p, v, h)| (h, p, v)).collect()
            };
            assert_eq!(engine.top_asks(c, 4), top(&asks), "ask listing of category {c}");
            assert_eq!(engine.top_bids(c, 4), top(&bids), "bid listing of category {c}");
        }
    }
}

fn run(ops: &[Op]) -> Vec<Vec<Event>> {
    let mut engine = Engine::new();
    let mut reference = Reference::new();
    let mut observer = Observer::default();
    let mut driver = Driver::default();
    let mut log = Vec::new();
    for op in ops {
        let cmd = driver.command(op);
        let events = engine.execute(cmd);
        let expected = reference.apply(cmd);
        assert_eq!(events, expected, "engine and reference differ on {cmd:?}");
        observer.apply(&cmd, &events);
        observer.check_quiescent(&engine);
        driver.saw(&events);
        log.push(events);
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference_and_invariants_hold(ops in proptest::collection::vec(op(), 1..60)) {
        let first = run(&ops);
        // Replay: the same stream gives the same events.
        let mut engine = Engine::new();
        let mut driver = Driver::default();
        for (op, expected) in ops.iter().zip(&first) {
            let cmd = driver.command(op);
            let events = engine.execute(cmd);
            prop_assert_eq!(&events, expected);
            driver.saw(&events);
        }
    }

    #[test]
    fn crate_predicate_equals_independent_predicate(
        ops in proptest::collection::vec(op(), 4..40)
    ) {
        let mut driver = Driver::default();
        let orders: Vec<Order> = ops.iter().filter_map(|op| match driver.command(op) {
            Command::Add(o) => Some(o),
            _ => None,
        }).collect();
        let apps: Vec<AppOrder> = orders.iter().filter_map(|o| if let Order::App(x) = o { Some(*x) } else { None }).collect();
        let dss: Vec<DatasetOrder> = orders.iter().filter_map(|o| if let Order::Dataset(x) = o { Some(*x) } else { None }).collect();
        // Records cycle through the table, so the track-record rule is decided both ways.
        let pools: Vec<WorkerpoolOrder> = orders.iter().filter_map(|o| if let Order::Workerpool(x) = o { Some(*x) } else { None })
            .enumerate().map(|(i, w)| WorkerpoolOrder { record: RECORDS[i % RECORDS.len()], ..w }).collect();
        let reqs: Vec<RequestOrder> = orders.iter().filter_map(|o| if let Order::Request(x) = o { Some(*x) } else { None }).collect();
        for a in &apps { for w in &pools { for r in &reqs {
            prop_assert_eq!(dragon_matching::compatible(a, None, w, r), poco_ok(a, None, w, r));
            for d in &dss {
                prop_assert_eq!(dragon_matching::compatible(a, Some(d), w, r), poco_ok(a, Some(d), w, r));
            }
        }}}
    }
}

/// The generated streams do exercise matching (guards against a generator that never produces deals, which
/// would make the properties above vacuous).
#[test]
fn generated_streams_produce_deals_releases_and_confirms() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut deals, mut releases, mut filled, mut multi, mut by_record) = (0, 0, 0, 0, 0);
    for _ in 0..200 {
        let ops = proptest::collection::vec(op(), 40..60).new_tree(&mut runner).expect("tree").current();
        let log = run(&ops);
        for (op, events) in ops.iter().zip(&log) {
            let n = events.iter().filter(|e| matches!(e, Event::DealProposed(_))).count();
            deals += n;
            if matches!(op, Op::Record { .. }) {
                by_record += n;
            }
            if n > 1 {
                multi += 1;
            }
            filled += events.iter().filter(|e| matches!(e, Event::Filled { .. })).count();
        }
        releases += ops.iter().filter(|o| matches!(o, Op::Release(_))).count();
    }
    eprintln!("{deals} deals, {multi} multi, {filled} filled, {releases} releases, {by_record} on a track record");
    assert!(deals > 800, "only {deals} deals");
    assert!(multi > 50, "only {multi} commands with several deals");
    assert!(filled > 200, "only {filled} fills");
    assert!(releases > 100);
    assert!(by_record > 20, "only {by_record} deals made by a better track record");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Long streams (books of a hundred orders, many cancels and releases: tombstones, level compaction, slot
    /// reuse, revived orders): the engine still equals the reference.
    #[test]
    fn long_streams_equal_the_reference(ops in proptest::collection::vec(op(), 300..500)) {
        let mut engine = Engine::new();
        let mut reference = Reference::new();
        let mut driver = Driver::default();
        for op in &ops {
            let cmd = driver.command(op);
            let events = engine.execute(cmd);
            prop_assert_eq!(&events, &reference.apply(cmd), "on {:?}", cmd);
            driver.saw(&events);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The indices by what blocks an order (tag, trust, restrictions, parked requests whose app or dataset has no
    /// order) change which orders a scan walks, never which deal it finds: the engine still equals the reference,
    /// with every invariant of `run`, on streams where blocking is the rule.
    #[test]
    fn blocking_streams_equal_the_reference(ops in proptest::collection::vec(blocking_op(), 1..80)) {
        let first = run(&ops);
        let mut engine = Engine::new();
        let mut driver = Driver::default();
        for (op, expected) in ops.iter().zip(&first) {
            let cmd = driver.command(op);
            let events = engine.execute(cmd);
            prop_assert_eq!(&events, expected);
            driver.saw(&events);
        }
    }
}

/// The blocking streams do unblock orders: deals happen, many of them when an app or dataset order arrives for
/// requests that were resting without one (parked), and many requests rest blocked.
#[test]
fn blocking_streams_unblock_requests_when_app_orders_arrive() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut deals, mut unblocked_by_asset, mut resting_requests) = (0, 0, 0);
    for _ in 0..60 {
        let ops = proptest::collection::vec(blocking_op(), 60..90).new_tree(&mut runner).expect("tree").current();
        let log = run(&ops);
        for (op, events) in ops.iter().zip(&log) {
            let n = events.iter().filter(|e| matches!(e, Event::DealProposed(_))).count();
            deals += n;
            if matches!(op, Op::App { .. } | Op::Dataset { .. }) {
                unblocked_by_asset += n;
            }
            if matches!(op, Op::Request { .. }) && events.iter().any(|e| matches!(e, Event::Resting { .. })) {
                resting_requests += 1;
            }
        }
    }
    eprintln!("{deals} deals, {unblocked_by_asset} on an app/dataset order, {resting_requests} requests rested");
    // Floors well under what the deterministic runner gives (285, 77 and 1276 when written), against a generator
    // that drifts into never matching or never blocking.
    assert!(deals > 150, "only {deals} deals");
    assert!(unblocked_by_asset > 40, "only {unblocked_by_asset} deals made by an arriving app/dataset order");
    assert!(resting_requests > 700, "only {resting_requests} requests rested");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Long blocking streams: groups emptied and created again, tombstones in groups, requests parked and unparked
    /// many times over; the engine still equals the reference.
    #[test]
    fn long_blocking_streams_equal_the_reference(ops in proptest::collection::vec(blocking_op(), 300..500)) {
        let mut engine = Engine::new();
        let mut reference = Reference::new();
        let mut driver = Driver::default();
        for op in &ops {
            let cmd = driver.command(op);
            let events = engine.execute(cmd);
            prop_assert_eq!(&events, &reference.apply(cmd), "on {:?}", cmd);
            driver.saw(&events);
        }
    }
}
