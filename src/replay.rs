//! `dragon replay`: a market simulated from a stream of JSON lines, through the same engine the server runs.
//!
//! Input, one JSON object per line (blank lines skipped):
//! `{"type": "apporder" | "datasetorder" | "workerpoolorder" | "requestorder", "order": {...}}` (unsigned; the
//! hash is computed in the given domain), `{"type": "cancel", "orderHash": "0x..."}`, or
//! `{"type": "trackrecord", "workerpool": "0x...", "finished": n, "completed": m}` (a workerpool's track record,
//! which requests asking one in their params weigh: `docs/track-records.md`). An order already in the
//! book is ignored. Output: one JSON line per deal, in the order deals are formed. Every proposed deal is taken
//! as settled at once (confirmed), as if the chain accepted everything.

use crate::ids::OrderHash;
use crate::order::convert::engine_order;
use crate::order::{AnyOrder, Domain, OrderKind, json};
use dragon_matching::{Command, Engine, Event, RejectReason, Subject};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::{BufRead, Write};

/// A replay stopped on a bad line, or could not write its output.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: {message}")]
    Input { line: usize, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow, default)]
    order: Option<&'a RawValue>,
    #[serde(rename = "orderHash", default)]
    order_hash: Option<String>,
    #[serde(default)]
    workerpool: Option<String>,
    #[serde(default)]
    finished: Option<u64>,
    #[serde(default)]
    completed: Option<u64>,
}

fn kind_of(tag: &str) -> Option<OrderKind> {
    Some(match tag {
        "apporder" => OrderKind::App,
        "datasetorder" => OrderKind::Dataset,
        "workerpoolorder" => OrderKind::Workerpool,
        "requestorder" => OrderKind::Request,
        _ => return None,
    })
}

/// Replays `input` into `output`; rejected commands other than duplicates are reported on `warnings`.
pub fn replay(
    domain: &Domain,
    input: impl BufRead,
    mut output: impl Write,
    mut warnings: impl Write,
) -> Result<usize, ReplayError> {
    let mut engine = Engine::new();
    let mut events = Vec::new();
    let mut confirms = Vec::new();
    let mut deals = 0;
    for (i, text) in input.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => ReplayError::Input { line, message: "not valid UTF-8".into() },
            _ => ReplayError::Io(e),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ReplayError::Input { line, message };
        let parsed: Line<'_> = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON line: {e}")))?;
        let command = if parsed.kind == "cancel" {
            let hash = parsed.order_hash.ok_or_else(|| bad("cancel needs `orderHash`".into()))?;
            let hash = json::parse_bytes32(&hash).map_err(|e| bad(format!("field `orderHash`: {e}")))?;
            Command::Cancel(dragon_matching::OrderHash(hash.0))
        } else if parsed.kind == "trackrecord" {
            let need = || bad("trackrecord needs `workerpool`, `finished` and `completed`".into());
            let pool = parsed.workerpool.ok_or_else(need)?;
            let pool = json::parse_address(&pool).map_err(|e| bad(format!("field `workerpool`: {e}")))?;
            let (finished, completed) = (parsed.finished.ok_or_else(need)?, parsed.completed.ok_or_else(need)?);
            if completed > finished {
                return Err(bad(format!("completed ({completed}) is more than finished ({finished})")));
            }
            let record = dragon_matching::TrackRecord { finished, completed };
            Command::TrackRecord { workerpool: dragon_matching::Address(pool.0.0), record }
        } else {
            let kind = kind_of(&parsed.kind).ok_or_else(|| {
                bad(format!(
                    "unknown type `{}` (apporder, datasetorder, workerpoolorder, requestorder, cancel or trackrecord)",
                    parsed.kind
                ))
            })?;
            let raw = parsed.order.ok_or_else(|| bad(format!("{} needs `order`", parsed.kind)))?;
            let order =
                AnyOrder::from_json(kind, raw.get()).map_err(|e| bad(format!("invalid {}: {e}", parsed.kind)))?;
            let hash = order.order_hash(domain);
            Command::Add(engine_order(&order, hash, order.volume()).map_err(|e| bad(e.to_string()))?)
        };
        events.clear();
        engine.apply(command, &mut events);
        for event in &events {
            match event {
                Event::DealProposed(deal) => {
                    deals += 1;
                    let hex = |h: dragon_matching::OrderHash| OrderHash(h.0.into()).to_string();
                    let line = serde_json::json!({
                        "apporderHash": hex(deal.app),
                        "datasetorderHash": deal.dataset.map(hex),
                        "workerpoolorderHash": hex(deal.workerpool),
                        "requestorderHash": hex(deal.request),
                        "volume": deal.volume,
                    });
                    writeln!(output, "{line}")?;
                    confirms.push(Command::Confirm(deal.id));
                }
                Event::Rejected { reason: RejectReason::DuplicateOrder, .. } => {}
                Event::Rejected { subject, reason } => {
                    let what = match subject {
                        Subject::Order(h) => OrderHash(h.0.into()).to_string(),
                        Subject::Proposal(p) => format!("proposal {}", p.0),
                    };
                    writeln!(warnings, "line {line}: ignored {what}: {reason:?}")?;
                }
                _ => {}
            }
        }
        for c in confirms.drain(..) {
            engine.apply(c, &mut events);
        }
    }
    output.flush()?;
    Ok(deals)
}
