//! Composition of the server: store, chain, market and API, started by [`run`] on a listener with one shutdown
//! future, so tests start the whole service in-process exactly as `dragon serve` does.

use crate::api::auth::Auth;
use crate::api::limits::RateLimits;
pub use crate::api::state::AppState;
use crate::chain::Chain;
use crate::chain::reads::ChainReader;
use crate::chain::settler::Settler;
use crate::chain::sync::ChainSync;
use crate::cluster::LeaseKeeper;
use crate::config::Config;
use crate::feed::{Feed, Topic};
use crate::market::{Listener, Market, MarketEvent};
use crate::runtime::{Background, shutdown_signal};
use crate::store::Store;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

// The benches start tracing through this path.
pub use crate::runtime::init_tracing;

impl AppState {
    /// Connects the store (migrating it) and the chain, loads the categories, and starts the market, whose
    /// changes go out on the feed.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let feed = Feed::new(config.feed.feed_config());
        let chain_id = config.deployment.chain_id;
        let to_feed = feed.clone();
        let listener: Listener = Arc::new(move |e: &MarketEvent| publish_event(&to_feed, chain_id, e));
        Self::connect_with(config, feed, listener).await
    }

    pub async fn connect_with(config: &Config, feed: Feed, listener: Listener) -> anyhow::Result<Self> {
        // This process in the cluster: its feed events' origin, and the holder of its leases.
        let origin = crate::store::leases::instance_id();
        // First, so that an unreachable NATS stops the start before anything runs.
        let bus = match &config.nats.url {
            Some(url) => {
                let bus = crate::cluster::bus::connect(url, &origin).await?;
                tracing::info!(url = %crate::cluster::bus::redacted(url), "the feed is cluster-wide, through NATS");
                Some(bus)
            }
            None => None,
        };
        let store = Store::connect(&config.database_url, config.store).await.context("opening the store")?;
        // Before anything writes orders, deals or marks: every writer from here on adds its hashes. Not in a
        // cluster: the other instances write to the same tables, and this filter would never see their hashes.
        if bus.is_none() {
            store.track_hashes();
        }
        let d = &config.deployment;
        // The cluster is the database the instances share: its identity names their NATS subjects.
        let bus = match bus {
            Some(nats) => {
                let cluster = crate::store::leases::cluster_id(&**store.client().await?).await?;
                Some(nats.join(&cluster, d.chain_id).await?)
            }
            None => None,
        };
        let chain = Chain::connect(&config.rpc_url, Some(d.hub))?;
        let head = chain.head().await.context("checking the chain and the hub")?;
        if head.chain_id != d.chain_id {
            anyhow::bail!("the RPC serves chain {} but the deployment is for chain {}", head.chain_id, d.chain_id);
        }
        let reader = Arc::new(ChainReader::new(chain.provider().clone(), d.clone(), Duration::from_secs(5)));
        let categories = reader.categories().await.context("reading the categories")?;
        crate::store::categories::upsert(&**store.client().await?, &categories).await?;
        // The store catches up with the chain before the book is rebuilt from it; proposals the chain did
        // not settle meanwhile fail, and the engine proposes again what is still possible.
        // Before the first range, so that sync's cursor is still where the backfill reads up to.
        crate::chain::sync::backfill_marks(&store, &reader, chain.provider())
            .await
            .context("reading the hub's presignatures and closures")?;
        let mut sync = ChainSync::new(store.clone(), reader.clone(), chain.provider().clone(), config.sync);
        sync.catch_up().await.context("catching up with the chain")?;
        crate::chain::sync::backfill_categories(&store, chain.provider(), d)
            .await
            .context("reading the hub's CreateCategory events")?;
        crate::chain::sync::backfill_task_times(&store, chain.provider(), d.chain_id)
            .await
            .context("reading the times of task events stored before they were kept")?;
        // Another instance leading the settler (a live lease) is settling these proposals: failing them here
        // would race its write-ahead records. Only an instance that finds no live leader resolves them.
        let settler_lease = crate::store::leases::settler(d.chain_id);
        let leader = crate::store::leases::get(&**store.client().await?, &settler_lease).await?.filter(|l| l.live);
        // Likewise in a cluster with other live members: their engines hold the pending proposals they made.
        let members = match bus {
            Some(_) => crate::store::leases::live_members(&**store.client().await?, d.chain_id).await?.len(),
            None => 0,
        };
        if let Some(l) = leader {
            tracing::info!(holder = %l.holder, epoch = l.epoch, "another instance leads the settler; its pending proposals stay pending");
        } else if members > 0 {
            tracing::info!(members, "other instances of the cluster are live; pending proposals stay pending");
        } else {
            let unsettled = crate::chain::sync::resolve_pending(&store, chain.provider(), d.chain_id)
                .await
                .context("resolving proposals pending at the last stop")?;
            if unsettled > 0 {
                tracing::info!(
                    proposals = unsettled,
                    "proposals pending at the last stop were not settled; matching again"
                );
            }
        }
        // `proposals` carries the ids of the deals the engine proposes, from its first start on, to the settler.
        let known = store.load_hashes().await.context("reading the order hashes the store holds")?;
        tracing::debug!(hashes = known, "order hashes tracked");
        let recoverer = crate::order::recoverer::Recoverer::per_core().context("starting the signature threads")?;
        let background = Arc::new(Background::default());
        // A cluster (NATS configured): each category's book is owned by one instance, by lease; this one's
        // changes go to the others.
        let (owned, outbox, listener) = if bus.is_some() {
            let pg = crate::store::pg_config(&config.database_url, config.store)?;
            let (owned, task) = crate::cluster::owner::spawn(
                store.clone(),
                pg,
                d.chain_id,
                origin.clone(),
                config.lease,
                background.stopping(),
            );
            background.push_graceful(task);
            let (outbox, receiver) = crate::cluster::route::Outbox::new();
            let inner = listener;
            let listener: Listener = Arc::new(move |e: &MarketEvent| {
                inner(e);
                outbox.push(e);
            });
            (Some(owned), Some(receiver), listener)
        } else {
            (None, None, listener)
        };
        let (market, proposals) =
            Market::start(store.clone(), reader.clone(), recoverer, config.market, listener, owned.clone())
                .await
                .context("starting the market")?;
        let settler = match &config.operator_key {
            Some(key) => {
                let s = Settler::new(
                    store.clone(),
                    market.clone(),
                    reader.clone(),
                    &config.rpc_url,
                    key.clone(),
                    // A nonce counts as used where chain sync counts a block as final.
                    crate::chain::settler::SettlerConfig { confirmations: config.sync.confirmations, ..config.settler },
                    sync.wake.clone(),
                )?;
                // One settler in the cluster: this instance is a candidate for the chain's settler lease, on a
                // connection of its own, and settles only while it holds it.
                let pg = crate::store::pg_config(&config.database_url, config.store)?;
                let holder = origin.clone();
                let (keeper, keeping) =
                    LeaseKeeper::spawn(pg, settler_lease, holder.clone(), config.lease, background.stopping());
                let (handle, task) = s.spawn(proposals, keeper.tenure);
                background.push(task);
                background.push_graceful(keeping);
                tracing::info!(operator = %handle.operator, %holder, "settler started, as a candidate for its lease");
                Some(handle)
            }
            None => {
                tracing::warn!("DRAGON_OPERATOR_KEY is not set: deals are proposed but not settled on chain");
                None
            }
        };
        let mut router = None;
        if let Some(bus) = bus {
            if let (Some(owned), Some(outbox)) = (owned, outbox) {
                let r = crate::cluster::route::Router::start(
                    &bus,
                    origin.clone(),
                    market.clone(),
                    owned,
                    outbox,
                    &background,
                )
                .await
                .context("subscribing to the cluster's routes on NATS")?;
                router = Some(r);
            }
            bus.carry(&feed, &background);
        }
        sync.attach(market.clone(), settler.clone());
        let sync_stats = sync.stats.clone();
        background.push(tokio::spawn(sync.run(background.stopping())));
        let rates = Arc::new(RateLimits::new(&config.limits));
        let auth = Arc::new(Auth::new(store.clone(), reader, d.chain_id, config.limits));
        tokio::spawn(housekeeping(
            store.clone(),
            Arc::downgrade(&rates),
            Arc::downgrade(&auth),
            config.limits.purge_interval(),
        ));
        Ok(AppState {
            store: store.clone(),
            chain,
            market,
            limits: config.limits,
            auth,
            rates,
            health: Arc::default(),
            feed,
            queries: Arc::default(),
            track_records: Arc::default(),
            sync: sync_stats,
            settler,
            router,
            background,
            rt: tokio::runtime::Handle::current(),
        })
    }
}

