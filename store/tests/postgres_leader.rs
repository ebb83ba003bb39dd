//! The leader's lease and the fence of its writes, on a throwaway Postgres server: the
//! lease is taken only when free and renewed only by its holder, a write with a stale
//! epoch is refused and changes nothing, and an acquisition waits for the transaction
//! of the leader it deposes.

use std::sync::Arc;
use std::time::Duration;

use marie_protocol::messages::RunRef;
use marie_protocol::{JobId, JobSpec, JobState};
use marie_store::postgres::fence::{Fence, Revoked};
use marie_store::postgres::lease::{Acquisition, LeaderLease, Renewal, Succession};
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_store::{GatewayStore, JobStore, JobUpdate, NewJob, StoreError, StoreErrorKind};
use marie_test_postgres::TestPostgres;

/// Long enough that a lease never expires by itself within a test.
const LONG: Duration = Duration::from_secs(600);
/// Short enough to wait out.
const SHORT: Duration = Duration::from_millis(200);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

fn new_job() -> NewJob {
    NewJob {
        id: JobId::generate(),
        spec: JobSpec::new("extract", "pdf-text", b"doc".to_vec()),
        max_attempts: 3,
        timeout_ms: 60_000,
        created_at_ms: 1_000,
    }
}

async fn open(server: &TestPostgres) -> PostgresStore {
    PostgresStore::open(PostgresOptions::new(server.url()))
        .await
        .expect("open the store")
}

fn lease(store: &PostgresStore, node: &str) -> LeaderLease {
    store
        .leader_lease(node, STATEMENT_TIMEOUT)
        .expect("a lease handle")
}

async fn acquired(lease: &LeaderLease, ttl: Duration) -> (u64, Succession) {
    match lease.acquire(ttl).await.expect("acquire") {
        Acquisition::Acquired { epoch, succession } => (epoch, succession),
        held => panic!("{} did not acquire: {held:?}", lease.node()),
    }
}

