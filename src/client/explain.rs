//! `dragon explain <hash>`: why an order does not match, as the exchange's engine sees it (issue 21). The same
//! text is what `dragon submit` and `dragon run` print when nothing matched in time.

use super::config::{Conn, Ctx};
use super::error::{CliError, input};
use super::exchange::{Exchange, Refusal};
use crate::money::Nrlc;
use crate::order::OrderKind;
use crate::order::json::parse_bytes32;
use alloy::primitives::B256;
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The order's hash (any kind).
    #[arg(value_parser = parse_bytes32)]
    pub hash: B256,
    /// Print the exchange's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// The explanation of a published order, whatever its kind; `None` when the exchange knows no such order.
pub async fn fetch(ex: &Exchange, hash: &str) -> Result<Option<Value>, CliError> {
    for kind in [OrderKind::Request, OrderKind::Workerpool, OrderKind::App, OrderKind::Dataset] {
        match ex.try_get(&format!("/{kind}orders/{hash}/explain")).await {
            Ok(v) => return Ok(Some(v)),
            Err(Refusal::Refused { status: 404, .. }) => {}
            Err(r) => return Err(r.into_cli(&ex.base)),
        }
    }
    Ok(None)
}

fn short(hash: &str) -> String {
    if hash.len() == 66 { format!("{}…{}", &hash[..10], &hash[62..]) } else { hash.to_owned() }
}

fn price(v: &Value) -> String {
    let n = Nrlc::from_u64(v.as_u64().unwrap_or(0));
    super::amount::show(n)
}

/// The explanation as text: the order, whether it would match, then its best combinations, each with what
/// blocks it.
pub fn render(e: &Value) -> String {
    let kind = e["kind"].as_str().unwrap_or("?");
    let mut out = format!(
        "{kind}order {} ({}, {} left to match): ",
        e["orderHash"].as_str().unwrap_or("?"),
        e["status"].as_str().unwrap_or("?"),
        e["remaining"]
    );
    let combinations = e["combinations"].as_array().cloned().unwrap_or_default();
    if e["matches"].as_bool() == Some(true) {
        out.push_str("it matches");
    } else if combinations.is_empty() {
        out.push_str("nothing to pair it with");
    } else {
        out.push_str("no combination matches; the best ones, and what blocks each:");
    }
    for (i, c) in combinations.iter().enumerate() {
        let members: Vec<String> = ["workerpoolorder", "apporder", "datasetorder", "requestorder"]
            .iter()
            .filter(|m| m.trim_end_matches("order") != kind && c[**m].is_object())
            .map(|m| {
                let what = if *m == "requestorder" { "max price" } else { "at" };
                format!("{m} {} {what} {}", short(c[*m]["orderHash"].as_str().unwrap_or("?")), price(&c[*m]["price"]))
            })
            .collect();
        let members = if members.is_empty() { "no counter-order".to_owned() } else { members.join(", ") };
        out.push_str(&format!("\n  {}. {members}", i + 1));
        let blockers = c["blockers"].as_array().cloned().unwrap_or_default();
        if blockers.is_empty() {
            out.push_str("\n     - nothing blocks it: the engine matches it");
        }
        for b in blockers {
            out.push_str(&format!(
                "\n     - {}: {}",
                b["code"].as_str().unwrap_or("?"),
                b["message"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

pub async fn explain(a: ExplainArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let d = ctx.deployment()?;
    let ex = ctx.exchange(&d)?;
    let hash = format!("{:#x}", a.hash);
    let e = fetch(&ex, &hash).await?.ok_or_else(|| input(format!("the exchange knows no order {hash}")))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
    } else {
        println!("{}", render(&e));
    }
    Ok(())
}
