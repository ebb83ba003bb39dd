//! The schema, as numbered migrations compiled into the binary
//! (`store/migrations/postgres/NNNN_name.sql`), and the table `marie_schema` that lists
//! the versions a database has.
//!
//! [`migrate`] runs at every start in one transaction that first takes a
//! transaction-scoped advisory lock: nodes starting together on an empty database wait
//! for each other, and only the first applies what is missing. A database with a
//! version this build does not know was written by a newer release, and is left as it is.

use deadpool_postgres::Client;

use crate::StoreError;

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. Append, never edit.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_jobs.sql"),
    include_str!("../../migrations/postgres/0002_leader.sql"),
    include_str!("../../migrations/postgres/0003_jobs_by_pool.sql"),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key migrations run under (`marie_sc` in ASCII); other keys are free
/// for other uses.
const MIGRATION_LOCK: i64 = 0x6d61_7269_655f_7363;

/// What [`apply`] found.
enum Schema {
    /// The database has this build's schema (after applying what was missing).
    Known,
    /// The database has a version this build does not know: left untouched.
    Newer(i32),
}

/// Brings the database at `url` (masked) to [`SCHEMA_VERSION`], under the migration
/// lock; refuses a database with a newer schema.
pub async fn migrate(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let open_error = |e: tokio_postgres::Error| StoreError::Open {
        path: url.to_owned(),
        source: e.into(),
    };
    match apply(client).await.map_err(open_error)? {
        Schema::Known => Ok(()),
        Schema::Newer(found) => Err(StoreError::SchemaVersion {
            path: url.to_owned(),
            found,
            known: SCHEMA_VERSION,
        }),
    }
}

/// Applies the missing migrations, unless the database is newer than this build.
async fn apply(client: &mut Client) -> Result<Schema, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS marie_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM marie_schema", &[])
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        tx.rollback().await?;
        return Ok(Schema::Newer(found));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tracing::info!(version, "job store: applying schema migration");
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO marie_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Schema::Known)
}
