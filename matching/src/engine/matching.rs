//! The incremental matching: after a command, which requests to scan, and the scan of one request.
//!
//! Under invariant Q (crate docs, "Incremental matching") every new combination contains the order that just
//! became matchable, so each scan is restricted to combinations holding it (`Fixed`), and only the requests that
//! may form one are scanned, in bid priority: the deals, and their order, are exactly those of the full rule.

use std::cmp::Reverse;

use crate::book::{Ix, LevelBook};
use crate::compat::{app_may_serve, compatible, pool_may_serve};
use crate::types::{Address, Tag, WorkerpoolOrder};

use super::books::{BidGroup, ask_marks_admit, bid_marks_admit, low4};
use super::indexes::RequestIndex;
use super::orders::{AskKey, BidKey, OrderRef, valid_entry, valid_unparked};
use super::{Engine, Event};

/// Restricts a request's scan to combinations that contain one given order (all new combinations do).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Fixed {
    None,
    Workerpool(Ix),
    App(Ix),
    Dataset(Ix),
}

impl Engine {
    /// Runs the matching rule after `r` became matchable, knowing that no combination existed before: every new
    /// combination contains `r`, so only the requests that may combine with `r` are scanned (in bid priority, as
    /// the full rule would), and each scan is restricted to combinations containing `r`.
    pub(super) fn match_new(&mut self, r: OrderRef, out: &mut Vec<Event>) {
        let fixed = match r {
            OrderRef::Request(ri) => {
                self.match_request(ri, Fixed::None, out);
                return;
            }
            OrderRef::Workerpool(wi) => {
                self.match_new_pool(wi, out);
                return;
            }
            OrderRef::App(i) => Fixed::App(i),
            OrderRef::Dataset(i) => Fixed::Dataset(i),
        };
        let mut cands = std::mem::take(&mut self.candidates);
        cands.clear();
        self.collect_candidates(r, &mut cands);
        // Candidates come from several categories: restore global bid priority (arrival numbers are unique, so
        // the order is total).
        cands.sort_unstable_by_key(|c| c.0);
        for &(_, ri) in &cands {
            if self.vol(r).remaining == 0 {
                break;
            }
            self.match_request(ri, fixed, out);
        }
        self.candidates = cands;
    }

    /// Runs the matching rule after the resting orders `back` became matchable again (released, or a better track
    /// record): new combinations contain at least one of them.
    pub(super) fn match_back(&mut self, back: &[OrderRef], out: &mut Vec<Event>) {
        match back {
            [] => {}
            [one] => self.match_new(*one, out),
            several => {
                // Scan, in bid priority, every request that may form a combination with one of them, without
                // restricting the scan to a given order.
                let mut cands = std::mem::take(&mut self.candidates);
                cands.clear();
                for &r in several {
                    self.collect_candidates(r, &mut cands);
                }
                cands.sort_unstable_by_key(|c| c.0);
                cands.dedup_by_key(|c| c.1);
                for &(_, ri) in &cands {
                    self.match_request(ri, Fixed::None, out);
                }
                self.candidates = cands;
            }
        }
    }

    /// A new workerpool order scans the requests of the bid groups that admit it, merged into bid priority one
    /// request at a time (a cursor per group), so that it stops as soon as it is used up and never walks a
    /// request kept from it by tag, workerpool restriction or trust, nor a parked one.
    fn match_new_pool(&mut self, wi: Ix, out: &mut Vec<Event>) {
        let w = self.pools.get(wi).order;
        // Most new workerpool orders cross no bid at all: one look at the best bid settles it.
        let Some(book) = self.categories.get(&w.category) else {
            return;
        };
        if book.bids.first_price().is_none_or(|best| best > Reverse(w.price.0)) {
            return;
        }
        let groups = self.bid_groups_admitting(&w);
        let mut heads: Vec<Option<(BidKey, Ix)>> =
            groups.iter().map(|g| self.bid_group_head(&w, g, (Reverse(u64::MAX), 0))).collect();
        while self.pools.get(wi).v.live() {
            let Some((g, &Some((key, ri)))) =
                heads.iter().enumerate().filter(|(_, h)| h.is_some()).min_by_key(|(_, h)| h.map(|h| h.0))
            else {
                break;
            };
            self.match_request(ri, Fixed::Workerpool(wi), out);
            // The scan may have changed other groups only by parking requests, which their heads then fail to
            // match (their app has no order): re-reading this group from past `ri` is enough.
            heads[g] = self.bid_group_head(&w, &groups[g], (key.0, key.1 + 1));
        }
    }

