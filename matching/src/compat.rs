//! The compatibility predicate: every check of PoCo's `matchOrders` that needs no chain state.
//!
//! Codes are those of PoCo's revert reasons `iExecV5-matchOrders-0xNN`. Left out, because they need chain state
//! and are checked on chain: 01 (category exists), 20-50 (assets registered, signatures), and the ERC-734
//! identity-contract form of restrictions. 60 (volume > 0) holds by construction: the engine only matches
//! orders with remaining volume.

use crate::types::{Address, AppOrder, DatasetOrder, Nrlc, RequestOrder, Tag, WorkerpoolOrder};

/// One rule of `matchOrders`, named by its PoCo revert code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Rule {
    /// 0x00: request.category == workerpool.category.
    Category = 0x00,
    /// 0x02: request.trust <= workerpool.trust.
    Trust = 0x02,
    /// 0x03: request.appmaxprice >= app.appprice.
    AppPrice = 0x03,
    /// 0x04: request.datasetmaxprice >= dataset.datasetprice (0 without dataset).
    DatasetPrice = 0x04,
    /// 0x05: request.workerpoolmaxprice >= workerpool.workerpoolprice.
    WorkerpoolPrice = 0x05,
    /// 0x06: (app.tag | dataset.tag | request.tag) is a subset of workerpool.tag.
    TagSubset = 0x06,
    /// 0x07: if that union has the TEE bit, app.tag has it too.
    TeeApp = 0x07,
    /// 0x10: request.app == app.app.
    App = 0x10,
    /// 0x11: request.dataset == dataset.dataset (zero without dataset).
    Dataset = 0x11,
    /// 0x12: request.workerpool admits workerpool.workerpool.
    RequestWorkerpool = 0x12,
    /// 0x13: app.datasetrestrict admits the dataset (the zero address without dataset).
    AppDatasetRestrict = 0x13,
    /// 0x14: app.workerpoolrestrict admits the workerpool.
    AppWorkerpoolRestrict = 0x14,
    /// 0x15: app.requesterrestrict admits the requester.
    AppRequesterRestrict = 0x15,
    /// 0x16: dataset.apprestrict admits the app.
    DatasetAppRestrict = 0x16,
    /// 0x17: dataset.workerpoolrestrict admits the workerpool.
    DatasetWorkerpoolRestrict = 0x17,
    /// 0x18: dataset.requesterrestrict admits the requester.
    DatasetRequesterRestrict = 0x18,
    /// 0x19: workerpool.apprestrict admits the app.
    WorkerpoolAppRestrict = 0x19,
    /// 0x1a: workerpool.datasetrestrict admits the dataset (the zero address without dataset).
    WorkerpoolDatasetRestrict = 0x1a,
    /// 0x1b: workerpool.requesterrestrict admits the requester.
    WorkerpoolRequesterRestrict = 0x1b,
    /// Dragon's own, NOT a PoCo code (PoCo has no such rule, and `matchOrders` never reverts with it): the
    /// workerpool's track record meets the request's minimum ([`crate::MinTrackRecord::admits`]). 0x3f is
    /// no PoCo code (PoCo's are 0x00-0x1b, and 0x20/0x21, 0x30/0x31, 0x40/0x41, 0x50 for its chain-state
    /// checks), and stays below 64 for [`Failures`]' bit set.
    TrackRecord = 0x3f,
}

impl Rule {
    /// Every rule, in the order `matchOrders` checks them, then Dragon's own.
    pub const ALL: [Rule; 20] = [
        Rule::Category,
        Rule::Trust,
        Rule::AppPrice,
        Rule::DatasetPrice,
        Rule::WorkerpoolPrice,
        Rule::TagSubset,
        Rule::TeeApp,
        Rule::App,
        Rule::Dataset,
        Rule::RequestWorkerpool,
        Rule::AppDatasetRestrict,
        Rule::AppWorkerpoolRestrict,
        Rule::AppRequesterRestrict,
        Rule::DatasetAppRestrict,
        Rule::DatasetWorkerpoolRestrict,
        Rule::DatasetRequesterRestrict,
        Rule::WorkerpoolAppRestrict,
        Rule::WorkerpoolDatasetRestrict,
        Rule::WorkerpoolRequesterRestrict,
        Rule::TrackRecord,
    ];

    /// The PoCo revert code (`iExecV5-matchOrders-0x{code:02x}`); Dragon's own rules take codes PoCo does not use.
    pub fn code(self) -> u8 {
        self as u8
    }
}

// A rule's code is its bit in `Failures`.
const _: () = {
    let mut i = 0;
    while i < Rule::ALL.len() {
        assert!((Rule::ALL[i] as u8) < 64, "a rule's code must fit a Failures bit");
        i += 1;
    }
};

/// Every rule the four orders fail, as a set (one bit per rule, at its code). Iterates in PoCo's order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Failures(u64);

impl Failures {
    /// No rule fails.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many rules fail.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn contains(self, rule: Rule) -> bool {
        self.0 & (1 << rule.code()) != 0
    }

    /// The first failing rule in PoCo's order: the one `matchOrders` would revert with.
    pub fn first(self) -> Option<Rule> {
        self.iter().next()
    }

    /// The failing rules, in PoCo's order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    fn fail_unless(&mut self, ok: bool, rule: Rule) {
        if !ok {
            self.0 |= 1 << rule.code();
        }
    }
}

