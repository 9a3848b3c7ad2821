//! Each compatibility rule, both outcomes: from a compatible base (with and without dataset), one change makes
//! exactly that rule pass at its limit and another makes it fail, and `check` names the rule.

use dragon_matching::{AppOrder, DatasetOrder, Nrlc, RequestOrder, Rule, Tag, WorkerpoolOrder, check};

use crate::support::{addr, app, dataset, pool, request, tag};

#[derive(Clone, Copy)]
struct Quad {
    a: AppOrder,
    d: Option<DatasetOrder>,
    w: WorkerpoolOrder,
    r: RequestOrder,
}

impl Quad {
    fn check(&self) -> Result<(), Rule> {
        check(&self.a, self.d.as_ref(), &self.w, &self.r)
    }
    fn ds(&mut self) -> &mut DatasetOrder {
        self.d.as_mut().expect("base with dataset")
    }
}

fn with_dataset() -> Quad {
    Quad { a: app(1, 1, 5, 1), d: Some(dataset(2, 3, 5, 1)), w: pool(3, 5, 5, 1, 2), r: request(4, 1, 3, 5, 1, 2) }
}

fn without_dataset() -> Quad {
    Quad { d: None, r: request(4, 1, 0, 5, 1, 2), ..with_dataset() }
}

/// `pass` must keep the base compatible, `fail` must make exactly `rule` fail.
fn both(base: Quad, rule: Rule, pass: impl Fn(&mut Quad), fail: impl Fn(&mut Quad)) {
    assert_eq!(base.check(), Ok(()), "base is compatible");
    let mut p = base;
    pass(&mut p);
    assert_eq!(p.check(), Ok(()), "{rule:?} should pass");
    let mut f = base;
    fail(&mut f);
    assert_eq!(f.check(), Err(rule), "{rule:?} should fail");
    assert_eq!(rule.code(), rule as u8);
}

#[test]
fn rule_00_category() {
    both(
        with_dataset(),
        Rule::Category,
        |q| {
            q.w.category = 7;
            q.r.category = 7;
        },
        |q| q.w.category = 3,
    );
}

#[test]
fn rule_02_trust() {
    both(
        with_dataset(),
        Rule::Trust,
        |q| {
            q.r.trust = 4;
            q.w.trust = 4;
        },
        |q| {
            q.r.trust = 5;
            q.w.trust = 4;
        },
    );
}

#[test]
fn rule_03_app_price() {
    both(with_dataset(), Rule::AppPrice, |q| q.r.app_max_price = Nrlc(5), |q| q.r.app_max_price = Nrlc(4));
}

#[test]
fn rule_04_dataset_price() {
    both(with_dataset(), Rule::DatasetPrice, |q| q.r.dataset_max_price = Nrlc(5), |q| q.r.dataset_max_price = Nrlc(4));
    // Without dataset the price counts as 0: any maximum passes.
    both(without_dataset(), Rule::AppPrice, |q| q.r.dataset_max_price = Nrlc(0), |q| q.r.app_max_price = Nrlc(0));
}

#[test]
fn rule_05_workerpool_price() {
    both(
        with_dataset(),
        Rule::WorkerpoolPrice,
        |q| q.r.workerpool_max_price = Nrlc(5),
        |q| q.r.workerpool_max_price = Nrlc(4),
    );
}

#[test]
fn rule_06_tag_subset() {
    // Each of the app, dataset and request tags enters the union.
    both(
        with_dataset(),
        Rule::TagSubset,
        |q| {
            q.w.tag = tag(0b1110);
            q.a.tag = tag(0b0010);
            q.ds().tag = tag(0b0100);
            q.r.tag = tag(0b1000);
        },
        |q| {
            q.w.tag = tag(0b0110);
            q.a.tag = tag(0b0010);
            q.ds().tag = tag(0b0100);
            q.r.tag = tag(0b1000);
        },
    );
    both(with_dataset(), Rule::TagSubset, |q| q.w.tag = tag(0b10), |q| q.ds().tag = tag(0b10));
    both(with_dataset(), Rule::TagSubset, |q| q.a.tag = Tag::ZERO, |q| q.a.tag = tag(0b10));
    let mut high = Tag::ZERO;
    high.0[0] = 0x80;
    both(
        with_dataset(),
        Rule::TagSubset,
        move |q| {
            q.w.tag = high;
            q.r.tag = high;
        },
        move |q| q.r.tag = high,
    );
}

#[test]
fn rule_07_tee_needs_tee_app() {
    both(
        with_dataset(),
        Rule::TeeApp,
        |q| {
            q.w.tag = Tag::TEE;
            q.r.tag = Tag::TEE;
            q.a.tag = Tag::TEE;
        },
        |q| {
            q.w.tag = Tag::TEE;
            q.r.tag = Tag::TEE;
        },
    );
    // The TEE bit may also come from the dataset's tag.
    both(
        with_dataset(),
        Rule::TeeApp,
        |q| {
            q.w.tag = Tag::TEE;
            q.a.tag = Tag::TEE;
        },
        |q| {
            q.w.tag = Tag::TEE;
            q.ds().tag = Tag::TEE;
        },
    );
}

#[test]
fn rule_10_app() {
    both(
        with_dataset(),
        Rule::App,
        |q| {
            q.a.app = addr(2);
            q.r.app = addr(2);
        },
        |q| q.a.app = addr(2),
    );
}

