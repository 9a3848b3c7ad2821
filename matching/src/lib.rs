//! placeholder docs
pub mod compat;
pub mod engine;
pub mod pipeline;
pub mod types;

pub use compat::{Rule, check, compatible};
pub use engine::{
    CategoryDepth, Command, Deal, Engine, Event, Level, OrderState, ProposalId, RejectReason, Stats, Subject,
};
pub use types::{
    Address, AppOrder, DatasetOrder, Nrlc, Order, OrderHash, OrderKind, RequestOrder, Tag, ValueTooLarge,
    WorkerpoolOrder, u64_from_uint256,
};
