//! What every request handler can reach, and where it runs work that must outlive a request's worker. The
//! server (`server.rs`) builds it; the handlers only read it.

use crate::api::auth::Auth;
use crate::api::error::ApiError;
use crate::api::limits::RateLimits;
use crate::chain::Chain;
use crate::config::Limits;
use crate::feed::Feed;
use crate::market::Market;
use crate::runtime::Background;
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub chain: Chain,
    pub market: Arc<Market>,
    pub limits: Limits,
    pub auth: Arc<Auth>,
    pub rates: Arc<RateLimits>,
    pub health: Arc<crate::api::system::HealthCache>,
    /// The public live feed (`/ws` socket.io, `/feed` plain WebSocket).
    pub feed: Feed,
    pub queries: Arc<crate::api::orders::QueryCache>,
    /// Track records already computed at the current synced block (`GET /workerpools/{address}`).
    pub track_records: Arc<crate::api::pools::TrackRecordCache>,
    /// Chain sync's progress (head, cursor, reorgs).
    pub sync: Arc<crate::chain::sync::SyncStats>,
    /// The settler, when an operator key is configured.
    pub settler: Option<crate::chain::settler::SettlerHandle>,
    /// In a cluster: hands orders to their category's owner (`cluster::route`).
    pub router: Option<Arc<crate::cluster::route::Router>>,
    /// Stops chain sync and the settler at shutdown.
    pub background: Arc<Background>,
    /// The runtime that owns the store's connections and the market's tasks. Handlers run on actix's
    /// per-worker runtimes; work that touches the store or the chain is spawned here, so it never depends on a
    /// worker's runtime (which stops first at shutdown).
    pub rt: tokio::runtime::Handle,
}

impl AppState {
    /// Publishes checked orders: through the cluster's router when there is one, else this market.
    pub async fn publish(
        &self,
        records: Vec<crate::order::record::OrderRecord>,
    ) -> Vec<Result<Arc<crate::order::record::OrderRecord>, crate::market::PublishError>> {
        match &self.router {
            Some(r) => r.publish(records).await,
            None => self.market.publish(records).await,
        }
    }

    /// Unpublishes open orders: through the cluster's router when there is one, else this market.
    pub async fn unpublish(
        &self,
        hashes: Vec<crate::ids::OrderHash>,
    ) -> Result<Vec<crate::ids::OrderHash>, crate::market::MarketError> {
        match &self.router {
            Some(r) => r.unpublish(hashes).await,
            None => self.market.unpublish(hashes).await,
        }
    }

    /// Runs `f` on the main runtime; its error, or the runtime going away, become the API's error.
    pub async fn on_main<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.bg(f).await.ok_or(ApiError::Unavailable("shutting down"))?.map_err(Into::into)
    }

    /// Runs `f` on the main runtime (see [`AppState::rt`]).
    pub async fn bg<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> Option<T> {
        self.rt.spawn(f).await.ok()
    }
}