    /// The bid groups of `w`'s category whose tag `w`'s covers, whose workerpool restriction admits `w`, and whose
    /// trust `w` reaches. Tags are enumerated from the side with fewer: the subsets of `w`'s tag bits, or the
    /// tags present in the category.
    fn bid_groups_admitting(&self, w: &WorkerpoolOrder) -> Vec<BidGroup> {
        let mut groups = Vec::new();
        let Some(book) = self.categories.get(&w.category) else {
            return groups;
        };
        let mut tags: Vec<Tag> = Vec::with_capacity(4);
        let bits = w.tag.0.iter().map(|b| b.count_ones()).sum::<u32>();
        if bits >= 20 || book.bid_tags.len() <= 1 << bits {
            tags.extend(book.bid_tags.keys().filter(|t| t.is_subset_of(&w.tag)));
        } else {
            let positions: Vec<(usize, u8)> = (0..32)
                .flat_map(|byte| (0..8).map(move |b| (byte, 1u8 << b)))
                .filter(|&(byte, bit)| w.tag.0[byte] & bit != 0)
                .collect();
            for mask in 0u32..1 << bits {
                let mut t = Tag::ZERO;
                for (k, &(byte, bit)) in positions.iter().enumerate() {
                    if mask & (1 << k) != 0 {
                        t.0[byte] |= bit;
                    }
                }
                if book.bid_tags.contains_key(&t) {
                    tags.push(t);
                }
            }
        }
        let pools: &[Address] = if book.bid_restricted > 0 { &[Address::ZERO, w.workerpool] } else { &[Address::ZERO] };
        for t in tags {
            for &wp in pools {
                for &trust in book.bid_trusts.range(..=w.trust).map(|(t, _)| t) {
                    if book.bid_groups.contains_key(&((t, wp), trust)) {
                        groups.push((t, wp, trust));
                    }
                }
            }
        }
        groups
    }

    /// The first request of a bid group, from `from` on, that may pay `w` and pass its restrictions' marks.
    fn bid_group_head(&self, w: &WorkerpoolOrder, group: &BidGroup, from: BidKey) -> Option<(BidKey, Ix)> {
        let requests = &self.requests;
        self.categories
            .get(&w.category)?
            .bid_groups
            .get(&((group.0, group.1), group.2))?
            .between(from, Reverse(w.price.0), |s, i, m| bid_marks_admit(m, w) && valid_unparked(requests, s, i))
            .next()
            .map(|(p, s, i)| ((p, s), i))
    }

    /// Appends the requests that may form a combination with `r` (a superset; each is checked when scanned).
    pub(super) fn collect_candidates(&self, r: OrderRef, cands: &mut Vec<(BidKey, Ix)>) {
        match r {
            OrderRef::Request(ri) => {
                let e = self.requests.get(ri);
                cands.push(((Reverse(e.order.workerpool_max_price.0), e.v.seq), ri));
            }
            OrderRef::Workerpool(wi) => {
                let w = &self.pools.get(wi).order;
                for g in self.bid_groups_admitting(w) {
                    let mut from = (Reverse(u64::MAX), 0);
                    while let Some((key, ri)) = self.bid_group_head(w, &g, from) {
                        cands.push((key, ri));
                        from = (key.0, key.1 + 1);
                    }
                }
            }
            OrderRef::App(ai) => {
                let a = &self.apps.get(ai).order;
                if let Some(index) = self.requests_by_app.get(&a.app) {
                    self.collect_crossing(index, a.requester_restrict, cands);
                }
            }
            OrderRef::Dataset(di) => {
                let d = &self.datasets.get(di).order;
                if let Some(index) = self.requests_by_dataset.get(&d.dataset) {
                    self.collect_crossing(index, d.requester_restrict, cands);
                }
            }
        }
    }

