//! `dragon order publish|unpublish` (owners' offers and requesters' requests, to the exchange) and
//! `dragon orderbook` (the best offers of each category).

use super::amount;
use super::config::{Conn, Ctx};
use super::error::{CliError, input};
use crate::money::Nrlc;
use crate::order::{AnyOrder, OrderKind, json::parse_bytes32};
use alloy::primitives::B256;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Order kind.
    #[arg(long, value_enum)]
    pub kind: OrderKind,
    /// File with one order as a JSON object (signed, or unsigned: it is then signed with the key), or -.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct UnpublishArgs {
    /// Order kind.
    #[arg(long, value_enum)]
    pub kind: OrderKind,
    /// The order's hash; or --all.
    #[arg(value_parser = parse_bytes32, required_unless_present = "all")]
    pub hash: Option<B256>,
    /// Every open order of this kind the key signed, for the asset given by --asset (the requester for requests).
    #[arg(long, conflicts_with = "hash", requires = "asset")]
    pub all: bool,
    /// The app, dataset or workerpool whose orders --all takes out.
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub asset: Option<alloy::primitives::Address>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `dragon order publish|unpublish`.
#[derive(Debug)]
pub enum OrderWrite {
    Publish(PublishArgs),
    Unpublish(UnpublishArgs),
}

pub async fn write(cmd: OrderWrite) -> Result<(), CliError> {
    match cmd {
        OrderWrite::Publish(a) => {
            let ctx = Ctx::resolve(&a.conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            let text = super::io::read_input(&a.file)?;
            let mut order =
                AnyOrder::from_json(a.kind, &text).map_err(|e| input(format!("invalid {} order: {e}", a.kind)))?;
            let domain = Ctx::domain(&d);
            if order.sign().is_none() {
                order.sign_with(&domain, &key).map_err(|e| super::error::failure(format!("signing failed: {e}")))?;
            }
            let ex = ctx.exchange(&d)?;
            let rec = ex.publish(&key, &order).await.map_err(|r| r.into_cli(&ex.base))?;
            println!("{}", rec["published"]["orderHash"].as_str().unwrap_or_default());
            Ok(())
        }
        OrderWrite::Unpublish(a) => {
            let ctx = Ctx::resolve(&a.conn)?;
            let key = ctx.key()?;
            let d = ctx.deployment()?;
            let ex = ctx.exchange(&d)?;
            let body = match (a.hash, a.asset) {
                (Some(h), _) => json!({"target": "unpublish_orderHash", "orderHash": h.to_string()}),
                (None, Some(asset)) => {
                    let field = match a.kind {
                        OrderKind::App => "app",
                        OrderKind::Dataset => "dataset",
                        OrderKind::Workerpool => "workerpool",
                        OrderKind::Request => "requester",
                    };
                    json!({"target": "unpublish_all", field: asset.to_checksum(None)})
                }
                (None, None) => return Err(input("give the order's hash, or --all --asset ADDRESS")),
            };
            let v = ex.unpublish(&key, a.kind, &body).await?;
            for h in v["unpublished"].as_array().into_iter().flatten() {
                println!("{}", h.as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub struct OrderbookArgs {
    /// Only this category.
    #[arg(long)]
    pub category: Option<u64>,
    /// Offers shown per category.
    #[arg(long, default_value_t = 5)]
    pub depth: usize,
    /// Include the offers restricted to this app (the exchange lists a restricted offer only to those who name
    /// what it is restricted to).
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub app: Option<alloy::primitives::Address>,
    #[command(flatten)]
    pub conn: Conn,
}

/// A decimal string or number of a record as nRLC.
pub fn nrlc_of(v: &Value) -> Nrlc {
    let n = match v {
        Value::String(s) => crate::wire::json::parse_u256(s).ok(),
        Value::Number(n) => n.as_u64().map(alloy::primitives::U256::from),
        _ => None,
    };
    Nrlc(n.unwrap_or_default())
}

fn short(s: &str) -> String {
    if s.len() > 14 { format!("{}…{}", &s[..8], &s[s.len() - 4..]) } else { s.to_owned() }
}

pub async fn orderbook(a: OrderbookArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let d = ctx.deployment()?;
    let ex = ctx.exchange(&d)?;
    let cats = ex.get("/categories?pageSize=1000").await?;
    let mut rows: Vec<[String; 9]> = Vec::new();
    for c in cats["categories"].as_array().into_iter().flatten() {
        let id = c["catid"].as_u64().unwrap_or_default();
        if a.category.is_some_and(|want| want != id) {
            continue;
        }
        let app = a.app.map(|x| format!("&app={x:#x}")).unwrap_or_default();
        let page =
            ex.get(&format!("/workerpoolorders?category={id}&pageSize={}{app}", a.depth.clamp(10, 1000))).await?;
        let orders = page["orders"].as_array().cloned().unwrap_or_default();
        let name = format!("{id} {}", c["name"].as_str().unwrap_or_default());
        if orders.is_empty() {
            let none = || "-".to_string();
            rows.push([name.clone(), none(), none(), none(), none(), "no offer".into(), none(), none(), String::new()]);
        }
        for o in orders.iter().take(a.depth) {
            let price = nrlc_of(&o["order"]["workerpoolprice"]);
            rows.push([
                name.clone(),
                amount::rlc(price),
                price.0.to_string(),
                o["remaining"].to_string(),
                nrlc_of(&o["order"]["trust"]).0.to_string(),
                o["order"]["workerpool"].as_str().unwrap_or_default().to_owned(),
                track_record(&o["trackRecord"]["allTime"]),
                track_record(&o["trackRecord"]["last30Days"]),
                short(o["orderHash"].as_str().unwrap_or_default()),
            ]);
        }
    }
    if rows.is_empty() {
        return Err(input(match a.category {
            Some(c) => format!("unknown category {c}: the hub has no such category"),
            None => "the hub has no category".into(),
        }));
    }
    print_table(
        &[
            "CATEGORY",
            "PRICE (RLC)",
            "PRICE (nRLC)",
            "REMAINING",
            "TRUST",
            "WORKERPOOL",
            "TRACK RECORD",
            "LAST 30 DAYS",
            "ORDER",
        ],
        &rows,
    );
    Ok(())
}

/// A window of a workerpool's track record (`docs/track-records.md`) in one cell: completed of finished tasks,
/// the share, claimed and failed ones, and the median time from deal to finalize; `-` from an exchange that
/// does not give it.
fn track_record(f: &Value) -> String {
    let n = |k: &str| f[k].as_u64();
    let (Some(completed), Some(finished), Some(claimed), Some(failed)) =
        (n("completed"), n("finished"), n("claimed"), n("failed"))
    else {
        return "-".into();
    };
    if finished == 0 {
        return format!("no task finished ({} bought)", n("tasks").unwrap_or(0));
    }
    let median = match n("medianSecondsToFinalize") {
        Some(s) => format!(", median {s} s"),
        None => String::new(),
    };
    format!(
        "{completed}/{finished} completed ({:.1}%), {claimed} claimed, {failed} failed{median}",
        completed as f64 * 100.0 / finished as f64
    )
}

fn print_table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) {
    let mut width = head.map(|h| h.chars().count());
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}
