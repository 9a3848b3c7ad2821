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
    /// workerpool's track record meets the request's minimum ([`crate::MinTrackRecord::admits`]). 0xd0 lies
    /// outside PoCo's codes.
    TrackRecord = 0xd0,
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

    /// The PoCo revert code (`iExecV5-matchOrders-0x{code:02x}`); Dragon's own rule has a code outside PoCo's.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Checks the four orders as PoCo's `matchOrders` would, short of chain state, and returns the first rule that
/// fails, in PoCo's order. `dataset` is `None` for a dataset-less deal: its price and tag count as 0 and its
/// address as the zero address (so any non-zero `datasetrestrict` fails, and so does a request naming a dataset).
pub fn check(
    app: &AppOrder,
    dataset: Option<&DatasetOrder>,
    workerpool: &WorkerpoolOrder,
    request: &RequestOrder,
) -> Result<(), Rule> {
    let (dataset_addr, dataset_price, dataset_tag) = match dataset {
        Some(d) => (d.dataset, d.price, d.tag),
        None => (Address::ZERO, Nrlc(0), Tag::ZERO),
    };
    let fail = |ok: bool, rule: Rule| if ok { Ok(()) } else { Err(rule) };
    fail(request.category == workerpool.category, Rule::Category)?;
    fail(request.trust <= workerpool.trust, Rule::Trust)?;
    fail(request.app_max_price >= app.price, Rule::AppPrice)?;
    fail(request.dataset_max_price >= dataset_price, Rule::DatasetPrice)?;
    fail(request.workerpool_max_price >= workerpool.price, Rule::WorkerpoolPrice)?;
    let union = app.tag.union(dataset_tag).union(request.tag);
    fail(union.is_subset_of(&workerpool.tag), Rule::TagSubset)?;
    fail(!union.has_tee() || app.tag.has_tee(), Rule::TeeApp)?;
    fail(request.app == app.app, Rule::App)?;
    fail(request.dataset == dataset_addr, Rule::Dataset)?;
    fail(request.workerpool.admits(workerpool.workerpool), Rule::RequestWorkerpool)?;
    fail(app.dataset_restrict.admits(dataset_addr), Rule::AppDatasetRestrict)?;
    fail(app.workerpool_restrict.admits(workerpool.workerpool), Rule::AppWorkerpoolRestrict)?;
    fail(app.requester_restrict.admits(request.requester), Rule::AppRequesterRestrict)?;
    if let Some(d) = dataset {
        fail(d.app_restrict.admits(app.app), Rule::DatasetAppRestrict)?;
        fail(d.workerpool_restrict.admits(workerpool.workerpool), Rule::DatasetWorkerpoolRestrict)?;
        fail(d.requester_restrict.admits(request.requester), Rule::DatasetRequesterRestrict)?;
    }
    fail(workerpool.app_restrict.admits(app.app), Rule::WorkerpoolAppRestrict)?;
    fail(workerpool.dataset_restrict.admits(dataset_addr), Rule::WorkerpoolDatasetRestrict)?;
    fail(workerpool.requester_restrict.admits(request.requester), Rule::WorkerpoolRequesterRestrict)?;
    fail(request.min_record.admits(&workerpool.record), Rule::TrackRecord)?;
    Ok(())
}

/// Whether the four orders are compatible ([`check`] passes).
pub fn compatible(
    app: &AppOrder,
    dataset: Option<&DatasetOrder>,
    workerpool: &WorkerpoolOrder,
    request: &RequestOrder,
) -> bool {
    check(app, dataset, workerpool, request).is_ok()
}

/// Necessary conditions on a (workerpool, request) pair, used by the engine to skip a workerpool order before
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