#[test]
fn rule_11_dataset() {
    both(
        with_dataset(),
        Rule::Dataset,
        |q| {
            q.ds().dataset = addr(4);
            q.r.dataset = addr(4);
        },
        |q| q.ds().dataset = addr(4),
    );
    // A request naming a dataset cannot match without one, and one naming none cannot match with one.
    both(without_dataset(), Rule::Dataset, |_| {}, |q| q.r.dataset = addr(3));
    both(with_dataset(), Rule::Dataset, |_| {}, |q| q.r.dataset = addr(0));
}

#[test]
fn rule_12_request_workerpool() {
    both(with_dataset(), Rule::RequestWorkerpool, |q| q.r.workerpool = addr(5), |q| q.r.workerpool = addr(6));
}

#[test]
fn rule_13_app_dataset_restrict() {
    both(
        with_dataset(),
        Rule::AppDatasetRestrict,
        |q| q.a.dataset_restrict = addr(3),
        |q| q.a.dataset_restrict = addr(4),
    );
    // Dataset-less: the zero address is checked, so any non-zero restriction blocks the deal.
    both(
        without_dataset(),
        Rule::AppDatasetRestrict,
        |q| q.a.dataset_restrict = addr(0),
        |q| q.a.dataset_restrict = addr(3),
    );
}

#[test]
fn rule_14_app_workerpool_restrict() {
    both(
        with_dataset(),
        Rule::AppWorkerpoolRestrict,
        |q| q.a.workerpool_restrict = addr(5),
        |q| q.a.workerpool_restrict = addr(6),
    );
}

#[test]
fn rule_15_app_requester_restrict() {
    both(
        with_dataset(),
        Rule::AppRequesterRestrict,
        |q| q.a.requester_restrict = addr(200),
        |q| q.a.requester_restrict = addr(201),
    );
}

#[test]
fn rule_16_dataset_app_restrict() {
    both(
        with_dataset(),
        Rule::DatasetAppRestrict,
        |q| q.ds().app_restrict = addr(1),
        |q| q.ds().app_restrict = addr(2),
    );
}

#[test]
fn rule_17_dataset_workerpool_restrict() {
    both(
        with_dataset(),
        Rule::DatasetWorkerpoolRestrict,
        |q| q.ds().workerpool_restrict = addr(5),
        |q| q.ds().workerpool_restrict = addr(6),
    );
}

#[test]
fn rule_18_dataset_requester_restrict() {
    both(
        with_dataset(),
        Rule::DatasetRequesterRestrict,
        |q| q.ds().requester_restrict = addr(200),
        |q| q.ds().requester_restrict = addr(201),
    );
}

#[test]
fn rule_19_workerpool_app_restrict() {
    both(with_dataset(), Rule::WorkerpoolAppRestrict, |q| q.w.app_restrict = addr(1), |q| q.w.app_restrict = addr(2));
}

#[test]
fn rule_1a_workerpool_dataset_restrict() {
    both(
        with_dataset(),
        Rule::WorkerpoolDatasetRestrict,
        |q| q.w.dataset_restrict = addr(3),
        |q| q.w.dataset_restrict = addr(4),
    );
    both(
        without_dataset(),
        Rule::WorkerpoolDatasetRestrict,
        |q| q.w.dataset_restrict = addr(0),
        |q| q.w.dataset_restrict = addr(3),
    );
}

#[test]
fn rule_1b_workerpool_requester_restrict() {
    both(
        with_dataset(),
        Rule::WorkerpoolRequesterRestrict,
        |q| q.w.requester_restrict = addr(200),
        |q| q.w.requester_restrict = addr(201),
    );
}

#[test]
fn first_failing_rule_in_poco_order() {
    let mut q = with_dataset();
    q.w.requester_restrict = addr(201);
    q.r.trust = 9;
    assert_eq!(q.check(), Err(Rule::Trust));
    q.r.trust = 0;
    assert_eq!(q.check(), Err(Rule::WorkerpoolRequesterRestrict));
    let codes: Vec<u8> = Rule::ALL.iter().map(|r| r.code()).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]), "ALL is in check order");
    assert_eq!(codes.len(), 20);
}

/// Dragon's own rule: 95% over at least 20 finished tasks passes at exactly 19 of 20, fails at 18 of 20 and at
/// 19 of 19 (too few tasks); no requirement admits a workerpool without history.
#[test]
fn rule_d0_minimum_track_record() {
    use dragon_matching::{MinTrackRecord, TrackRecord};
    let need = MinTrackRecord { tasks: 20, completed_bp: 9500 };
    both(
        with_dataset(),
        Rule::TrackRecord,
        |q| {
            q.r.min_record = need;
            q.w.record = TrackRecord { finished: 20, completed: 19 };
        },
        |q| {
            q.r.min_record = need;
            q.w.record = TrackRecord { finished: 20, completed: 18 };
        },
    );
    both(
        without_dataset(),
        Rule::TrackRecord,
        |q| q.w.record = TrackRecord::default(),
        |q| {
            q.r.min_record = need;
            q.w.record = TrackRecord { finished: 19, completed: 19 };
        },
    );
    assert_ne!(Rule::TrackRecord.code(), 0x1c, "not a PoCo code");
}
