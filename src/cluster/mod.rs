//! Several `dragon serve` instances on one PostgreSQL (issue 19).
//!
//! What one instance of the cluster owns at a time (the settler of a chain today; each category's book later)
//! is a lease in the store (`store/leases.rs`: the table, the fence and why it is correct). [`lease`] keeps one
//! lease for this process and says, through a `watch` channel, which tenure (if any) it holds; the owner of the
//! work (the settler) acts only while it holds one, and passes that tenure's [`Fence`] to every write it makes.

pub mod bus;
pub mod lease;
pub mod owner;
pub mod route;

pub use crate::store::leases::Fence;
pub use lease::{LeaseConfig, LeaseKeeper};
