//! Orders for tests: random ones from a seeded generator, plus the extremes (all zero, all maximal).

use alloy::primitives::{Address, B256, U256};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, DatasetOrder, OrderKind, RequestOrder, WorkerpoolOrder};

/// splitmix64: deterministic, no dependency, good enough to vary test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
    /// Zero, maximal, small, or any 256-bit value.
    pub fn u256(&mut self) -> U256 {
        match self.next() % 4 {
            0 => U256::ZERO,
            1 => U256::MAX,
            2 => U256::from(self.next() % 1000),
            _ => U256::from_be_bytes(self.bytes::<32>()),
        }
    }
    pub fn address(&mut self) -> Address {
        match self.next() % 3 {
            0 => Address::ZERO,
            1 => Address::repeat_byte(0xff),
            _ => Address::from(self.bytes::<20>()),
        }
    }
    pub fn b256(&mut self) -> B256 {
        match self.next() % 3 {
            0 => B256::ZERO,
            1 => B256::repeat_byte(0xff),
            _ => B256::from(self.bytes::<32>()),
        }
    }
    pub fn params(&mut self) -> String {
        const SAMPLES: [&str; 5] = [
            "",
            "{\"iexec_args\":\"--size 42\"}",
            "héllo wörld ✓ 世界 🐉",
            "\u{0}\u{7f}\"\\\n\t",
            "Ελληνικά, русский, עברית, العربية — a params string longer than one 32-byte word",
        ];
        SAMPLES[(self.next() % SAMPLES.len() as u64) as usize].to_owned()
    }
}

pub fn random_order(rng: &mut Rng, kind: OrderKind) -> AnyOrder {
    match kind {
        OrderKind::App => AnyOrder::App(AppOrder {
            app: rng.address(),
            appprice: Nrlc(rng.u256()),
            volume: rng.u256(),
            tag: rng.b256(),
            datasetrestrict: rng.address(),
            workerpoolrestrict: rng.address(),
            requesterrestrict: rng.address(),
            salt: rng.b256(),
            sign: None,
        }),
        OrderKind::Dataset => AnyOrder::Dataset(DatasetOrder {
            dataset: rng.address(),
            datasetprice: Nrlc(rng.u256()),
            volume: rng.u256(),
            tag: rng.b256(),
            apprestrict: rng.address(),
            workerpoolrestrict: rng.address(),
            requesterrestrict: rng.address(),
            salt: rng.b256(),
            sign: None,
        }),
        OrderKind::Workerpool => AnyOrder::Workerpool(WorkerpoolOrder {
            workerpool: rng.address(),
            workerpoolprice: Nrlc(rng.u256()),
            volume: rng.u256(),
            tag: rng.b256(),
            category: rng.u256(),
            trust: rng.u256(),
            apprestrict: rng.address(),
            datasetrestrict: rng.address(),
            requesterrestrict: rng.address(),
            salt: rng.b256(),
            sign: None,
        }),
        OrderKind::Request => AnyOrder::Request(RequestOrder {
            app: rng.address(),
            appmaxprice: Nrlc(rng.u256()),
            dataset: rng.address(),
            datasetmaxprice: Nrlc(rng.u256()),
            workerpool: rng.address(),
            workerpoolmaxprice: Nrlc(rng.u256()),
            requester: rng.address(),
            volume: rng.u256(),
            tag: rng.b256(),
            category: rng.u256(),
            trust: rng.u256(),
            beneficiary: rng.address(),
            callback: rng.address(),
            params: rng.params(),
            salt: rng.b256(),
            sign: None,
        }),
    }
}

/// An order of `kind` whose every number is 2^256-1, every address and bytes32 all 0xff, and non-ASCII params.
pub fn maximal_order(kind: OrderKind) -> AnyOrder {
    let mut o = random_order(&mut Rng::new(7), kind);
    let (m, a, b) = (U256::MAX, Address::repeat_byte(0xff), B256::repeat_byte(0xff));
    match &mut o {
        AnyOrder::App(x) => {
            (x.appprice, x.volume, x.app, x.tag, x.salt) = (Nrlc(m), m, a, b, b);
            (x.datasetrestrict, x.workerpoolrestrict, x.requesterrestrict) = (a, a, a);
        }
        AnyOrder::Dataset(x) => {
            (x.datasetprice, x.volume, x.dataset, x.tag, x.salt) = (Nrlc(m), m, a, b, b);
            (x.apprestrict, x.workerpoolrestrict, x.requesterrestrict) = (a, a, a);
        }
        AnyOrder::Workerpool(x) => {
            (x.workerpoolprice, x.volume, x.category, x.trust, x.workerpool, x.tag, x.salt) =
                (Nrlc(m), m, m, m, a, b, b);
            (x.apprestrict, x.datasetrestrict, x.requesterrestrict) = (a, a, a);
        }
        AnyOrder::Request(x) => {
            (x.appmaxprice, x.datasetmaxprice, x.workerpoolmaxprice) = (Nrlc(m), Nrlc(m), Nrlc(m));
            (x.volume, x.category, x.trust, x.tag, x.salt) = (m, m, m, b, b);
            (x.app, x.dataset, x.workerpool, x.requester, x.beneficiary, x.callback) = (a, a, a, a, a, a);
            x.params = "paramètres ✓ 🐉 ".repeat(5);
        }
    }
    o
}

/// The anvil/hardhat development keys 0 and 1: public test vectors.
pub const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const KEY1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