/// Forgets what strangers made the server keep once it is no longer needed: idle keys of the rate limiters,
/// expired sessions in the cache, expired challenges and sessions in the store. Ends with the server (when the
/// state it sweeps is dropped).
async fn housekeeping(store: Store, rates: std::sync::Weak<RateLimits>, auth: std::sync::Weak<Auth>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(rates), Some(auth)) = (rates.upgrade(), auth.upgrade()) else { break };
        rates.sweep();
        auth.sweep();
        drop((rates, auth));
        let purged = match store.client().await {
            Ok(c) => crate::store::challenges::purge(&**c).await,
            Err(e) => Err(e),
        };
        match purged {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "expired challenges and sessions purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired challenges failed; retrying later"),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains: in-flight requests finish (their
/// orders are committed), then the market writes what the engine produced.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let market = state.market.clone();
    let background = state.background.clone();
    let limits = state.limits;
    let feed = web::Data::new(state.feed.clone());
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(feed.clone())
            .configure(crate::feed::configure)
            .wrap(actix_web::middleware::from_fn(crate::api::limits::per_ip))
            .configure(|cfg| crate::api::configure(cfg, limits.body_bytes))
    })
    .disable_signals()
    .max_connections(limits.max_connections)
    .client_request_timeout(Duration::from_secs(limits.client_timeout_secs))
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let res = tokio::select! {
        res = server => res.context("HTTP server failed"),
        () = shutdown => {
            handle.stop(true).await;
            Ok(())
        }
    };
    background.stop().await;
    market.shutdown().await;
    res
}

