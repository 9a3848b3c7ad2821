//! Matching engine benchmarks of the root package. The code lives in `matching/benches/engine.rs` (runnable on its
//! own as `cargo bench -p dragon-matching --bench engine`); this target wants `[[bench]] name = "matching"
//! harness = false` in the root `Cargo.toml`. Without that entry cargo builds it with the libtest harness, whose
//! own `main` replaces ours: hence the `allow(dead_code)`.
#![allow(dead_code)]

include!("../matching/benches/engine.rs");
