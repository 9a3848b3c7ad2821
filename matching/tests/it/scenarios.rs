//! Hand-written engine scenarios: the life of orders and deals, spelled out event by event.

use dragon_matching::{Command, Deal, Engine, Event, Nrlc, Order, OrderKind, ProposalId, RejectReason, Subject};

use crate::support::{addr, app, dataset, h, pool, request};

fn deals(events: &[Event]) -> Vec<Deal> {
    events.iter().filter_map(|e| if let Event::DealProposed(d) = e { Some(*d) } else { None }).collect()
}

fn add(e: &mut Engine, o: impl Into<OrderLike>) -> Vec<Event> {
    e.execute(Command::Add(o.into().0))
}

struct OrderLike(Order);
impl From<dragon_matching::AppOrder> for OrderLike {
    fn from(o: dragon_matching::AppOrder) -> Self {
        OrderLike(Order::App(o))
    }
}
impl From<dragon_matching::DatasetOrder> for OrderLike {
    fn from(o: dragon_matching::DatasetOrder) -> Self {
        OrderLike(Order::Dataset(o))
    }
}
impl From<dragon_matching::WorkerpoolOrder> for OrderLike {
    fn from(o: dragon_matching::WorkerpoolOrder) -> Self {
        OrderLike(Order::Workerpool(o))
    }
}
impl From<dragon_matching::RequestOrder> for OrderLike {
    fn from(o: dragon_matching::RequestOrder) -> Self {
        OrderLike(Order::Request(o))
    }
}

#[test]
fn a_request_meets_the_cheapest_pool_then_the_earliest_at_equal_price() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 2, 100));
    add(&mut e, pool(10, 5, 7, 1, 0)); // dearer
    add(&mut e, pool(11, 5, 6, 1, 0)); // cheapest, first
    add(&mut e, pool(12, 5, 6, 1, 0)); // cheapest, second
    let ev = add(&mut e, request(20, 1, 0, 10, 3, 0));
    let d = deals(&ev);
    assert_eq!(d.iter().map(|d| d.workerpool).collect::<Vec<_>>(), vec![h(11), h(12), h(10)]);
    assert_eq!(d.iter().map(|d| d.workerpool_price).collect::<Vec<_>>(), vec![Nrlc(6), Nrlc(6), Nrlc(7)]);
    assert!(d.iter().all(|d| d.app_price == Nrlc(2) && d.dataset.is_none() && d.dataset_price == Nrlc(0)));
    assert_eq!(d.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ProposalId(1), ProposalId(2), ProposalId(3)]);
    // The request is used up: no Resting event for it.
    assert!(!ev.iter().any(|x| matches!(x, Event::Resting { .. })));
}

#[test]
fn a_new_pool_serves_the_highest_bid_first_then_the_earliest() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 0, 100));
    add(&mut e, request(20, 1, 0, 5, 1, 0));
    add(&mut e, request(21, 1, 0, 9, 1, 0));
    add(&mut e, request(22, 1, 0, 9, 1, 0));
    add(&mut e, request(23, 1, 0, 3, 1, 0)); // below the ask: never served
    let ev = add(&mut e, pool(10, 5, 4, 10, 0));
    let d = deals(&ev);
    assert_eq!(d.iter().map(|d| d.request).collect::<Vec<_>>(), vec![h(21), h(22), h(20)]);
    assert_eq!(ev.last(), Some(&Event::Resting { hash: h(10), kind: OrderKind::Workerpool, remaining: 7 }));
    assert_eq!(e.best_ask(0), Some(Nrlc(4)));
    assert_eq!(e.best_bid(0), Some(Nrlc(3)));
}

#[test]
fn deal_volume_is_the_smallest_and_reserved_until_confirmed() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 0, 5));
    add(&mut e, dataset(2, 3, 1, 2));
    add(&mut e, pool(3, 5, 1, 4, 0));
    let ev = add(&mut e, request(4, 1, 3, 5, 10, 0));
    let d = deals(&ev);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].volume, d[0].dataset, d[0].dataset_price), (2, Some(h(2)), Nrlc(1)));
    let st = e.order_state(&h(2)).expect("dataset order held by the proposal");
    assert_eq!((st.remaining, st.reserved), (0, 2));
    assert_eq!(e.order_state(&h(4)).map(|s| (s.remaining, s.reserved)), Some((8, 2)));
    // Confirm: the dataset order is filled, the others keep their remaining volume.
    let ev = e.execute(Command::Confirm(d[0].id));
    assert_eq!(ev, vec![Event::Filled { hash: h(2) }]);
    assert_eq!(e.order_state(&h(3)).map(|s| (s.remaining, s.reserved)), Some((2, 0)));
    assert_eq!(
        e.execute(Command::Confirm(d[0].id)),
        vec![Event::Rejected { subject: Subject::Proposal(d[0].id), reason: RejectReason::UnknownProposal }]
    );
}

