//! `dragon wait` and `dragon status`: where a request, a deal or a task stands, from the exchange's REST API
//! (the request's record and proposals, the deals of the request, each deal's tasks) and, to find a task's
//! deal, the hub. `wait` polls until every task is completed, one of them fails, or the time runs out; it
//! redraws one line per task on a terminal and prints a line per change otherwise.

use super::config::{Conn, Ctx};
use super::error::{CliError, chain_failure, failure, input};
use super::exchange::{Exchange, Refusal};
use crate::chain::contracts::hub::DragonHub;
use crate::chain::deploy::Deployment;
use crate::wire::json::parse_bytes32;
use alloy::primitives::B256;
use clap::Args;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// A request's hash, a deal id or a task id.
    #[arg(value_parser = parse_bytes32)]
    pub id: B256,
    /// Seconds to wait before giving up.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A request's hash, a deal id or a task id.
    #[arg(value_parser = parse_bytes32)]
    pub id: B256,
    #[command(flatten)]
    pub conn: Conn,
}

/// What is followed.
#[derive(Debug, Clone)]
pub enum Target {
    Request(String),
    Deal(String),
    /// A task, and its deal.
    Task(String, String),
}

/// Where things stand at one poll.
enum State {
    /// No deal yet (for a request).
    Unmatched,
    Running,
    /// Every task completed: their ids.
    Done(Vec<String>),
    Failed(CliError),
}

struct Snapshot {
    /// (key, text): one line per thing followed; a key keeps its place when its text changes.
    lines: Vec<(String, String)>,
    state: State,
}

/// Whether to draw the progress for a person.
pub fn interactive() -> bool {
    std::io::stdout().is_terminal()
}

fn stage(status: &str) -> &'static str {
    match status {
        "UNSET" => "waiting for the pool to start it",
        "ACTIVE" => "computing",
        "REVEALING" => "revealing the result",
        "COMPLETED" => "completed",
        "FAILED" => "failed",
        _ => "unknown",
    }
}

#[derive(Debug)]
pub struct Follow<'a> {
    ctx: &'a Ctx,
    ex: &'a Exchange,
    d: &'a Deployment,
}

impl<'a> Follow<'a> {
    pub fn new(ctx: &'a Ctx, ex: &'a Exchange, d: &'a Deployment) -> Self {
        Follow { ctx, ex, d }
    }

    /// What an id names: a request the exchange knows, a deal, or a task on chain.
    pub async fn identify(&self, id: B256) -> Result<Target, CliError> {
        let h = id.to_string();
        match self.ex.try_get(&format!("/requestorders/{h}")).await {
            Ok(_) => return Ok(Target::Request(h)),
            Err(Refusal::Refused { status: 404, .. }) => {}
            Err(r) => return Err(r.into_cli(&self.ex.base)),
        }
        match self.ex.try_get(&format!("/deals/{h}")).await {
            Ok(_) => return Ok(Target::Deal(h)),
            Err(Refusal::Refused { status: 404, .. }) => {}
            Err(r) => return Err(r.into_cli(&self.ex.base)),
        }
        let rpc = self.ctx.rpc()?;
        let t = DragonHub::new(self.d.hub, self.ctx.reader()?)
            .viewTask(id)
            .call()
            .await
            .map_err(|e| chain_failure(rpc, &e))?;
        if t.dealid != B256::ZERO {
            return Ok(Target::Task(h, t.dealid.to_string()));
        }
        Err(input(format!("unknown id {h}: neither a request nor a deal the exchange knows, nor a task on chain")))
    }

    /// The finer stage the pool's timeline gives (`RUNNING`, `COMPUTING`, `CONTRIBUTED`, ...), when the gateway
    /// (the pool's public URL) is known and answers.
    async fn pool_stage(&self, task: &str) -> Option<String> {
        let gateway = self.ctx.gateway().ok()?;
        let t = self.ex.peek(&format!("{gateway}/status/tasks/{task}")).await?;
        let last = t["events"].as_array()?.last()?;
        let status = last["status"].as_str()?;
        Some(if last.get("worker").is_some() { format!("replicate {status}") } else { status.to_owned() })
    }

