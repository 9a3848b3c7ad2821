//! Proposals: a deal's volume held on its orders until `Confirm` consumes it or `Release` gives it back.
//!
//! A deal moves its volume from remaining to reserved on all its orders at once, which is what keeps an order
//! from being over-filled while its deals settle. A release makes orders matchable again, so it ends in the
//! incremental matching (`matching`).

use std::cmp::min;

use crate::book::Ix;
use crate::types::Nrlc;

use super::orders::OrderRef;
use super::{Deal, Engine, Event, ProposalId, RejectReason, Subject};

/// A pending deal: its orders, by slot, and the volume reserved on each of them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Proposal {
    app: Ix,
    dataset: Option<Ix>,
    workerpool: Ix,
    request: Ix,
    volume: u64,
}

impl Engine {
    pub(super) fn confirm(&mut self, id: ProposalId, out: &mut Vec<Event>) {
        let Some(p) = self.proposals.remove(&id) else {
            out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal });
            return;
        };
        for r in Self::proposal_refs(&p) {
            let v = self.vol_mut(r);
            v.reserved -= p.volume;
            let (remaining, cancelled) = (v.remaining, v.cancelled);
            let hash = self.hash_of(r);
            if self.forget_if_dead(r, hash) && remaining == 0 && !cancelled {
                out.push(Event::Filled { hash });
            }
        }
    }

    pub(super) fn release(&mut self, id: ProposalId, caps: [u64; 4], out: &mut Vec<Event>) {
        let Some(p) = self.proposals.remove(&id) else {
            out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal });
            return;
        };
        let mut back: [Option<OrderRef>; 4] = [None; 4];
        let members = [
            Some((OrderRef::App(p.app), caps[0])),
            p.dataset.map(|d| (OrderRef::Dataset(d), caps[1])),
            Some((OrderRef::Workerpool(p.workerpool), caps[2])),
            Some((OrderRef::Request(p.request), caps[3])),
        ];
        for (slot, (r, cap)) in back.iter_mut().zip(members.into_iter().flatten()) {
            let v = self.vol_mut(r);
            let (before, cancelled) = (v.remaining, v.cancelled);
            v.reserved -= p.volume;
            if cancelled {
                let hash = self.hash_of(r);
                self.forget_if_dead(r, hash);
                continue;
            }
            let now = (before + p.volume).min(cap.saturating_sub(v.reserved));
            v.remaining = now;
            match (before, now) {
                (_, 0) => {
                    if before > 0 {
                        self.remove_from_books(r, before);
                    }
                    let hash = self.hash_of(r);
                    if self.forget_if_dead(r, hash) {
                        out.push(Event::Filled { hash });
                    }
                }
                (0, _) => {
                    // The order re-enters the book with its original arrival number: it keeps its time priority.
                    self.insert_in_books(r);
                    *slot = Some(r);
                }
                _ if now != before => self.level_change(r, before, now),
                _ => {}
            }
        }
        let back: Vec<OrderRef> = back.into_iter().flatten().collect();
        self.match_back(&back, out);
    }

    /// Proposes the combination found for request `ri`: a deal of the smallest remaining volume of its orders,
    /// reserved on all of them at once, at the sellers' prices.
    pub(super) fn propose(&mut self, ri: Ix, wi: Ix, ai: Ix, di: Option<Ix>, out: &mut Vec<Event>) {
        let mut volume =
            min(self.requests.get(ri).v.remaining, min(self.pools.get(wi).v.remaining, self.apps.get(ai).v.remaining));
        if let Some(d) = di {
            volume = min(volume, self.datasets.get(d).v.remaining);
        }
        debug_assert!(volume > 0, "matched orders are live");
        let id = ProposalId(self.next_proposal);
        self.next_proposal += self.proposal_stride;
        let p = Proposal { app: ai, dataset: di, workerpool: wi, request: ri, volume };
        self.proposals.insert(id, p);
        for r in Self::proposal_refs(&p) {
            self.reserve(r, volume);
        }
        let (w, a, req) = (&self.pools.get(wi).order, &self.apps.get(ai).order, &self.requests.get(ri).order);
        let d = di.map(|d| &self.datasets.get(d).order);
        out.push(Event::DealProposed(Deal {
            id,
            app: a.hash,
            dataset: d.map(|d| d.hash),
            workerpool: w.hash,
            request: req.hash,
            volume,
            app_price: a.price,
            dataset_price: d.map_or(Nrlc(0), |d| d.price),
            workerpool_price: w.price,
            category: req.category,
        }));
        self.stats.deals += 1;
    }

    fn proposal_refs(p: &Proposal) -> impl Iterator<Item = OrderRef> {
        [
            Some(OrderRef::App(p.app)),
            p.dataset.map(OrderRef::Dataset),
            Some(OrderRef::Workerpool(p.workerpool)),
            Some(OrderRef::Request(p.request)),
        ]
        .into_iter()
        .flatten()
    }

    /// Moves `volume` from remaining to reserved; takes the order out of the books when it runs out.
    fn reserve(&mut self, r: OrderRef, volume: u64) {
        let v = self.vol_mut(r);
        v.remaining -= volume;
        v.reserved += volume;
        let remaining = v.remaining;
        if self.unbooked != Some(r) {
            if remaining == 0 {
                self.remove_from_books(r, volume);
            } else {
                self.level_change(r, remaining + volume, remaining);
            }
        }
    }
}
