//! Dragon's integration tests, compiled into one binary (one link, one shared PostgreSQL cluster).

mod chain;
mod cli;
mod ethers;
mod feed;
mod fixtures;
mod harness;
mod replay;
mod server;
