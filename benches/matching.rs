//! Matching engine benchmarks of the root package (`cargo bench --bench matching`). The code lives in
//! `matching/benches/engine.rs`, runnable on its own as `cargo bench -p dragon-matching --bench engine`.
#![allow(dead_code)]

include!("../matching/benches/engine.rs");
