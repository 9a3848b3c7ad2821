//! `dragon submit` builds, signs and publishes a request order; `dragon run` submits, waits and downloads.
//! Before publishing, the client checks what the exchange would refuse, to say it plainly: an app that is not
//! registered, an app without an open app order, and an escrow too small for the request.

use super::config::{Conn, Ctx};
use super::error::{CliError, chain_failure, failure, input};
use super::wait::{self, Follow, Target};
use super::{amount, exchange::Refusal};
use crate::chain::contracts::{app_registry::AppRegistry, dataset_registry::DatasetRegistry, hub::DragonHub};
use crate::money::Nrlc;
use crate::order::{AnyOrder, RequestOrder, json::parse_address, json::parse_bytes32};
use alloy::primitives::{Address, B256, U256};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The app to run.
    #[arg(long, value_parser = parse_address)]
    pub app: Address,
    /// The dataset it runs on.
    #[arg(long, value_parser = parse_address)]
    pub dataset: Option<Address>,
    /// Only this workerpool.
    #[arg(long, value_parser = parse_address)]
    pub workerpool: Option<Address>,
    /// The hub's category (the maximum duration of a task).
    #[arg(long, default_value_t = 0)]
    pub category: u64,
    /// PoCo trust: how many replicas must agree (0 and 1: a single worker).
    #[arg(long, default_value_t = 0)]
    pub trust: u64,
    /// The most paid to the workerpool per task: nRLC (1500) or RLC (0.5RLC). Without it, the price of the best
    /// current offer that can take the request, as iExec's `app run` does.
    #[arg(long, value_parser = amount::parse)]
    pub max_price: Option<Nrlc>,
    /// The most paid to the app per task; by default the price of its best open app order.
    #[arg(long, value_parser = amount::parse)]
    pub app_max_price: Option<Nrlc>,
    /// The most paid to the dataset per task; by default the price of its best open dataset order.
    #[arg(long, value_parser = amount::parse)]
    pub dataset_max_price: Option<Nrlc>,
    /// Number of tasks.
    #[arg(long, default_value_t = 1)]
    pub volume: u64,
    /// The tag (bytes32) of required features.
    #[arg(long, value_parser = parse_bytes32)]
    pub tag: Option<B256>,
    /// Who may download the results; the requester by default.
    #[arg(long, value_parser = parse_address)]
    pub beneficiary: Option<Address>,
    /// The app's command-line arguments (iexec_args).
    #[arg(long, conflicts_with = "params")]
    pub args: Option<String>,
    /// Input files the app downloads (iexec_input_files); repeat for several.
    #[arg(long = "input-file", value_name = "URL", conflicts_with = "params")]
    pub input_files: Vec<String>,
    /// The request's params as raw JSON (iExec's form), instead of --args and --input-file.
    #[arg(long)]
    pub params: Option<String>,
    /// Print the request's hash and return, without waiting for the deal.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for a match.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub submit: SubmitArgs,
    /// Where to unpack the results (one folder per task inside it).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// A published request.
#[derive(Debug)]
pub struct Submitted {
    pub hash: String,
    pub ctx: Ctx,
    pub exchange: super::exchange::Exchange,
    pub deployment: crate::chain::deploy::Deployment,
}

fn params_of(a: &SubmitArgs) -> Result<String, CliError> {
    if let Some(p) = &a.params {
        serde_json::from_str::<serde_json::Value>(p).map_err(|e| input(format!("--params is not JSON: {e}")))?;
        return Ok(p.clone());
    }
    let mut v = serde_json::Map::new();
    if let Some(args) = &a.args {
        v.insert("iexec_args".into(), json!(args));
    }
    if !a.input_files.is_empty() {
        v.insert("iexec_input_files".into(), json!(a.input_files));
    }
    Ok(serde_json::Value::Object(v).to_string())
}