    /// From an index of requests keyed by (category, bid priority), the requests whose workerpoolmaxprice reaches
    /// their category's best ask (any other cannot pay any workerpool order) and whose requester the new order's
    /// requester restriction admits.
    fn collect_crossing(&self, index: &RequestIndex, requester_restrict: Address, cands: &mut Vec<(BidKey, Ix)>) {
        let admits = |m: u32| requester_restrict.is_zero() || low4(&requester_restrict) == m;
        for (&cat, book) in index {
            let Some(best_ask) = self.categories.get(&cat).and_then(|b| b.asks.first_price()) else {
                continue;
            };
            // Usually no request of this app reaches the best ask: one look at the best bid settles it.
            if book.first.is_none_or(|best_bid| best_bid.0 > Reverse(best_ask)) {
                continue;
            }
            // The index holds exactly the live requests: the range is those that reach the best ask.
            cands.extend(
                book.tree
                    .range(..=(Reverse(best_ask), u64::MAX))
                    .filter(|(_, (_, m))| admits(*m))
                    .map(|(&key, &(i, _))| (key, i)),
            );
        }
    }

    /// The matching rule for one request: repeatedly take the first compatible combination in scan order and
    /// propose a deal of the smallest remaining volume, until the request is exhausted or none remains.
    pub(super) fn match_request(&mut self, ri: Ix, fixed: Fixed, out: &mut Vec<Event>) {
        self.stats.requests_scanned += 1;
        // Combinations before the one just found were incompatible, and compatibility does not depend on volume:
        // the next scan resumes at the same workerpool order.
        let mut from: AskKey = (0, 0);
        loop {
            if !self.requests.get(ri).v.live() {
                return;
            }
            let Some((w, a, d, key)) = self.find_combination(ri, fixed, from) else {
                return;
            };
            from = key;
            self.propose(ri, w, a, d, out);
        }
    }

