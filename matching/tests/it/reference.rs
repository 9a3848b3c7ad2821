//! A slow, obviously correct reference implementation of the engine's semantics and of the matching rule: after
//! every command, scan *all* resting requests in bid priority and, for each, *all* (workerpool, app, dataset)
//! combinations in scan order, with plain vectors and sorts. No index, no incremental reasoning.

use std::collections::BTreeMap;

use dragon_matching::{
    Address, AppOrder, Command, DatasetOrder, Deal, Event, Nrlc, Order, OrderHash, ProposalId, RejectReason,
    RequestOrder, Subject, TrackRecord, WorkerpoolOrder,
};

use crate::support::poco_ok;

#[derive(Clone, Debug)]
struct Rec {
    order: Order,
    seq: u64,
    remaining: u64,
    reserved: u64,
    cancelled: bool,
    gone: bool,
}

impl Rec {
    fn live(&self) -> bool {
        !self.gone && !self.cancelled && self.remaining > 0
    }
}

#[derive(Clone, Debug, Default)]
pub struct Reference {
    orders: Vec<Rec>,
    proposals: Vec<(ProposalId, Vec<usize>, u64)>,
    next_seq: u64,
    next_id: u64,
    /// The last track record given per workerpool; its orders carry it.
    records: BTreeMap<Address, TrackRecord>,
}

impl Reference {
    pub fn new() -> Self {
        Reference { next_id: 1, ..Self::default() }
    }

    fn find(&self, hash: &OrderHash) -> Option<usize> {
        self.orders.iter().position(|r| !r.gone && r.order.hash() == *hash)
    }

