//! Dragon's integration tests, compiled into one binary (one link, one shared PostgreSQL cluster).

mod bot;
mod chain;
mod cli;
mod client;
mod crash;
mod dialect;
mod ethers;
mod executor;
mod explorer;
mod faults;
mod feed;
mod fixtures;
mod harness;
mod hostile_client;
mod hostile_pool;
mod hostile_settle;
mod hostile_worker;
mod inputs;
mod market;
mod pool;
mod replay;
mod schemathesis;
mod sdk;
mod server;
mod settle;
mod track_records;