    async fn deal_lines(
        &self,
        dealid: &str,
        only: Option<&str>,
        lines: &mut Vec<(String, String)>,
    ) -> Result<(Vec<String>, Vec<String>, usize), CliError> {
        let deal = self.ex.get(&format!("/deals/{dealid}")).await?;
        lines.push((dealid.to_owned(), format!("deal {dealid}")));
        let (mut done, mut failed, mut n) = (Vec::new(), Vec::new(), 0);
        for t in deal["tasks"].as_array().into_iter().flatten() {
            let id = t["taskid"].as_str().unwrap_or_default().to_owned();
            if only.is_some_and(|o| o != id) {
                continue;
            }
            n += 1;
            let status = t["status"].as_str().unwrap_or("?");
            let pool = match self.pool_stage(&id).await {
                Some(s) => format!(" (pool: {s})"),
                None => String::new(),
            };
            lines.push((id.clone(), format!("  task {} {id} {status}: {}{pool}", t["idx"], stage(status))));
            match status {
                "COMPLETED" => done.push(id),
                "FAILED" => failed.push(id),
                _ => {}
            }
        }
        Ok((done, failed, n))
    }

    async fn snapshot(&self, target: &Target) -> Result<Snapshot, CliError> {
        let mut lines = Vec::new();
        let (dealids, expected, only) = match target {
            Target::Request(h) => {
                let rec = match self.ex.try_get(&format!("/requestorders/{h}")).await {
                    Ok(r) => r,
                    Err(Refusal::Refused { status: 404, .. }) => {
                        return Err(input(format!("unknown request {h}: the exchange has no such order")));
                    }
                    Err(r) => return Err(r.into_cli(&self.ex.base)),
                };
                let status = rec["status"].as_str().unwrap_or("?").to_owned();
                let volume = usize::try_from(super::order::nrlc_of(&rec["order"]["volume"]).0).unwrap_or(1).max(1);
                let deals = self.ex.get(&format!("/deals?requestorderHash={h}&pageSize=100")).await?;
                let ids: Vec<String> = deals["deals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["dealid"].as_str().map(str::to_owned))
                    .collect();
                let header = format!("request {h} {status}, {} of {volume} left", rec["remaining"]);
                if ids.is_empty() {
                    let props = self.ex.get(&format!("/proposals?orderHash={h}")).await?;
                    let last = props["proposals"].as_array().and_then(|p| p.first()).cloned();
                    let pstatus = last.as_ref().and_then(|p| p["status"].as_str()).unwrap_or("");
                    let reason = last.as_ref().and_then(|p| p["reason"].as_str()).unwrap_or("").to_owned();
                    let what = match pstatus {
                        "proposed" | "submitted" => "matched, the deal is being settled on chain".to_owned(),
                        "settled" => "settled, waiting for the exchange to see the deal".to_owned(),
                        "failed" => format!("the last match failed: {reason}"),
                        _ => "waiting for a match".to_owned(),
                    };
                    lines.push((h.clone(), format!("{header}: {what}")));
                    let state = if status == "canceled" || status == "dead" {
                        let why = if reason.is_empty() { String::new() } else { format!(" (last match: {reason})") };
                        State::Failed(failure(format!("request {h} is {status} and was never matched{why}")))
                    } else {
                        State::Unmatched
                    };
                    return Ok(Snapshot { lines, state });
                }
                lines.push((h.clone(), header));
                (ids, Some(volume), None)
            }
            Target::Deal(d) => (vec![d.clone()], None, None),
            Target::Task(t, d) => (vec![d.clone()], Some(1), Some(t.clone())),
        };
        let (mut done, mut failed, mut n) = (Vec::new(), Vec::new(), 0);
        for d in &dealids {
            let (dn, fl, k) = self.deal_lines(d, only.as_deref(), &mut lines).await?;
            done.extend(dn);
            failed.extend(fl);
            n += k;
        }
        let state = if let Some(t) = failed.first() {
            State::Failed(failure(format!(
                "task {t} failed: it was claimed on chain after its deadline (the pool did not complete it)"
            )))
        } else if n > 0 && done.len() == n && expected.is_none_or(|e| n >= e) {
            State::Done(done)
        } else {
            State::Running
        };
        Ok(Snapshot { lines, state })
    }

    /// Why nothing matched a request, as the exchange's engine explains it: the whole explanation on stdout, its
    /// best combination's blockers in the (one-line) error.
    async fn no_match(&self, h: &str, waited: u64) -> CliError {
        let e = match self.ex.get(&format!("/requestorders/{h}/explain")).await {
            Ok(e) => e,
            Err(e) => return e,
        };
        println!("{}", super::explain::render(&e));
        let first: Vec<String> = e["combinations"][0]["blockers"]
            .as_array()
            .map(|b| b.iter().filter_map(|x| x["message"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let why = if first.is_empty() { "it should match soon".to_owned() } else { first.join("; ") };
        input(format!("nothing matched request {h} within {waited} s: {why} (dragon explain {h})"))
    }

    /// Waits until the request has deals; returns their ids.
    pub async fn until_matched(&self, h: &str, timeout: u64) -> Result<Vec<String>, CliError> {
        let start = Instant::now();
        let target = Target::Request(h.to_owned());
        loop {
            let s = self.snapshot(&target).await?;
            match s.state {
                State::Failed(e) => return Err(e),
                State::Unmatched => {}
                _ => {
                    let deals = s.lines.iter().filter(|(_, t)| t.starts_with("deal ")).map(|(k, _)| k.clone());
                    return Ok(deals.collect());
                }
            }
            if start.elapsed() >= Duration::from_secs(timeout) {
                return Err(self.no_match(h, timeout).await);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Follows `target` to completion; returns the completed tasks.
    pub async fn follow(&self, target: Target, timeout: u64, tty: bool) -> Result<Vec<String>, CliError> {
        let start = Instant::now();
        let mut shown = Shown { tty, drawn: 0, last: HashMap::new() };
        loop {
            let s = self.snapshot(&target).await?;
            let elapsed = start.elapsed();
            shown.draw(&s.lines, elapsed);
            match s.state {
                State::Done(tasks) => {
                    println!("completed: {} task(s) in {:.1} s", tasks.len(), elapsed.as_secs_f64());
                    return Ok(tasks);
                }
                State::Failed(e) => return Err(e),
                State::Unmatched if elapsed >= Duration::from_secs(timeout) => {
                    let Target::Request(h) = &target else { unreachable!("only requests are unmatched") };
                    return Err(self.no_match(h, timeout).await);
                }
                State::Running if elapsed >= Duration::from_secs(timeout) => {
                    let open: Vec<&str> =
                        s.lines.iter().filter(|(_, t)| t.starts_with("  task ")).map(|(_, t)| t.trim()).collect();
                    return Err(failure(format!("timed out after {timeout} s: {}", open.join("; "))));
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Hashes shortened (`0x2258b074…f696`), so that a line fits a terminal's width: a wrapped line would throw
/// the in-place redraw off by a row.
fn abbreviate(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.len() == 66 && w.starts_with("0x") { format!("{}…{}", &w[..10], &w[62..]) } else { w.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The progress display.
struct Shown {
    tty: bool,
    drawn: usize,
    last: HashMap<String, String>,
}

impl Shown {
    fn draw(&mut self, lines: &[(String, String)], elapsed: Duration) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Redraw the block in place: up to its first line, then each line cleared and rewritten.
            if self.drawn > 0 {
                let _ = write!(out, "\x1b[{}A", self.drawn);
            }
            for (i, (_, text)) in lines.iter().enumerate() {
                let text = abbreviate(text);
                let clock = if i == 0 { format!("  [{:.0} s]", elapsed.as_secs_f64()) } else { String::new() };
                let _ = writeln!(out, "\x1b[2K{text}{clock}");
            }
            self.drawn = lines.len();
        } else {
            for (key, text) in lines {
                if self.last.get(key) != Some(text) {
                    let _ = writeln!(out, "{text}");
                    self.last.insert(key.clone(), text.clone());
                }
            }
        }
        let _ = out.flush();
    }
}

pub async fn wait(a: WaitArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let d = ctx.deployment()?;
    let ex = ctx.exchange(&d)?;
    let f = Follow::new(&ctx, &ex, &d);
    let target = f.identify(a.id).await?;
    f.follow(target, a.timeout, interactive()).await.map(drop)
}

pub async fn status(a: StatusArgs) -> Result<(), CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let d = ctx.deployment()?;
    let ex = ctx.exchange(&d)?;
    let f = Follow::new(&ctx, &ex, &d);
    let target = f.identify(a.id).await?;
    let s = f.snapshot(&target).await?;
    for (_, text) in &s.lines {
        println!("{text}");
    }
    match s.state {
        State::Done(t) => println!("completed: {} task(s)", t.len()),
        State::Failed(e) => println!("failed: {e}"),
        State::Unmatched | State::Running => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_are_shortened_for_the_terminal() {
        let id = format!("0x{}", "ab".repeat(32));
        assert_eq!(
            super::abbreviate(&format!("  task 0 {id} ACTIVE: computing")),
            "  task 0 0xabababab…abab ACTIVE: computing"
        );
        assert_eq!(super::abbreviate("deal 0x12"), "deal 0x12");
    }
}
