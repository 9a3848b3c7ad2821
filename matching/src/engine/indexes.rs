//! The by-app and by-dataset indices of requests: which requests a new app or dataset order may serve.
//!
//! App and dataset orders are not bound to a category, so the per-category books cannot tell which requests name
//! an app; these indices do, per category in bid priority, holding exactly the live requests (parked or not).
//! `books` keeps them in step with the books, and walks them to park or unpark an app's requests.

use std::collections::BTreeMap;

use crate::book::Ix;
use crate::hash::HashMap;
use crate::types::Address;

use super::orders::BidKey;

/// Requests of one app (or dataset), per category, in bid priority: one flat tree keyed by (price, arrival) per
/// category, holding exactly the live requests. Most prices hold one or two requests of a given app, so a tree of
/// price levels (each a queue) would cost an allocation and one more cold node per add on a big book.
pub(super) type RequestIndex = BTreeMap<u64, IndexBook>;

/// One category of a request index, with its best entry kept beside the tree: a new app order looks at it in every
/// category its app has requests in, and usually stops there (no request of the app reaches the best ask).
#[derive(Clone, Debug, Default)]
pub(super) struct IndexBook {
    pub(super) first: Option<BidKey>,
    pub(super) tree: BTreeMap<BidKey, (Ix, u32)>,
}

/// Adds a live request (at its bid priority `key`, with its mark `m`) to the index of `addr`.
pub(super) fn index_insert(
    map: &mut HashMap<Address, RequestIndex>,
    addr: Address,
    cat: u64,
    key: BidKey,
    i: Ix,
    m: u32,
) {
    let book = map.entry(addr).or_default().entry(cat).or_default();
    if book.first.is_none_or(|f| key < f) {
        book.first = Some(key);
    }
    book.tree.insert(key, (i, m));
}

/// Removes a request from the index of `addr`; empty categories and addresses are dropped, so that a new app order
/// never walks a category where its app has no request left.
pub(super) fn index_remove(map: &mut HashMap<Address, RequestIndex>, addr: &Address, cat: u64, key: &BidKey) {
    if let Some(index) = map.get_mut(addr) {
        if let Some(book) = index.get_mut(&cat) {
            book.tree.remove(key);
            if book.first == Some(*key) {
                book.first = book.tree.keys().next().copied();
            }
            if book.tree.is_empty() {
                index.remove(&cat);
            }
        }
        if index.is_empty() {
            map.remove(addr);
        }
    }
}