impl std::fmt::Debug for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// THE rules of `matchOrders` (short of chain state): every rule the four orders fail, not only the first, so
/// that `explain` can say all that keeps a pair apart. [`check`] and the engine's matching read this function,
/// so the explanation and the matching cannot disagree. A new rule is a `Rule` variant (in [`Rule::ALL`], at a
/// code below 64) and one line here.
///
/// `dataset` is `None` for a dataset-less deal: its price and tag count as 0 and its address as the zero
/// address (so any non-zero `datasetrestrict` fails, and so does a request naming a dataset).
pub fn failures(
    app: &AppOrder,
    dataset: Option<&DatasetOrder>,
    workerpool: &WorkerpoolOrder,
    request: &RequestOrder,
) -> Failures {
    let (dataset_addr, dataset_price, dataset_tag) = match dataset {
        Some(d) => (d.dataset, d.price, d.tag),
        None => (Address::ZERO, Nrlc(0), Tag::ZERO),
    };
    let mut f = Failures::default();
    f.fail_unless(request.category == workerpool.category, Rule::Category);
    f.fail_unless(request.trust <= workerpool.trust, Rule::Trust);
    f.fail_unless(request.app_max_price >= app.price, Rule::AppPrice);
    f.fail_unless(request.dataset_max_price >= dataset_price, Rule::DatasetPrice);
    f.fail_unless(request.workerpool_max_price >= workerpool.price, Rule::WorkerpoolPrice);
    let union = app.tag.union(dataset_tag).union(request.tag);
    f.fail_unless(union.is_subset_of(&workerpool.tag), Rule::TagSubset);
    f.fail_unless(!union.has_tee() || app.tag.has_tee(), Rule::TeeApp);
    f.fail_unless(request.app == app.app, Rule::App);
    f.fail_unless(request.dataset == dataset_addr, Rule::Dataset);
    f.fail_unless(request.workerpool.admits(workerpool.workerpool), Rule::RequestWorkerpool);
    f.fail_unless(app.dataset_restrict.admits(dataset_addr), Rule::AppDatasetRestrict);
    f.fail_unless(app.workerpool_restrict.admits(workerpool.workerpool), Rule::AppWorkerpoolRestrict);
    f.fail_unless(app.requester_restrict.admits(request.requester), Rule::AppRequesterRestrict);
    if let Some(d) = dataset {
        f.fail_unless(d.app_restrict.admits(app.app), Rule::DatasetAppRestrict);
        f.fail_unless(d.workerpool_restrict.admits(workerpool.workerpool), Rule::DatasetWorkerpoolRestrict);
        f.fail_unless(d.requester_restrict.admits(request.requester), Rule::DatasetRequesterRestrict);
    }
    f.fail_unless(workerpool.app_restrict.admits(app.app), Rule::WorkerpoolAppRestrict);
    f.fail_unless(workerpool.dataset_restrict.admits(dataset_addr), Rule::WorkerpoolDatasetRestrict);
    f.fail_unless(workerpool.requester_restrict.admits(request.requester), Rule::WorkerpoolRequesterRestrict);
    f.fail_unless(request.min_record.admits(&workerpool.record), Rule::TrackRecord);
    f
}

/// Checks the four orders as PoCo's `matchOrders` would, short of chain state, and returns the first rule that
/// fails, in PoCo's order (the first of [`failures`]).
pub fn check(
    app: &AppOrder,
    dataset: Option<&DatasetOrder>,
    workerpool: &WorkerpoolOrder,
    request: &RequestOrder,
) -> Result<(), Rule> {
    failures(app, dataset, workerpool, request).first().map_or(Ok(()), Err)
}

/// Whether the four orders are compatible ([`check`] passes).
pub fn compatible(
    app: &AppOrder,
    dataset: Option<&DatasetOrder>,
    workerpool: &WorkerpoolOrder,
    request: &RequestOrder,
) -> bool {
    failures(app, dataset, workerpool, request).is_empty()
}

/// Necessary conditions on a (workerpool, request) pair (a prefilter, not a rule: [`failures`] decides), used by the engine to skip a workerpool order before
/// looking at app and dataset orders. Every condition here is implied by [`check`] (because `check` requires
/// `app.app == request.app` and `dataset.dataset == request.dataset`, restrictions naming the app or the dataset
/// can be tested against the request's fields).
pub(crate) fn pool_may_serve(w: &WorkerpoolOrder, r: &RequestOrder) -> bool {
    w.category == r.category
        && r.trust <= w.trust
        && r.workerpool_max_price >= w.price
        && r.tag.is_subset_of(&w.tag)
        && r.workerpool.admits(w.workerpool)
        && w.app_restrict.admits(r.app)
        && w.dataset_restrict.admits(r.dataset)
        && w.requester_restrict.admits(r.requester)
        && r.min_record.admits(&w.record)
}

/// Necessary conditions on an app order given the workerpool and request (implied by [`check`]).
pub(crate) fn app_may_serve(a: &AppOrder, w: &WorkerpoolOrder, r: &RequestOrder) -> bool {
    a.app == r.app
        && r.app_max_price >= a.price
        && a.tag.is_subset_of(&w.tag)
        && (a.tag.has_tee() || !r.tag.has_tee())
        && a.dataset_restrict.admits(r.dataset)
        && a.workerpool_restrict.admits(w.workerpool)
        && a.requester_restrict.admits(r.requester)
}