/// The feed's form of a market event: the peer's event names and payloads on topics `orders` and `deals`.
fn publish_event(feed: &Feed, chain_id: u64, e: &MarketEvent) {
    // The record without its chainId, as the peer emits it (the room, or the envelope, names the chain).
    let view = |r: &crate::order::record::OrderRecord| {
        let mut v = crate::api::orders::view(r);
        if let Some(m) = v.as_object_mut() {
            m.remove("chainId");
        }
        v
    };
    // Nobody listening: skip building the payloads.
    if !feed.wanted() {
        return;
    }
    match e {
        MarketEvent::Published(r) => {
            feed.publish(chain_id, Topic::Orders, r.category(), &format!("{}order_published", r.kind()), &view(r));
        }
        MarketEvent::Updated(r) => {
            feed.publish(chain_id, Topic::Orders, r.category(), &format!("{}order_updated", r.kind()), &view(r));
        }
        MarketEvent::Unpublished { kind, hash, category } => {
            let data = serde_json::Value::String(hash.to_string());
            feed.publish(chain_id, Topic::Orders, *category, &format!("{kind}order_unpublished"), &data);
        }
        MarketEvent::DealProposed { id, deal } => {
            let h = |x: &dragon_matching::OrderHash| format!("0x{}", alloy::hex::encode(x.0));
            let data = serde_json::json!({
                "proposalId": id,
                "apporderHash": h(&deal.app),
                "datasetorderHash": deal.dataset.as_ref().map(h),
                "workerpoolorderHash": h(&deal.workerpool),
                "requestorderHash": h(&deal.request),
                "volume": deal.volume,
                "appPrice": deal.app_price.0,
                "datasetPrice": deal.dataset_price.0,
                "workerpoolPrice": deal.workerpool_price.0,
                "category": deal.category,
                "status": "proposed",
            });
            feed.publish(chain_id, Topic::Deals, Some(deal.category), "deal_proposed", &data);
        }
        MarketEvent::ProposalFailed { id, category, reason } => {
            let data = serde_json::json!({"proposalId": id, "status": "failed", "reason": reason});
            feed.publish(chain_id, Topic::Deals, *category, "deal_failed", &data);
        }
        MarketEvent::DealCreated(deal) => {
            // The deal as the store keeps it and `GET /deals` answers it.
            feed.publish(chain_id, Topic::Deals, Some(deal.category), "deal_created", &deal.body());
        }
        MarketEvent::TaskUpdated(t) => {
            let category = t.deal.map(|d| d.2);
            let data = serde_json::json!({
                "chainId": t.chain_id,
                "taskid": t.task_id.to_string(),
                "dealid": t.deal.map(|d| d.0.to_string()),
                "idx": t.deal.map(|d| d.1),
                "category": category,
                "status": crate::store::deals::task_status(Some(t.event)),
                "event": t.event,
                "blockNumber": t.block_number,
            });
            feed.publish(chain_id, Topic::Tasks, category, "task_updated", &data);
        }
    }
}

/// `dragon serve`: connect, listen, serve until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = AppState::connect(&config).await?;
    serve_state(config, state, None).await
}

/// Serves `state`; writes `ready` (path, contents) once the listener is bound.
pub async fn serve_state(
    config: Config,
    state: AppState,
    ready: Option<(std::path::PathBuf, String)>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, hub = %config.deployment.hub, "dragon serving");
    if let Some((path, contents)) = ready {
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    run(listener, state, shutdown_signal()).await
}
