//! One integration test binary (faster to build than one per file).

mod compat;
mod explain;
mod pipeline;
mod props;
mod reference;
mod scenarios;
mod support;