#[test]
fn release_gives_volume_back_and_matching_runs_again_with_original_priority() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 0, 1));
    add(&mut e, pool(3, 5, 1, 5, 0));
    let first = deals(&add(&mut e, request(4, 1, 0, 5, 1, 0)));
    // A second request waits: the app order's only unit is reserved.
    assert!(deals(&add(&mut e, request(5, 1, 0, 9, 1, 0))).is_empty());
    // Release the first deal: the app order comes back, and the better bid (request 5) gets it now.
    let ev = e.execute(Command::Release(first[0].id));
    let d = deals(&ev);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].request, d[0].app, d[0].id), (h(5), h(1), ProposalId(2)));
}

#[test]
fn cancel_keeps_reserved_volume_until_the_proposal_is_resolved() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 0, 1));
    add(&mut e, pool(3, 5, 1, 5, 0));
    let d = deals(&add(&mut e, request(4, 1, 0, 5, 3, 0)));
    assert_eq!(e.execute(Command::Cancel(h(4))), vec![Event::Cancelled { hash: h(4) }]);
    assert_eq!(
        e.execute(Command::Cancel(h(4))),
        vec![Event::Rejected { subject: Subject::Order(h(4)), reason: RejectReason::UnknownOrder }]
    );
    // Released volume does not come back to the cancelled request; the app order rests again.
    assert!(deals(&e.execute(Command::Release(d[0].id))).is_empty());
    assert_eq!(e.order_state(&h(4)), None);
    assert_eq!(e.order_state(&h(1)).map(|s| s.remaining), Some(1));
}

#[test]
fn lower_and_rejections() {
    let mut e = Engine::new();
    add(&mut e, pool(3, 5, 1, 5, 0));
    assert_eq!(
        e.execute(Command::Lower { hash: h(3), remaining: 6 }),
        vec![Event::Rejected { subject: Subject::Order(h(3)), reason: RejectReason::NotALowering }]
    );
    assert_eq!(
        e.execute(Command::Lower { hash: h(3), remaining: 2 }),
        vec![Event::Resting { hash: h(3), kind: OrderKind::Workerpool, remaining: 2 }]
    );
    assert_eq!(e.execute(Command::Lower { hash: h(3), remaining: 0 }), vec![Event::Filled { hash: h(3) }]);
    let reject = |n, reason| vec![Event::Rejected { subject: Subject::Order(h(n)), reason }];
    assert_eq!(add(&mut e, pool(6, 5, 1, 0, 0)), reject(6, RejectReason::ZeroVolume));
    assert_eq!(add(&mut e, pool(7, 0, 1, 1, 0)), reject(7, RejectReason::ZeroAddress));
    add(&mut e, pool(8, 5, 1, 1, 0));
    assert_eq!(add(&mut e, pool(8, 5, 1, 1, 0)), reject(8, RejectReason::DuplicateOrder));
    assert_eq!(e.execute(Command::Cancel(h(99))), reject(99, RejectReason::UnknownOrder));
}

#[test]
fn an_app_order_serves_requests_across_categories_in_global_bid_priority() {
    let mut e = Engine::new();
    add(&mut e, pool(10, 5, 1, 10, 0));
    add(&mut e, pool(11, 5, 1, 10, 1));
    add(&mut e, request(20, 1, 0, 4, 1, 0));
    add(&mut e, request(21, 1, 0, 6, 1, 1));
    add(&mut e, request(22, 1, 0, 5, 1, 0));
    let d = deals(&add(&mut e, app(1, 1, 0, 2)));
    assert_eq!(d.iter().map(|d| (d.request, d.category)).collect::<Vec<_>>(), vec![(h(21), 1), (h(22), 0)]);
}

#[test]
fn restrictions_and_datasets_steer_the_choice() {
    let mut e = Engine::new();
    let mut picky = pool(10, 5, 1, 10, 0);
    picky.requester_restrict = addr(9); // not our requester
    add(&mut e, picky);
    add(&mut e, pool(11, 6, 2, 10, 0));
    add(&mut e, app(1, 1, 0, 10));
    let mut ds_cheap = dataset(30, 3, 0, 10);
    ds_cheap.app_restrict = addr(2); // another app only
    add(&mut e, ds_cheap);
    add(&mut e, dataset(31, 3, 1, 10));
    let d = deals(&add(&mut e, request(4, 1, 3, 5, 1, 0)));
    assert_eq!((d[0].workerpool, d[0].dataset), (h(11), Some(h(31))));
    // Depth shows what rests.
    let depth = e.depth(0, 10);
    assert_eq!(depth.asks.iter().map(|l| (l.price, l.volume)).collect::<Vec<_>>(), vec![(Nrlc(1), 10), (Nrlc(2), 9)]);
}