/// Waits until the lease of `ttl` has expired on the database's clock.
async fn wait_out(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_lease_is_taken_only_when_free_and_renewed_only_by_its_holder() {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let store = open(&server).await;
    let (a, b, c) = (lease(&store, "a"), lease(&store, "b"), lease(&store, "c"));

    assert_eq!(acquired(&a, LONG).await, (1, Succession::First));
    match b.acquire(LONG).await.expect("acquire") {
        Acquisition::Held {
            holder,
            epoch,
            expires_in: Some(left),
        } => {
            assert_eq!((holder.as_deref(), epoch), (Some("a"), 1));
            // The database's clock: what is left of the lease, no more than its time to
            // live.
            assert!(left <= LONG && left > LONG / 2, "time left: {left:?}");
        }
        held => panic!("b found {held:?}"),
    }
    assert_eq!(a.renew(1, LONG).await.expect("renew"), Renewal::Renewed);
    // Only the holder's process renews, whatever epoch it names.
    assert_eq!(
        b.renew(1, LONG).await.expect("renew"),
        Renewal::Lost {
            holder: Some("a".into()),
            current: 1
        }
    );

    // Released: the next node takes it at once.
    assert!(a.release(1).await.expect("release"));
    assert!(!a.release(1).await.expect("release twice"));
    assert_eq!(
        acquired(&b, SHORT).await,
        (2, Succession::Released { holder: "a".into() })
    );
    assert_eq!(
        a.renew(1, LONG).await.expect("renew"),
        Renewal::Lost {
            holder: Some("b".into()),
            current: 2
        }
    );

    // Expired: taken once its time to live is over on the database's clock.
    wait_out(SHORT).await;
    assert_eq!(
        acquired(&c, LONG).await,
        (3, Succession::Expired { holder: "b".into() })
    );
    assert_eq!(
        b.renew(2, LONG).await.expect("renew"),
        Renewal::Lost {
            holder: Some("c".into()),
            current: 3
        }
    );
    // A node restarted under the same name is another process: it cannot renew.
    let c_again = lease(&store, "c");
    assert!(matches!(
        c_again.renew(3, LONG).await.expect("renew"),
        Renewal::Lost { current: 3, .. }
    ));
    assert_eq!(c.renew(3, LONG).await.expect("renew"), Renewal::Renewed);
}

/// The job's state, attempt and leader epoch, as stored.
fn row(server: &TestPostgres, id: JobId) -> String {
    server
        .psql(&format!(
            "SELECT state || ',' || attempt || ',' || coalesce(leader_epoch::text, '-') \
             FROM jobs WHERE id = '{}'",
            id.0
        ))
        .expect("psql")
}

#[tokio::test]
async fn a_write_with_a_stale_epoch_is_refused_and_changes_nothing() {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let store = open(&server).await;
    let job = new_job();
    store.insert(vec![job.clone()]).await.expect("insert");

    let (old, new) = (lease(&store, "old"), lease(&store, "new"));
    let (epoch, _) = acquired(&old, SHORT).await;
    let old_fence = Arc::new(Fence::new(epoch, Duration::from_secs(3)));
    let old_store = store.fenced(old_fence.clone());
    let started = JobUpdate::Started {
        run: RunRef {
            job: job.id,
            attempt: 1,
        },
        executor: "x-1".into(),
        at_ms: 2_000,
    };
    old_store
        .update(vec![started])
        .await
        .expect("the leader writes");
    assert_eq!(row(&server, job.id), format!("running,1,{epoch}"));

    // The lease expires and another node takes it.
    wait_out(SHORT).await;
    let (current, _) = acquired(&new, LONG).await;
    assert_eq!(current, epoch + 1);

    let finished = JobUpdate::Finished {
        id: job.id,
        state: JobState::Succeeded,
        error: None,
        output: Some(b"late".to_vec()),
        at_ms: 3_000,
    };
    let err = old_store
        .update(vec![finished.clone()])
        .await
        .expect_err("a deposed leader's write");
    assert!(
        matches!(err, StoreError::Deposed { epoch: e, current: Some(c) } if e == epoch && c == current),
        "{err:?}"
    );
    assert_eq!(err.kind(), StoreErrorKind::Permanent);
    let message = err.failure().message;
    assert!(
        message.contains(&format!("epoch {epoch}"))
            && message.contains(&format!("epoch {current}")),
        "{message}"
    );
    assert_eq!(
        old_fence.until_revoked().await,
        Revoked::Superseded { current }
    );
    let err = old_store
        .recover()
        .await
        .expect_err("a deposed leader's recovery");
    assert!(matches!(err, StoreError::Deposed { .. }), "{err:?}");
    // Nothing changed: the job still runs its first attempt, as the old leader left it.
    assert_eq!(row(&server, job.id), format!("running,1,{epoch}"));
    assert_eq!(
        store.get(job.id).await.expect("get").map(|s| s.state),
        Some(JobState::Running)
    );

    // The new leader's writes pass and carry its epoch.
    let new_store = store.fenced(Arc::new(Fence::new(current, Duration::from_secs(3))));
    let recovered = new_store.recover().await.expect("recover");
    let running: Vec<JobId> = recovered.running.iter().map(|r| r.job.id).collect();
    assert_eq!(running, [job.id]);
    // A recovery writes nothing: the row is as the old leader left it.
    assert_eq!(row(&server, job.id), format!("running,1,{epoch}"));
    let ended = new_store
        .update(vec![finished])
        .await
        .expect("the new leader writes");
    assert_eq!(ended, vec![(job.id, JobState::Succeeded)]);

    // A fence the node revoked itself refuses at once, without the database.
    let revoked = Fence::new(current, Duration::from_secs(3));
    revoked.revoke();
    let err = store
        .fenced(Arc::new(revoked))
        .update(Vec::new())
        .await
        .expect_err("a revoked fence");
    assert!(
        matches!(err, StoreError::Deposed { current: None, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquisition_waits_for_the_deposed_leaders_transaction_in_flight() {
    let server = TestPostgres::start().expect("a throwaway Postgres server");
    let store = open(&server).await;
    let (old, new) = (lease(&store, "old"), lease(&store, "new"));
    let (epoch, _) = acquired(&old, SHORT).await;

    // A transaction of the old leader, as its writer opens one: the lease row under a
    // share lock, still its epoch.
    let (mut client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tx = client.transaction().await.expect("begin");
    let seen: i64 = tx
        .query_one("SELECT epoch FROM marie_leader WHERE id = 1 FOR SHARE", &[])
        .await
        .expect("lock the lease row")
        .get(0);
    assert_eq!(seen as u64, epoch);

    wait_out(SHORT).await;
    let acquiring = tokio::spawn(async move { new.acquire(LONG).await });
    // However long it is given, the acquisition cannot pass the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !acquiring.is_finished(),
        "the lease was taken while the old leader's transaction held it"
    );
    tx.commit().await.expect("the old leader commits");
    let acquisition = acquiring
        .await
        .expect("the task ends")
        .expect("acquire after the commit");
    assert!(
        matches!(acquisition, Acquisition::Acquired { epoch: e, .. } if e == epoch + 1),
        "{acquisition:?}"
    );
}