    pub fn apply(&mut self, cmd: Command) -> Vec<Event> {
        let mut out = Vec::new();
        match cmd {
            Command::Add(mut order) => {
                if let Order::Workerpool(w) = &mut order {
                    w.record = self.records.get(&w.workerpool).copied().unwrap_or_default();
                }
                let hash = order.hash();
                let rej = |reason| Event::Rejected { subject: Subject::Order(hash), reason };
                let own_zero = match &order {
                    Order::App(o) => o.app.is_zero(),
                    Order::Dataset(o) => o.dataset.is_zero(),
                    Order::Workerpool(o) => o.workerpool.is_zero(),
                    Order::Request(o) => o.app.is_zero(),
                };
                if self.find(&hash).is_some() {
                    out.push(rej(RejectReason::DuplicateOrder));
                } else if order.volume() == 0 {
                    out.push(rej(RejectReason::ZeroVolume));
                } else if own_zero {
                    out.push(rej(RejectReason::ZeroAddress));
                } else {
                    self.orders.push(Rec {
                        order,
                        seq: self.next_seq,
                        remaining: order.volume(),
                        reserved: 0,
                        cancelled: false,
                        gone: false,
                    });
                    self.next_seq += 1;
                    let i = self.orders.len() - 1;
                    self.run_rule(&mut out);
                    if self.orders[i].remaining > 0 {
                        out.push(Event::Resting { hash, kind: order.kind(), remaining: self.orders[i].remaining });
                    }
                }
            }
            Command::Cancel(hash) => match self.find(&hash).filter(|&i| !self.orders[i].cancelled) {
                None => out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::UnknownOrder }),
                Some(i) => {
                    let o = &mut self.orders[i];
                    o.cancelled = true;
                    o.remaining = 0;
                    out.push(Event::Cancelled { hash });
                    if o.reserved == 0 {
                        o.gone = true;
                    }
                }
            },
            Command::Lower { hash, remaining } => match self.find(&hash).filter(|&i| !self.orders[i].cancelled) {
                None => out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::UnknownOrder }),
                Some(i) => {
                    let o = &mut self.orders[i];
                    if remaining > o.remaining {
                        out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::NotALowering });
                    } else if remaining < o.remaining {
                        o.remaining = remaining;
                        if remaining > 0 {
                            out.push(Event::Resting { hash, kind: o.order.kind(), remaining });
                        } else if o.reserved == 0 {
                            o.gone = true;
                            out.push(Event::Filled { hash });
                        }
                    }
                }
            },
            Command::Confirm(id) => match self.proposals.iter().position(|p| p.0 == id) {
                None => {
                    out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal })
                }
                Some(pi) => {
                    let (_, members, v) = self.proposals.remove(pi);
                    for i in members {
                        let o = &mut self.orders[i];
                        o.reserved -= v;
                        if o.reserved == 0 && (o.remaining == 0 || o.cancelled) {
                            o.gone = true;
                            if !o.cancelled {
                                out.push(Event::Filled { hash: o.order.hash() });
                            }
                        }
                    }
                }
            },
            Command::Release(id) => self.release(id, [u64::MAX; 4], &mut out),
            Command::ReleaseCapped { id, caps } => self.release(id, caps, &mut out),
            Command::TrackRecord { workerpool, record } => {
                self.records.insert(workerpool, record);
                for o in &mut self.orders {
                    if let Order::Workerpool(w) = &mut o.order
                        && w.workerpool == workerpool
                    {
                        w.record = record;
                    }
                }
                self.run_rule(&mut out);
            }
        }
        out
    }

    /// Gives a proposal's volume back to its orders (not to cancelled ones), each up to its cap on remaining plus
    /// reserved; an order left with nothing at all is filled. Then the rule runs.
    fn release(&mut self, id: ProposalId, caps: [u64; 4], out: &mut Vec<Event>) {
        let Some(pi) = self.proposals.iter().position(|p| p.0 == id) else {
            out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal });
            return;
        };
        let (_, members, v) = self.proposals.remove(pi);
        for i in members {
            let o = &mut self.orders[i];
            let cap = match o.order {
                Order::App(_) => caps[0],
                Order::Dataset(_) => caps[1],
                Order::Workerpool(_) => caps[2],
                Order::Request(_) => caps[3],
            };
            o.reserved -= v;
            if o.cancelled {
                if o.reserved == 0 {
                    o.gone = true;
                }
            } else {
                o.remaining = (o.remaining + v).min(cap.saturating_sub(o.reserved));
                if o.remaining == 0 && o.reserved == 0 {
                    o.gone = true;
                    out.push(Event::Filled { hash: o.order.hash() });
                }
            }
        }
        self.run_rule(out);
    }

    fn sorted<T>(&self, pick: impl Fn(&Rec) -> Option<(T, u64)>) -> Vec<(usize, T)>
    where
        T: Copy,
    {
        let mut v: Vec<(usize, T, u64, u64)> = self
            .orders
            .iter()
            .enumerate()
            .filter(|(_, r)| r.live())
            .filter_map(|(i, r)| pick(r).map(|(t, price)| (i, t, price, r.seq)))
            .collect();
        v.sort_by_key(|x| (x.2, x.3));
        v.into_iter().map(|x| (x.0, x.1)).collect()
    }

    /// The matching rule, from scratch.
    fn run_rule(&mut self, out: &mut Vec<Event>) {
        let mut requests: Vec<(usize, RequestOrder)> = self.sorted(|r| match r.order {
            Order::Request(o) => Some((o, u64::MAX - o.workerpool_max_price.0)),
            _ => None,
        });
        // Bid priority: maxprice descending then arrival; `sorted` sorts by (MAX - price, seq).
        requests.sort_by_key(|(i, o)| (u64::MAX - o.workerpool_max_price.0, self.orders[*i].seq));
        for (ri, req) in requests {
            loop {
                if !self.orders[ri].live() {
                    break;
                }
                let Some((wi, ai, di)) = self.first_combination(&req) else {
                    break;
                };
                self.deal(ri, wi, ai, di, out);
            }
        }
    }

    fn first_combination(&self, req: &RequestOrder) -> Option<(usize, usize, Option<usize>)> {
        let pools: Vec<(usize, WorkerpoolOrder)> = self.sorted(|r| match r.order {
            Order::Workerpool(o) if o.category == req.category => Some((o, o.price.0)),
            _ => None,
        });
        let apps: Vec<(usize, AppOrder)> = self.sorted(|r| match r.order {
            Order::App(o) if o.app == req.app => Some((o, o.price.0)),
            _ => None,
        });
        let datasets: Vec<(usize, DatasetOrder)> = self.sorted(|r| match r.order {
            Order::Dataset(o) if o.dataset == req.dataset => Some((o, o.price.0)),
            _ => None,
        });
        for (wi, w) in &pools {
            for (ai, a) in &apps {
                if req.dataset.is_zero() {
                    if poco_ok(a, None, w, req) {
                        return Some((*wi, *ai, None));
                    }
                } else {
                    for (di, d) in &datasets {
                        if poco_ok(a, Some(d), w, req) {
                            return Some((*wi, *ai, Some(*di)));
                        }
                    }
                }
            }
        }
        None
    }

    fn deal(&mut self, ri: usize, wi: usize, ai: usize, di: Option<usize>, out: &mut Vec<Event>) {
        let members: Vec<usize> = [Some(ai), di, Some(wi), Some(ri)].into_iter().flatten().collect();
        let volume = members.iter().map(|&i| self.orders[i].remaining).min().expect("four orders");
        for &i in &members {
            self.orders[i].remaining -= volume;
            self.orders[i].reserved += volume;
        }
        let id = ProposalId(self.next_id);
        self.next_id += 1;
        self.proposals.push((id, members, volume));
        let (Order::App(a), Order::Workerpool(w), Order::Request(r)) =
            (self.orders[ai].order, self.orders[wi].order, self.orders[ri].order)
        else {
            panic!("kinds");
        };
        let d = di.map(|i| match self.orders[i].order {
            Order::Dataset(d) => d,
            _ => panic!("kind"),
        });
        out.push(Event::DealProposed(Deal {
            id,
            app: a.hash,
            dataset: d.map(|d| d.hash),
            workerpool: w.hash,
            request: r.hash,
            volume,
            app_price: a.price,
            dataset_price: d.map_or(Nrlc(0), |d| d.price),
            workerpool_price: w.price,
            category: r.category,
        }));
    }
}
