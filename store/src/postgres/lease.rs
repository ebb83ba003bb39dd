//! The leader's lease: the one row of `marie_leader`, taken, renewed and given up with
//! single statements timed by the database's clock (`now()`, `clock_timestamp()`), so
//! that the clocks of the nodes do not matter.
//!
//! - **Acquire**: take the row when it is free (released, or past `expires_at`), raising
//!   the epoch by one. The update waits for a transaction of the previous leader that
//!   holds the row's share lock (see [`super::fence`]): what it writes commits before the
//!   new epoch does, or not at all.
//! - **Renew**: push `expires_at` on, only while the row still carries this process's
//!   token and epoch.
//! - **Release**: free the row now, on a clean shutdown, so that a standby need not wait
//!   out the lease.
//!
//! Whether and when to call them is the node's decision (`marie_decide::leadership`).
//! The lease keeps a connection of its own, so that a busy pool never delays a renewal,
//! and every statement is cancelled by the server past a time limit.

use std::time::Duration;

use tokio_postgres::Row;
use uuid::Uuid;

use super::connect::Connections;
use super::rows::to_bigint;
use crate::StoreError;

/// A node's handle on the leader's lease.
pub struct LeaderLease {
    connections: Connections,
    /// The node's name, shown to the others as the holder.
    node: String,
    /// This process: a node restarted under the same name never renews its previous
    /// run's lease.
    token: Uuid,
}

/// What an acquisition found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquisition {
    /// The lease is this node's, with `epoch`.
    Acquired {
        /// The new epoch: every write of this leader carries it.
        epoch: u64,
        /// Whom it succeeds.
        succession: Succession,
    },
    /// Another node holds it (or took it a moment before and has already let it go).
    Held {
        /// Its name, if the lease is still held.
        holder: Option<String>,
        /// Its epoch.
        epoch: u64,
        /// How long the lease has left, on the database's clock, measured before the
        /// answer left it; none when it is no longer held.
        expires_in: Option<Duration>,
    },
}

/// How the lease came to be free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Succession {
    /// No node ever led on this database.
    First,
    /// The previous leader released it (a clean shutdown).
    Released {
        /// The previous leader.
        holder: String,
    },
    /// The previous leader did not renew it in time (it died, hung, or lost Postgres).
    Expired {
        /// The previous leader.
        holder: String,
    },
}

/// What a renewal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is still this node's, for another time to live.
    Renewed,
    /// The lease is no longer this node's.
    Lost {
        /// Who holds it now, if anyone.
        holder: Option<String>,
        /// The epoch of the row.
        current: u64,
    },
}

impl LeaderLease {
    /// The lease handle of the node `node`, with its own connection to `url` (shown as
    /// `shown`), every statement limited to `statement_timeout`.
    pub(crate) fn new(
        url: &str,
        shown: &str,
        node: &str,
        statement_timeout: Duration,
    ) -> Result<LeaderLease, StoreError> {
        Ok(LeaderLease {
            connections: Connections::new(url, shown, 1, Some(statement_timeout))?,
            node: node.to_owned(),
            token: Uuid::now_v7(),
        })
    }

    /// The node's name, as the lease row shows its holder.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Takes the lease for `ttl` if it is free; says who holds it otherwise.
    pub async fn acquire(&self, ttl: Duration) -> Result<Acquisition, StoreError> {
        let rows = self
            .query(
                "UPDATE marie_leader AS l SET holder = $1, holder_token = $2, \
                 epoch = l.epoch + 1, expires_at = now() + make_interval(secs => $3), \
                 acquired_at = now() \
                 FROM (SELECT holder, holder_token FROM marie_leader WHERE id = 1) AS was \
                 WHERE l.id = 1 \
                 AND (l.holder_token IS NULL OR l.expires_at <= clock_timestamp()) \
                 RETURNING l.epoch, was.holder, was.holder_token IS NULL",
                &[&self.node, &self.token, &ttl.as_secs_f64()],
            )
            .await?;
        let Some(row) = rows.first() else {
            let held = self.holder().await?;
            return Ok(Acquisition::Held {
                holder: held.holder,
                epoch: held.epoch,
                expires_in: held.expires_in,
            });
        };
        let epoch = epoch(row, 0)?;
        let previous: Option<String> = row.try_get(1)?;
        let released: bool = row.try_get(2)?;
        let succession = match previous {
            None => Succession::First,
            Some(holder) if released => Succession::Released { holder },
            Some(holder) => Succession::Expired { holder },
        };
        Ok(Acquisition::Acquired { epoch, succession })
    }

    /// Extends the lease of `epoch` by `ttl` from now, if it is still this node's.
    pub async fn renew(&self, epoch: u64, ttl: Duration) -> Result<Renewal, StoreError> {
        let renewed = self
            .query(
                "UPDATE marie_leader SET expires_at = now() + make_interval(secs => $3) \
                 WHERE id = 1 AND holder_token = $1 AND epoch = $2 RETURNING epoch",
                &[&self.token, &to_bigint(epoch, "epoch")?, &ttl.as_secs_f64()],
            )
            .await?;
        if !renewed.is_empty() {
            return Ok(Renewal::Renewed);
        }
        let held = self.holder().await?;
        Ok(Renewal::Lost {
            holder: held.holder,
            current: held.epoch,
        })
    }

    /// Frees the lease of `epoch` now, if it is still this node's; says whether it was.
    pub async fn release(&self, epoch: u64) -> Result<bool, StoreError> {
        let released = self
            .query(
                "UPDATE marie_leader SET holder_token = NULL, expires_at = clock_timestamp() \
                 WHERE id = 1 AND holder_token = $1 AND epoch = $2 RETURNING epoch",
                &[&self.token, &to_bigint(epoch, "epoch")?],
            )
            .await?;
        Ok(!released.is_empty())
    }

    /// The holder of a live lease (none when it is free) and the time it has left, and
    /// the row's epoch.
    async fn holder(&self) -> Result<Held, StoreError> {
        let rows = self
            .query(
                "SELECT CASE WHEN left_us > 0 THEN holder END, epoch, \
                 CASE WHEN left_us > 0 THEN left_us END \
                 FROM (SELECT holder, epoch, CASE WHEN holder_token IS NOT NULL THEN \
                 (extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::bigint END \
                 AS left_us FROM marie_leader WHERE id = 1) AS lease",
                &[],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Value("the lease row of marie_leader is missing".into()))?;
        let left_us: Option<i64> = row.try_get(2)?;
        Ok(Held {
            holder: row.try_get(0)?,
            epoch: epoch(row, 1)?,
            expires_in: left_us.map(|us| Duration::from_micros(us.unsigned_abs())),
        })
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.connections.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }
}

/// The lease as a standby sees it.
struct Held {
    holder: Option<String>,
    epoch: u64,
    expires_in: Option<Duration>,
}

/// The epoch in column `at`.
fn epoch(row: &Row, at: usize) -> Result<u64, StoreError> {
    let epoch: i64 = row.try_get(at)?;
    u64::try_from(epoch).map_err(|_| StoreError::Value(format!("a negative epoch: {epoch}")))
}