/// The price of the best open order of an asset that this requester may take.
async fn best_price(
    ex: &super::exchange::Exchange,
    kind: &str,
    asset: Address,
    requester: Address,
) -> Result<Option<Nrlc>, CliError> {
    let page = ex.get(&format!("/{kind}orders?{kind}={asset}&requester={requester}&pageSize=10")).await?;
    Ok(page["orders"]
        .as_array()
        .and_then(|o| o.first())
        .map(|o| super::order::nrlc_of(&o["order"][format!("{kind}price")])))
}

/// The best current offer that can take the request: the workerpool price of the first combination the
/// exchange's engine would match if the request paid any price (a dry run, `POST /explain`). Stake does not
/// count here: the deposit is checked against the price chosen.
fn best_offer(probe: &serde_json::Value) -> Option<(Nrlc, String)> {
    probe["combinations"].as_array()?.iter().find_map(|c| {
        let blockers = c["blockers"].as_array()?;
        if !blockers.iter().all(|b| b["code"] == "stake") {
            return None;
        }
        let w = &c["workerpoolorder"];
        Some((Nrlc::from_u64(w["price"].as_u64()?), w["orderHash"].as_str()?.to_owned()))
    })
}

/// The workerpool price the request offers: the best current offer's, capped by `--max-price`. Says what it will
/// pay before anything is signed, and why when no offer fits (on stdout: stderr holds only the one-line error).
async fn workerpool_price(
    ex: &super::exchange::Exchange,
    cap: Option<Nrlc>,
    request: impl Fn(Nrlc) -> AnyOrder,
) -> Result<Nrlc, CliError> {
    let probe = ex.explain_draft(&request(Nrlc::from_u64(u64::MAX))).await?;
    let best = best_offer(&probe);
    match (cap, best) {
        (None, Some((price, pool))) => {
            println!("will pay {} per task: the best current offer (workerpool order {pool})", amount::show(price));
            Ok(price)
        }
        (None, None) => {
            println!("{}", super::explain::render(&probe));
            Err(input(
                "no workerpool offer can take this request now (why above); give --max-price to publish it anyway and wait for one",
            ))
        }
        (Some(cap), Some((price, pool))) if price.0 <= cap.0 => {
            println!(
                "will pay {} per task: the best current offer (workerpool order {pool}); at most {} (--max-price)",
                amount::show(price),
                amount::show(cap)
            );
            Ok(cap)
        }
        (Some(cap), best) => {
            let why = ex.explain_draft(&request(cap)).await?;
            match best {
                Some((price, _)) => println!(
                    "the best current offer, {} per task, is above --max-price {}: the request waits for a cheaper one",
                    amount::show(price),
                    amount::show(cap)
                ),
                None => println!("no workerpool offer can take this request now: it waits for one"),
            }
            println!("{}", super::explain::render(&why));
            println!("will pay at most {} per task (--max-price)", amount::show(cap));
            Ok(cap)
        }
    }
}

fn salt() -> Result<B256, CliError> {
    crate::order::fresh_salt().map_err(|e| failure(format!("no randomness for the salt: {e}")))
}

