//! Test helpers: order builders and an independent compatibility predicate written from the PoCo table, not
//! from the crate's `compat` module.

use dragon_matching::{Address, AppOrder, DatasetOrder, Nrlc, OrderHash, RequestOrder, Tag, WorkerpoolOrder};

pub fn h(n: u64) -> OrderHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[31] = 0xee;
    OrderHash(b)
}

pub fn addr(n: u8) -> Address {
    if n == 0 { Address::ZERO } else { Address([n; 20]) }
}

/// A tag whose last byte is `bits` (bit 0 = TEE).
pub fn tag(bits: u8) -> Tag {
    let mut t = [0u8; 32];
    t[31] = bits;
    Tag(t)
}

pub fn app(n: u64, app_addr: u8, price: u64, volume: u64) -> AppOrder {
    AppOrder {
        hash: h(n),
        app: addr(app_addr),
        price: Nrlc(price),
        volume,
        tag: Tag::ZERO,
        dataset_restrict: Address::ZERO,
        workerpool_restrict: Address::ZERO,
        requester_restrict: Address::ZERO,
    }
}

pub fn dataset(n: u64, dataset_addr: u8, price: u64, volume: u64) -> DatasetOrder {
    DatasetOrder {
        hash: h(n),
        dataset: addr(dataset_addr),
        price: Nrlc(price),
        volume,
        tag: Tag::ZERO,
        app_restrict: Address::ZERO,
        workerpool_restrict: Address::ZERO,
        requester_restrict: Address::ZERO,
    }
}

pub fn pool(n: u64, pool_addr: u8, price: u64, volume: u64, category: u64) -> WorkerpoolOrder {
    WorkerpoolOrder {
        hash: h(n),
        workerpool: addr(pool_addr),
        price: Nrlc(price),
        volume,
        tag: Tag::ZERO,
        category,
        trust: 0,
        app_restrict: Address::ZERO,
        dataset_restrict: Address::ZERO,
        requester_restrict: Address::ZERO,
        record: Default::default(),
    }
}

pub fn request(n: u64, app_addr: u8, dataset_addr: u8, max_price: u64, volume: u64, category: u64) -> RequestOrder {
    RequestOrder {
        hash: h(n),
        app: addr(app_addr),
        app_max_price: Nrlc(max_price),
        dataset: addr(dataset_addr),
        dataset_max_price: Nrlc(max_price),
        workerpool: Address::ZERO,
        workerpool_max_price: Nrlc(max_price),
        requester: addr(200),
        volume,
        tag: Tag::ZERO,
        category,
        trust: 0,
        min_record: Default::default(),
    }
}

fn tag_or(a: &Tag, b: &Tag) -> [u8; 32] {
    std::array::from_fn(|i| a.0[i] | b.0[i])
}

fn admits(restrict: Address, who: Address) -> bool {
    restrict == Address::ZERO || restrict == who
}

/// Independent predicate: PoCo's matchOrders checks 00, 02-07, 10-1b, written directly from the table, and Dragon's
/// minimum track record (0x3f): enough finished tasks, and completed / finished at least the basis points asked.
pub fn poco_ok(a: &AppOrder, d: Option<&DatasetOrder>, w: &WorkerpoolOrder, r: &RequestOrder) -> bool {
    let zero = DatasetOrder {
        hash: OrderHash([0; 32]),
        dataset: Address::ZERO,
        price: Nrlc(0),
        volume: 0,
        tag: Tag::ZERO,
        app_restrict: Address::ZERO,
        workerpool_restrict: Address::ZERO,
        requester_restrict: Address::ZERO,
    };
    let dd = d.unwrap_or(&zero);
    let union = tag_or(&Tag(tag_or(&a.tag, &dd.tag)), &r.tag);
    let subset = (0..32).all(|i| union[i] & !w.tag.0[i] == 0);
    let tee_ok = union[31] & 1 == 0 || a.tag.0[31] & 1 == 1;
    r.category == w.category
        && r.trust <= w.trust
        && r.app_max_price.0 >= a.price.0
        && r.dataset_max_price.0 >= dd.price.0
        && r.workerpool_max_price.0 >= w.price.0
        && subset
        && tee_ok
        && r.app == a.app
        && r.dataset == dd.dataset
        && admits(r.workerpool, w.workerpool)
        && admits(a.dataset_restrict, dd.dataset)
        && admits(a.workerpool_restrict, w.workerpool)
        && admits(a.requester_restrict, r.requester)
        && admits(dd.app_restrict, a.app)
        && admits(dd.workerpool_restrict, w.workerpool)
        && admits(dd.requester_restrict, r.requester)
        && admits(w.app_restrict, a.app)
        && admits(w.dataset_restrict, dd.dataset)
        && admits(w.requester_restrict, r.requester)
        && w.record.finished >= r.min_record.tasks
        && (w.record.finished == 0
            || w.record.completed as f64 / w.record.finished as f64 >= f64::from(r.min_record.completed_bp) / 10_000.0)
}
