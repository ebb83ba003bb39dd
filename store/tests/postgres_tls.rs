//! TLS to Postgres as `store.url`'s `sslmode` and `sslrootcert` ask, against a throwaway
//! server that takes TCP connections over TLS only (`hostssl` lines alone): `require`
//! connects, `verify-full` connects with the right CA and host name and is refused
//! otherwise, `verify-ca` takes another host name, `disable` is refused with the advice
//! to set sslmode, and the leader's lease connects as the store does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use marie_protocol::{JobId, JobSpec};
use marie_store::postgres::lease::Acquisition;
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_store::{GatewayStore, NewJob, StoreError, StoreErrorKind};
use marie_test_postgres::{DATABASE, PASSWORD, TestPostgres, USER};

fn server() -> TestPostgres {
    TestPostgres::start_with_tls().expect("a throwaway Postgres server taking TLS only")
}

/// The URL of `server`'s database at `host` (reached at 127.0.0.1) with `params`.
fn url(server: &TestPostgres, host: &str, params: &str) -> String {
    format!(
        "postgres://{USER}:{PASSWORD}@{host}:{}/{DATABASE}?hostaddr=127.0.0.1&{params}",
        server.port()
    )
}

/// That URL as an error shows it.
fn shown(server: &TestPostgres, host: &str, params: &str) -> String {
    url(server, host, params).replace(PASSWORD, "***")
}

fn ca(server: &TestPostgres) -> String {
    server.ca_file().expect("a CA file").display().to_string()
}

async fn open(url: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::open(PostgresOptions::new(url)).await
}

/// The error with every cause, as it reaches a log.
fn words(error: &StoreError) -> String {
    error.failure().message
}

/// Opens `url`, then writes and reads a job through it.
async fn works(url: &str) -> PostgresStore {
    let store = open(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {}", words(&e)));
    let job = NewJob {
        id: JobId::generate(),
        spec: JobSpec::new("extract", "pdf-text", b"doc".to_vec()),
        max_attempts: 3,
        timeout_ms: 60_000,
        created_at_ms: 1_000,
    };
    store.insert(vec![job.clone()]).await.expect("insert");
    let status = store.get(job.id).await.expect("get").expect("the job");
    assert_eq!(status.id, job.id);
    store
}

/// Opens `url`, which must be refused with every one of `parts` in the message, the
/// password in none of it.
async fn refused(url: &str, parts: &[&str]) -> String {
    let error = open(url).await.err().expect("refused");
    let message = words(&error);
    assert_eq!(error.kind(), StoreErrorKind::Permanent, "{message}");
    for part in parts {
        assert!(message.contains(part), "{part:?} is not in: {message}");
    }
    assert!(!message.contains(PASSWORD), "{message}");
    message
}

/// Marie's connections to `server` and whether each is over TLS (`t`/`f`).
fn marie_connections(server: &TestPostgres) -> String {
    server
        .psql(
            "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'marie'",
        )
        .expect("psql")
}

/// A CA that signed nothing of the server's, in `dir`.
fn other_ca(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("CA cert");
    let path = dir.join("other-ca.pem");
    std::fs::write(&path, cert.pem()).expect("write the CA");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_connects_over_tls_without_checking_the_certificate() {
    let server = server();
    let _store = works(&url(&server, "127.0.0.1", "sslmode=require")).await;
    let connections = marie_connections(&server);
    assert!(!connections.is_empty(), "no connection of marie's");
    assert!(!connections.contains('f'), "in the clear: {connections}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_with_the_ca_and_the_host_name_and_the_lease_does_too() {
    let server = server();
    let ca = ca(&server);
    for host in ["localhost", "127.0.0.1"] {
        works(&url(
            &server,
            host,
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await;
    }
    // The key=value form takes the same parameters.
    let pairs = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={USER} password={PASSWORD} dbname={DATABASE} sslmode=verify-full sslrootcert='{ca}'",
        server.port()
    );
    works(&pairs).await;

    let store = works(&url(
        &server,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    let lease = store
        .leader_lease("node-a", Duration::from_secs(10))
        .expect("a lease handle");
    let acquisition = lease
        .acquire(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the lease connects: {}", words(&e)));
    assert!(
        matches!(acquisition, Acquisition::Acquired { epoch: 1, .. }),
        "{acquisition:?}"
    );
    let connections = marie_connections(&server);
    assert!(!connections.contains('f'), "in the clear: {connections}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_another_ca_and_another_host_name_and_verify_ca_takes_the_name() {
    let server = server();
    let dir = tempfile::tempdir().expect("a directory");
    let other = other_ca(dir.path()).display().to_string();
    let wrong_ca = format!("sslmode=verify-full&sslrootcert={other}");
    let message = refused(
        &url(&server, "localhost", &wrong_ca),
        &[
            &shown(&server, "localhost", &wrong_ca),
            "store.url",
            "sslmode=verify-full",
            "give the CA that signed it as sslrootcert=PATH",
            "UnknownIssuer",
        ],
    )
    .await;
    assert!(message.contains("certificate"), "{message}");

    let ca = ca(&server);
    let right_ca = format!("sslmode=verify-full&sslrootcert={ca}");
    refused(
        &url(&server, "db.elsewhere.example", &right_ca),
        &[
            "sslmode=verify-full",
            "a host name the certificate names",
            "not valid for name",
        ],
    )
    .await;

    // verify-ca checks the chain alone: the other name passes, the other CA does not.
    works(&url(
        &server,
        "db.elsewhere.example",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await;
    refused(
        &url(
            &server,
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={other}"),
        ),
        &["sslmode=verify-ca", "UnknownIssuer"],
    )
    .await;
    // Given sslrootcert, require checks the chain as well, as libpq does.
    refused(
        &url(
            &server,
            "localhost",
            &format!("sslmode=require&sslrootcert={other}"),
        ),
        &["sslmode=require", "UnknownIssuer"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_against_a_tls_only_server_is_refused_with_the_advice_to_set_sslmode() {
    let server = server();
    refused(
        &url(&server, "127.0.0.1", "sslmode=disable"),
        &[
            &shown(&server, "127.0.0.1", "sslmode=disable"),
            "store.url",
            "with sslmode=disable",
            "set sslmode=require",
            "no encryption",
        ],
    )
    .await;
    // Unset, sslmode is prefer: TLS when the server offers it.
    let _store = works(&url(&server, "127.0.0.1", "application_name=marie")).await;
}

#[tokio::test]
async fn an_unknown_sslmode_or_a_missing_ca_file_is_refused_naming_the_setting() {
    let at = "postgres://marie:s3cret@127.0.0.1:1/marie";
    let message = refused(
        &format!("{at}?sslmode=allow"),
        &["store.url", "sslmode=allow", "verify-full"],
    )
    .await;
    assert!(!message.contains("s3cret"), "{message}");
    let message = refused(
        &format!("{at}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        &[
            "store.url",
            "sslmode=verify-full",
            "sslrootcert=/nonexistent/ca.pem",
        ],
    )
    .await;
    assert!(!message.contains("s3cret"), "{message}");
}
