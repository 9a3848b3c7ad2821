//! Dragon: an order-book exchange for decentralized computing, compatible with iExec's PoCo protocol.
//!
//! Components (see `docs/architecture.md` for the path of an order):
//! - [`order`]: the four PoCo orders, their JSON, EIP-712 hashes and signatures;
//! - [`ids`], [`money`]: typed ids and nRLC amounts;
//! - `dragon_matching` (crate `matching/`): the pure matching engine; [`market`] runs it behind the publication
//!   rules, the group-commit sequencer and the event writer, and [`replay`] runs it over a stream of orders
//!   (`dragon replay`);
//! - [`store`]: PostgreSQL, with the versioned migrations of `schema/`;
//! - [`chain`]: the chain through alloy;
//! - [`cluster`]: several instances on one PostgreSQL: leases with epoch fencing, and who leads what;
//! - [`api`]: the REST API and its OpenAPI document; [`server`] composes them;
//! - [`feed`]: the public live feed (socket.io on `/ws`, plain WebSocket on `/feed`);
//! - [`config`]: the typed configuration of `dragon serve`;
//! - [`pool`], [`worker`]: the pool runtime (`dragon pool`, `dragon worker`) that runs deals through [`executor`];
//! - [`bot`]: the market maker of a workerpool (`dragon bot`): orders sized to the pool's free capacity;
//! - [`local`]: the local market (PostgreSQL cluster + anvil) used by `dragon local` and the tests;
//! - [`runtime`]: the shutdown signal and the log output of every long-running command;
//! - [`wire`]: how values go out to clients (ISO times, the JSON error body), shared by every layer that answers;
//! - [`cli`]: the `dragon` command; [`client`]: its requesters' and owners' commands (submit, wait, result...).

pub mod api;
pub mod bot;
pub mod chain;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod executor;
pub mod feed;
pub mod ids;
pub mod local;
pub mod market;
pub mod money;
pub mod order;
pub mod pool;
pub mod replay;
pub mod runtime;
pub mod server;
pub mod store;
pub mod wire;
pub mod worker;
