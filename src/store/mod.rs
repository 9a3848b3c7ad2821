//! The PostgreSQL store. Schema changes are the versioned SQL files of `schema/`, applied in order at start-up
//! inside one transaction under an advisory lock, so two servers starting together cannot both migrate.

use tokio_postgres::{Client, NoTls};

/// Every migration, in order: (version, name, SQL). A test checks this list against the files in `schema/`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "0001_orders.sql", include_str!("../../schema/0001_orders.sql"))];

const MIGRATION_LOCK: i64 = 0x6472_6167_6f6e;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // No `#[source]`: `describe` prints the cause itself, and error chains would print it twice.
    #[error("database error: {}", describe(.0))]
    Db(tokio_postgres::Error),
    #[error("database schema is at version {found}, newer than this server knows ({known}): upgrade the server")]
    SchemaTooNew { found: i32, known: i32 },
}

/// A connection to the store. Cheap to share: `tokio_postgres::Client` pipelines concurrent queries.
#[derive(Debug)]
pub struct Store {
    client: Client,
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = connect(url).await?;
        migrate(&mut client).await?;
        Ok(Store { client })
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The highest applied schema version.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(self.client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e)
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

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// Applies the migrations this database lacks.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    // A fixed key ("dragon" in ASCII), held until commit.
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
    let client = connect(admin_url).await?;
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        // Identifiers cannot be bound as parameters; quote it.
        client.batch_execute(&format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""))).await?;
    }
    Ok(())
}
