//! The PostgreSQL store, and the only place with SQL: one file per table or per aggregate, each file's first
//! line naming the tables it owns (`deals.rs`: deals, tasks, task events; `challenges.rs`: challenges and
//! sessions; `settlement_txs.rs` also records an outcome across its aggregate), and `explorer.rs`, which only
//! reads across tables. Schema changes are the versioned SQL files of `schema/`, applied in
//! order at start-up inside one transaction under an advisory lock, so two servers starting together on one
//! empty database cannot both migrate.
//!
//! Connections come from a deadpool pool: a broken connection is dropped at its next checkout and a new one
//! is opened, so the server reconnects by itself after PostgreSQL restarts. Every connection has a connect
//! timeout and a statement timeout, so a stuck database turns into errors instead of stuck requests.

pub mod categories;
pub mod challenges;
pub mod deals;
pub mod explorer;
pub mod leases;
pub mod order_marks;
pub mod orders;
pub mod proposals;
pub mod seen;
pub mod settlement_charges;
pub mod settlement_txs;
pub mod sync;
pub mod track_records;

use crate::ids::OrderHash;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::NoTls;

/// Every migration, in order: (version, name, SQL). A test checks this list against the files in `schema/`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "0001_orders.sql", include_str!("../../schema/0001_orders.sql")),
    (2, "0002_market.sql", include_str!("../../schema/0002_market.sql")),
    (3, "0003_settlement.sql", include_str!("../../schema/0003_settlement.sql")),
    (4, "0004_pool.sql", include_str!("../../schema/0004_pool.sql")),
    (5, "0005_pool_replication.sql", include_str!("../../schema/0005_pool_replication.sql")),
    (6, "0006_settlement_wal.sql", include_str!("../../schema/0006_settlement_wal.sql")),
    (7, "0007_pool_hardening.sql", include_str!("../../schema/0007_pool_hardening.sql")),
    (8, "0008_auth_expiry.sql", include_str!("../../schema/0008_auth_expiry.sql")),
    (9, "0009_category_events.sql", include_str!("../../schema/0009_category_events.sql")),
    (10, "0010_track_records.sql", include_str!("../../schema/0010_track_records.sql")),
    (11, "0011_order_marks.sql", include_str!("../../schema/0011_order_marks.sql")),
    (12, "0012_orders_lean.sql", include_str!("../../schema/0012_orders_lean.sql")),
    (13, "0013_leases.sql", include_str!("../../schema/0013_leases.sql")),
    (14, "0014_seq_blocks.sql", include_str!("../../schema/0014_seq_blocks.sql")),
    (15, "0015_cluster_identity.sql", include_str!("../../schema/0015_cluster_identity.sql")),
];

/// A connection that keeps its prepared statements (deadpool's wrapper, or a transaction on it): the statements
/// run on every publication and every authenticated request are parsed and planned once per connection instead
/// of once per call, which also saves a round trip each time (docs/benchmarks.md, issue 20).
pub use deadpool_postgres::GenericClient as Cached;

const MIGRATION_LOCK: i64 = 0x6472_6167_6f6e;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // No `#[source]`: `describe` prints the cause itself, and error chains would print it twice.
    #[error("database error: {}", describe(.0))]
    Db(tokio_postgres::Error),
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    #[error("database schema is at version {found}, newer than this server knows ({known}): upgrade the server")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("corrupt row in `{table}`: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// A fenced write found that its lease is no longer held at its epoch (expired, or taken by another
    /// instance): nothing of the transaction was written, and the writer must stop acting as the holder.
    #[error("lease `{lease}` is no longer held at epoch {epoch}: write refused")]
    Fenced { lease: String, epoch: i64 },
}

impl StoreError {
    /// Whether this is a refused fenced write ([`StoreError::Fenced`]), as opposed to the store being
    /// unavailable: the one error a lease holder must not retry.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(db) => StoreError::Db(db),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

/// tokio-postgres prints only "db error" for server errors; the server's message is in the `DbError`.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Pool and timeout settings.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    pub max_connections: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The store: a pool of connections. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Order hashes the tables may hold ([`seen::Seen`]); only the exchange enables it.
    seen: Arc<OnceLock<seen::Seen>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.pool.status();
        f.debug_struct("Store").field("size", &s.size).field("available", &s.available).finish()
    }
}

pub type Client = deadpool_postgres::Client;

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let pg = pg_config(url, config)?;
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = Store { pool, seen: Arc::default() };
        let mut client = store.client().await?;
        migrate(&mut client).await?;
        Ok(store)
    }

    /// Starts tracking which order hashes the tables hold ([`seen::Seen`]). Call it before anything writes
    /// orders, deals or marks through this store, then [`Store::load_hashes`].
    pub fn track_hashes(&self) {
        self.seen.get_or_init(seen::Seen::default);
    }

    /// Fills the tracker from the tables; until then it answers "maybe" for every hash.
    pub async fn load_hashes(&self) -> Result<usize, StoreError> {
        match self.seen.get() {
            Some(seen) => seen.load(&**self.client().await?).await,
            None => Ok(0),
        }
    }

    /// Records hashes about to be written to `orders`, `deals` or `order_marks` (before the commit).
    pub fn note_hashes<'a>(&self, hashes: impl IntoIterator<Item = &'a OrderHash>) {
        if let Some(seen) = self.seen.get() {
            hashes.into_iter().for_each(|h| seen.add(h));
        }
    }

    /// False only when no table holds `hash`, as far as a loaded tracker knows.
    pub fn may_hold(&self, hash: &OrderHash) -> bool {
        self.seen.get().is_none_or(|s| s.may_hold(hash))
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<Client, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// The highest applied schema version.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(self.client().await?.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0))
    }
}

/// The connection settings of `url` with the store's timeouts: for the pool, and for the connections kept apart
/// from it (a lease's renewals).
pub fn pg_config(url: &str, config: StoreConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config = url.parse().map_err(|_| StoreError::BadUrl(redact(url)))?;
    pg.connect_timeout(config.connect_timeout);
    pg.options(format!("-c statement_timeout={}", config.statement_timeout.as_millis()));
    Ok(pg)
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Applies the migrations this database lacks.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    // A fixed key ("dragon" in ASCII), held until commit: a second server waits here, then finds nothing to do.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit().await?;
    Ok(())
}

/// Creates `name` on the server of `admin_url` unless it exists (for the local market and tests).
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    let conn = tokio::spawn(connection);
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        // Identifiers cannot be bound as parameters; quote it. Two creators may race: the loser sees 42P04.
        let res = client.batch_execute(&format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""))).await;
        if let Err(e) = res
            && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
        {
            return Err(e.into());
        }
    }
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// Bytes of an address or hash column.
pub(crate) fn fixed<const N: usize>(table: &'static str, v: &[u8]) -> Result<[u8; N], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { table, detail: format!("expected {N} bytes, got {}", v.len()) })
}