    /// The first compatible (workerpool, app, dataset) for request `ri` in scan order: workerpool orders of its
    /// category in ask priority (from `from` on), then its app's orders, then its dataset's orders, each in price
    /// then arrival order. Price ranges stop at the request's maximum prices (rules 03-05).
    fn find_combination<'a>(&'a self, ri: Ix, fixed: Fixed, from: AskKey) -> Option<(Ix, Ix, Option<Ix>, AskKey)> {
        let fixed_live = match fixed {
            Fixed::None => true,
            Fixed::Workerpool(i) => self.pools.get(i).v.live(),
            Fixed::App(i) => self.apps.get(i).v.live(),
            Fixed::Dataset(i) => self.datasets.get(i).v.live(),
        };
        if !fixed_live {
            return None;
        }
        let req = &self.requests.get(ri).order;

        // App and dataset first: a request whose app or dataset has no order costs two lookups, whatever the asks.
        let app_book = self.app_book.get(&req.app);
        if app_book.is_none() && !matches!(fixed, Fixed::App(_)) {
            return None;
        }
        let with_dataset = !req.dataset.is_zero();
        let dataset_book = if with_dataset { self.dataset_book.get(&req.dataset) } else { None };
        if with_dataset && dataset_book.is_none() && !matches!(fixed, Fixed::Dataset(_)) {
            return None;
        }

        let pool_slab = &self.pools;
        let pools_range = match fixed {
            Fixed::Workerpool(_) => None,
            _ => {
                let book = self.categories.get(&req.category)?;
                if book.asks.first_price().is_none_or(|best| best > req.workerpool_max_price.0) {
                    return None;
                }
                // Only the groups whose restrictions admit the request and whose trust reaches its own; merged
                // into ask priority.
                let [apps_r, datasets_r, requesters_r] = book.ask_restricted;
                let apps: &[Address] = if apps_r > 0 { &[Address::ZERO, req.app] } else { &[Address::ZERO] };
                let datasets: &[Address] =
                    if with_dataset && datasets_r > 0 { &[Address::ZERO, req.dataset] } else { &[Address::ZERO] };
                let requesters: &[Address] = if requesters_r > 0 && !req.requester.is_zero() {
                    &[Address::ZERO, req.requester]
                } else {
                    &[Address::ZERO]
                };
                // Each group starts as the lower bound its first price gives; its entries (a deque and the orders,
                // cold on a big book) are read only once that bound is the smallest: a group whose cheapest ask is
                // dearer than the one found costs one tree lookup.
                let admit = move |s, i, m| ask_marks_admit(m, req) && valid_entry(pool_slab, s, i);
                let start = move |g: &'a LevelBook<u64>| g.between(from, req.workerpool_max_price.0, admit).peekable();
                /// `None`, typed as what `f` would return (the iterator type has no name).
                fn not_started<T>(_f: impl FnOnce() -> T) -> Option<T> {
                    None
                }
                let mut groups = Vec::with_capacity(2);
                for &trust in book.ask_trusts.range(req.trust..).map(|(t, _)| t) {
                    for &app in apps {
                        for &dataset in datasets {
                            for &requester in requesters {
                                if let Some(g) = book.ask_groups.get(&((app, dataset, requester), trust))
                                    && let Some(first) = g.first_price()
                                {
                                    groups.push((Some(from.max((first, 0))), g, not_started(|| start(g))));
                                }
                            }
                        }
                    }
                }
                Some(std::iter::from_fn(move || {
                    loop {
                        let (k, _) = groups
                            .iter_mut()
                            .enumerate()
                            .filter_map(|(k, (bound, _, it))| match it {
                                None => bound.map(|b| (k, b)),
                                Some(it) => it.peek().map(|&(p, s, _)| (k, (p, s))),
                            })
                            .min_by_key(|&(_, key)| key)?;
                        let (bound, g, it) = &mut groups[k];
                        match it {
                            Some(it) => return it.next(),
                            None => {
                                *it = Some(start(g));
                                *bound = None;
                            }
                        }
                    }
                }))
            }
        };
        let pool_single = match fixed {
            Fixed::Workerpool(w) => {
                let e = self.pools.get(w);
                let k = (e.order.price.0, e.v.seq);
                (e.v.live() && k >= from).then_some((k, w))
            }
            _ => None,
        };
        let pools = pools_range.into_iter().flatten().map(|(p, s, i)| ((p, s), i)).chain(pool_single);

        let app_slab = &self.apps;
        let apps = || {
            let range = match fixed {
                Fixed::App(_) => None,
                _ => app_book.map(|b| b.up_to(req.app_max_price.0, move |s, i, _| valid_entry(app_slab, s, i))),
            };
            let single = match fixed {
                Fixed::App(a) => self.apps.get(a).v.live().then_some(a),
                _ => None,
            };
            range.into_iter().flatten().map(|(_, _, i)| i).chain(single)
        };

        let dataset_slab = &self.datasets;
        let datasets = || {
            let range = match fixed {
                Fixed::Dataset(_) => None,
                _ => dataset_book
                    .map(|b| b.up_to(req.dataset_max_price.0, move |s, i, _| valid_entry(dataset_slab, s, i))),
            };
            let single = match fixed {
                Fixed::Dataset(d) => self.datasets.get(d).v.live().then_some(d),
                _ => None,
            };
            range.into_iter().flatten().map(|(_, _, i)| i).chain(single)
        };

        for (key, wi) in pools {
            let w = &self.pools.get(wi).order;
            if !pool_may_serve(w, req) {
                continue;
            }
            for ai in apps() {
                let a = &self.apps.get(ai).order;
                if !app_may_serve(a, w, req) {
                    continue;
                }
                if !with_dataset {
                    if compatible(a, None, w, req) {
                        return Some((wi, ai, None, key));
                    }
                    continue;
                }
                for di in datasets() {
                    if compatible(a, Some(&self.datasets.get(di).order), w, req) {
                        return Some((wi, ai, Some(di), key));
                    }
                }
            }
        }
        None
    }
}