pub async fn publish(a: &SubmitArgs) -> Result<Submitted, CliError> {
    let ctx = Ctx::resolve(&a.conn)?;
    let key = ctx.key()?;
    ctx.api()?;
    let d = ctx.deployment()?;
    if a.volume == 0 {
        return Err(input("--volume must be at least 1"));
    }
    let params = params_of(a)?;
    let ex = ctx.exchange(&d)?;
    // The exchange first: unreachable is the likeliest failure and the clearest to report.
    ex.get("/version").await?;
    ctx.check_chain(&d).await?;
    let rpc = ctx.rpc()?;
    let p = ctx.reader()?;
    let me = key.address();
    let known = AppRegistry::new(d.app_registry, &p).isRegistered(a.app).call().await;
    if !known.map_err(|e| chain_failure(rpc, &e))? {
        return Err(input(format!("unknown app {}: it is not registered in the app registry", a.app)));
    }
    let app_price = match a.app_max_price {
        Some(p) => p,
        None => best_price(&ex, "app", a.app, me).await?.ok_or_else(|| {
            input(format!(
                "app {} has no open app order on the exchange: its owner must publish one (dragon order publish --kind app)",
                a.app
            ))
        })?,
    };
    let dataset_price = match a.dataset {
        None => Nrlc::ZERO,
        Some(ds) => {
            let known = DatasetRegistry::new(d.dataset_registry, &p).isRegistered(ds).call().await;
            if !known.map_err(|e| chain_failure(rpc, &e))? {
                return Err(input(format!("unknown dataset {ds}: it is not registered in the dataset registry")));
            }
            match a.dataset_max_price {
                Some(p) => p,
                None => best_price(&ex, "dataset", ds, me)
                    .await?
                    .ok_or_else(|| input(format!("dataset {ds} has no open dataset order on the exchange")))?,
            }
        }
    };
    let request = |pool_price: Nrlc, salt: B256| {
        AnyOrder::Request(RequestOrder {
            app: a.app,
            appmaxprice: app_price,
            dataset: a.dataset.unwrap_or(Address::ZERO),
            datasetmaxprice: dataset_price,
            workerpool: a.workerpool.unwrap_or(Address::ZERO),
            workerpoolmaxprice: pool_price,
            requester: me,
            volume: U256::from(a.volume),
            tag: a.tag.unwrap_or_default(),
            category: U256::from(a.category),
            trust: U256::from(a.trust),
            beneficiary: a.beneficiary.unwrap_or(me),
            callback: Address::ZERO,
            params: params.clone(),
            salt,
            sign: None,
        })
    };
    let salt = salt()?;
    let pool_price = workerpool_price(&ex, a.max_price, |p| request(p, salt)).await?;
    let per_task = app_price.0.checked_add(dataset_price.0).and_then(|s| s.checked_add(pool_price.0));
    let cost = per_task
        .and_then(|t| t.checked_mul(U256::from(a.volume)))
        .map(Nrlc)
        .ok_or_else(|| input("the prices are too large"))?;
    let acc = DragonHub::new(d.hub, &p).viewAccount(me).call().await.map_err(|e| chain_failure(rpc, &e))?;
    if acc.stake < cost.0 {
        return Err(input(format!(
            "too little deposit: the request may cost {} but the free escrow of {me} is {} (dragon account deposit)",
            amount::show(cost),
            amount::show(Nrlc(acc.stake))
        )));
    }
    let mut order = request(pool_price, salt);
    let domain = Ctx::domain(&d);
    let hash = order.sign_with(&domain, &key).map_err(|e| failure(format!("signing failed: {e}")))?;
    match ex.publish(&key, &order).await {
        Ok(_) => {}
        Err(Refusal::Refused { code, error, .. }) if code == "insufficient_stake" => {
            return Err(input(format!("too little deposit: {error} (dragon account deposit)")));
        }
        Err(Refusal::Refused { code, error, .. }) if code == "unknown_asset" => {
            return Err(input(format!("unknown asset: {error}")));
        }
        Err(r) => return Err(r.into_cli(&ex.base)),
    }
    Ok(Submitted { hash: hash.to_string(), ctx, exchange: ex, deployment: d })
}

pub async fn submit(a: SubmitArgs) -> Result<(), CliError> {
    let s = publish(&a).await?;
    println!("request {}", s.hash);
    if a.no_wait {
        return Ok(());
    }
    let f = Follow::new(&s.ctx, &s.exchange, &s.deployment);
    let deals = f.until_matched(&s.hash, a.timeout).await?;
    for d in deals {
        println!("deal {d}");
    }
    Ok(())
}

pub async fn run(a: RunArgs) -> Result<(), CliError> {
    let s = publish(&a.submit).await?;
    println!("request {}", s.hash);
    let f = Follow::new(&s.ctx, &s.exchange, &s.deployment);
    let tasks = f.follow(Target::Request(s.hash.clone()), a.submit.timeout, wait::interactive()).await?;
    let gateway = s.ctx.gateway()?;
    for t in tasks {
        let dir = a.out.join(&t);
        let files = super::result::download(&s.ctx, &s.deployment, gateway, &t, &dir).await?;
        println!("task {t}: {} file(s) in {}", files.len(), dir.display());
    }
    Ok(())
}