#[test]
fn extreme_prices_and_volumes_do_not_overflow() {
    let mut e = Engine::new();
    let max = u64::MAX;
    add(&mut e, app(1, 1, max, max));
    add(&mut e, pool(2, 5, max, max, max));
    let mut r = request(3, 1, 0, max, max, max);
    r.trust = max;
    let mut w = pool(4, 6, max, max, max);
    w.trust = max;
    add(&mut e, w);
    let d = deals(&add(&mut e, r));
    // Pool 2 has trust 0 < max: only pool 4 qualifies; the deal takes the whole volume at u64::MAX prices.
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].workerpool, d[0].volume, d[0].workerpool_price, d[0].category), (h(4), max, Nrlc(max), max));
    assert_eq!(e.execute(Command::Release(d[0].id)).len(), 1, "released volume is matched again at once");
    let depth = e.depth(max, 5);
    assert_eq!(depth.asks.iter().map(|l| (l.price, l.volume)).collect::<Vec<_>>(), vec![(Nrlc(max), max)]);
}

#[test]
fn requests_wait_for_an_app_order_then_match_in_bid_priority_and_wait_again_when_it_runs_out() {
    let mut e = Engine::new();
    add(&mut e, pool(10, 5, 3, 10, 0));
    // App 1 has no order: the requests rest, and a cheaper pool arriving later makes no deal either.
    add(&mut e, request(20, 1, 0, 5, 1, 0));
    add(&mut e, request(21, 1, 0, 9, 1, 0));
    assert!(deals(&add(&mut e, pool(11, 6, 2, 10, 0))).is_empty());
    // The app order unblocks them: best bid first, cheapest pool; its volume of 1 is used up at once.
    let first = deals(&add(&mut e, app(30, 1, 0, 1)));
    assert_eq!(first.iter().map(|d| (d.request, d.workerpool)).collect::<Vec<_>>(), vec![(h(21), h(11))]);
    // App 1 has no order again: a still cheaper pool makes no deal with request 20.
    assert!(deals(&add(&mut e, pool(12, 5, 1, 10, 0))).is_empty());
    // The release brings the app order and request 21 back: 21 (the better bid) takes the cheapest pool now.
    let again = deals(&e.execute(Command::Release(first[0].id)));
    assert_eq!(again.iter().map(|d| (d.request, d.workerpool)).collect::<Vec<_>>(), vec![(h(21), h(12))]);
    // A second app order serves request 20, at the cheapest pool.
    let last = deals(&add(&mut e, app(31, 1, 0, 5)));
    assert_eq!(last.iter().map(|d| (d.request, d.workerpool, d.app)).collect::<Vec<_>>(), vec![(h(20), h(12), h(31))]);
}

/// A failed deal whose orders were partly consumed on chain by someone else meanwhile: the capped release gives
/// back only what the chain still has, keeps each order's arrival number, fills an order left with nothing, and
/// matches what is left at once, in priority.
#[test]
fn capped_release_gives_back_what_the_chain_still_has_and_keeps_priority() {
    let mut e = Engine::new();
    add(&mut e, app(1, 1, 0, 10));
    add(&mut e, pool(2, 5, 1, 3, 0));
    let first = deals(&add(&mut e, request(3, 1, 0, 5, 3, 0)));
    assert_eq!(first[0].volume, 3);
    // A later request of the same price waits behind the first one.
    add(&mut e, request(4, 1, 0, 5, 2, 0));
    add(&mut e, pool(5, 6, 2, 1, 0)); // serves request 4 (request 3 is fully reserved)
    let seq3 = e.order_state(&h(3)).map(|s| s.seq);
    // On chain: the workerpool order has 2 left, the request 1; the app order is not capped.
    let ev = e.execute(Command::ReleaseCapped { id: first[0].id, caps: [u64::MAX, u64::MAX, 2, 1] });
    let d = deals(&ev);
    // Request 3 keeps its priority (before request 4) and is served first, with its capped volume; request 4
    // takes what the chain has left of the workerpool order.
    let got: Vec<_> = d.iter().map(|d| (d.request, d.workerpool, d.volume)).collect();
    assert_eq!(got, vec![(h(3), h(2), 1), (h(4), h(2), 1)]);
    assert_eq!(e.order_state(&h(3)).map(|s| s.seq), seq3);
    assert_eq!(e.order_state(&h(2)).map(|s| (s.remaining, s.reserved)), Some((0, 2)));
    // A cap of 0 with nothing else reserved: the order is filled.
    let ev = e.execute(Command::ReleaseCapped { id: d[0].id, caps: [u64::MAX, u64::MAX, u64::MAX, 0] });
    assert!(ev.contains(&Event::Filled { hash: h(3) }), "{ev:?}");
    assert_eq!(e.order_state(&h(3)), None);
    assert_eq!(
        e.execute(Command::ReleaseCapped { id: d[0].id, caps: [0; 4] }),
        vec![Event::Rejected { subject: Subject::Proposal(d[0].id), reason: RejectReason::UnknownProposal }]
    );
}
