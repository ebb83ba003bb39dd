//! The checks [`Config::load`](super::Config::load) runs before anything starts: each
//! value a node cannot work with (a tick of 0, an empty token, a handler no build has) and
//! each pair of values that contradict each other (a heartbeat slower than the lease it
//! renews). Every problem is reported at once, naming the key as the TOML file and the
//! environment spell it, its value, and the fix.
//!
//! The rest of the node uses the values as they are: nothing downstream clamps a value
//! these checks let through, so what the user wrote is what runs. `marie k8s render`
//! loads through the same path and so refuses the same files.

use std::collections::BTreeSet;
use std::fmt;

use marie_decide::leadership::LeaderSettings;
use marie_decide::scheduling::SchedulerConfig;
use marie_gpu::MODEL_HANDLERS;
use marie_handlers::BUILTIN;
use marie_protocol::MAX_FRAME_PAYLOAD;

use super::{
    ClusterConfig, Config, GatewayConfig, HttpConfig, PoolConfig, StoreBackend, StoreConfig,
    SupervisorConfig,
};

/// A setting a node cannot work with: which key, what it holds, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key as the TOML file spells it: `scheduler.heartbeat_ms`,
    /// `executor.pools[0].slots`.
    pub key: String,
    /// The key's environment variable (`MARIE_SCHEDULER__HEARTBEAT_MS`); pools, a TOML
    /// array, have none.
    pub env: Option<String>,
    /// The value as configured; empty for a table, whose fix names its fields.
    pub value: String,
    /// Why the value cannot work, and how to fix it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(env) = &self.env {
            write!(f, " ({env})")?;
        }
        if !self.value.is_empty() {
            write!(f, " = {}", self.value)?;
        }
        write!(f, ": {}", self.fix)
    }
}

/// Every problem of `config`, in the order of the file's sections; empty when it can run.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut found = Problems::default();
    found.cluster(&config.cluster);
    found.http(&config.http);
    found.store(&config.store);
    found.leader(&config.leader);
    found.gateway(&config.gateway);
    found.scheduler(&config.scheduler);
    found.supervisor(&config.supervisor);
    found.pools(&config.executor.pools);
    found.0
}

/// The key of the Postgres store's URL, required only where the store is opened.
pub const STORE_URL: &str = "store.url";

/// `MARIE_SECTION__KEY` of `section.key`.
fn env_var(key: &str) -> String {
    format!("MARIE_{}", key.replace('.', "__").to_uppercase())
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// `key` (`section.key`) holds `value`, which cannot work.
    fn setting(&mut self, key: &str, value: impl fmt::Display, fix: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            env: Some(env_var(key)),
            value: value.to_string(),
            fix: fix.into(),
        });
    }

    /// `key` of the `index`-th pool holds `value`, which cannot work.
    fn pool(
        &mut self,
        (index, pool): (usize, &PoolConfig),
        key: &str,
        value: impl fmt::Display,
        fix: impl fmt::Display,
    ) {
        self.0.push(Problem {
            key: format!("executor.pools[{index}].{key}"),
            env: None,
            value: value.to_string(),
            fix: format!("in pool {:?}, {fix}", pool.name),
        });
    }

    /// `key` must be above 0; `why` says what it is for and its default.
    fn positive(&mut self, key: &str, value: u64, why: &str) {
        if value == 0 {
            self.setting(key, value, format!("must be above 0 ({why})"));
        }
    }

    /// A heartbeat (`key`) must come more often than the silence (`limit_key`) after
    /// which its sender is given up; `consequence` says what happens otherwise.
    fn heartbeat_below(
        &mut self,
        (key, value): (&str, u64),
        (limit_key, limit): (&str, u64),
        consequence: &str,
    ) {
        if value > 0 && value >= limit {
            self.setting(
                key,
                value,
                format!(
                    "must be below {limit_key} = {limit}, or {consequence}; lower {key} or raise {limit_key} ({})",
                    env_var(limit_key)
                ),
            );
        }
    }

    fn cluster(&mut self, cluster: &ClusterConfig) {
        self.positive(
            "cluster.heartbeat_ms",
            cluster.heartbeat_ms,
            "it is how often a node greets its peers; the default is 500",
        );
        self.heartbeat_below(
            ("cluster.heartbeat_ms", cluster.heartbeat_ms),
            ("cluster.down_after_ms", cluster.down_after_ms),
            "healthy peers are declared unreachable between two greetings",
        );
        self.positive(
            "cluster.tls_handshake_timeout_ms",
            cluster.tls_handshake_timeout_ms,
            "every TLS handshake would time out at once; the default is 2000",
        );
        if cluster.cookie.as_deref().is_some_and(str::is_empty) {
            self.setting(
                "cluster.cookie",
                "\"\"",
                "an empty cookie is no secret; set the cluster's shared secret, or unset the key to use cluster.cookie_file (or, on loopback, a generated cookie)",
            );
        }
    }

    fn store(&mut self, store: &StoreConfig) {
        self.positive(
            "store.max_batch",
            store.max_batch as u64,
            "a commit must take at least one write; the default is 1024",
        );
        self.positive(
            "store.pool_size",
            store.pool_size as u64,
            "the Postgres store needs a connection; the default is 8",
        );
        let url = store.url.as_deref().unwrap_or_default();
        if store.backend == StoreBackend::Postgres && url.trim().is_empty() {
            self.setting(
                STORE_URL,
                "\"\"",
                "store.backend = \"postgres\" needs the database's URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE; give it in MARIE_STORE__URL rather than in the file, since it holds the password",
            );
        }
    }

    fn leader(&mut self, leader: &LeaderSettings) {
        self.positive(
            "leader.renew_ms",
            leader.renew_ms,
            "it is how often the leader renews its lease; the default is 1000",
        );
        self.positive(
            "leader.ttl_ms",
            leader.ttl_ms,
            "it is how long a lease lasts without a renewal; the default is 3000",
        );
        if leader.renew_ms > 0 && leader.renew_ms.saturating_mul(2) >= leader.ttl_ms {
            self.setting(
                "leader.renew_ms",
                leader.renew_ms,
                format!(
                    "must be below half of leader.ttl_ms = {}, so that a renewal can fail and the next one still lands before the lease runs out; lower leader.renew_ms or raise leader.ttl_ms (MARIE_LEADER__TTL_MS)",
                    leader.ttl_ms
                ),
            );
        }
    }

    fn http(&mut self, http: &HttpConfig) {
        if http.auth_token.as_deref().is_some_and(str::is_empty) {
            self.setting(
                "http.auth_token",
                "\"\"",
                "an empty bearer token protects nothing; set a real token, or unset the key to serve the API without one",
            );
        }
    }

    fn gateway(&mut self, gateway: &GatewayConfig) {
        let payload = gateway.max_payload_bytes;
        self.positive(
            "gateway.max_payload_bytes",
            payload,
            "no document would be accepted; the default is 10485760 (10 MiB)",
        );
        if payload > MAX_FRAME_PAYLOAD {
            self.setting(
                "gateway.max_payload_bytes",
                payload,
                format!(
                    "must be at most {MAX_FRAME_PAYLOAD}: a job travels in one cluster frame (16 MiB, less 64 KiB for the rest of the message); lower it and split larger documents"
                ),
            );
        }
        self.positive(
            "gateway.max_attempts",
            u64::from(gateway.max_attempts),
            "a job needs at least one run; the default is 10",
        );
        let default = gateway.default_max_attempts;
        if default == 0 || default > gateway.max_attempts {
            self.setting(
                "gateway.default_max_attempts",
                default,
                format!(
                    "must be between 1 and gateway.max_attempts = {}, or every job that does not say is refused; the default is 3",
                    gateway.max_attempts
                ),
            );
        }
        self.positive(
            "gateway.default_timeout_secs",
            gateway.default_timeout_secs,
            "every job that does not give a timeout would be refused; the default is 300",
        );
    }

    fn scheduler(&mut self, scheduler: &SchedulerConfig) {
        self.positive(
            "scheduler.tick_ms",
            scheduler.tick_ms,
            "it paces lease expiry, run timeouts and retries; the default is 100",
        );
        self.positive(
            "scheduler.heartbeat_ms",
            scheduler.heartbeat_ms,
            "it is how often executors report they are alive; the default is 1000",
        );
        let heartbeat = ("scheduler.heartbeat_ms", scheduler.heartbeat_ms);
        self.heartbeat_below(
            heartbeat,
            ("scheduler.lease_ttl_ms", scheduler.lease_ttl_ms),
            "leases expire between two heartbeats and their jobs re-queue while they run",
        );
        self.heartbeat_below(
            heartbeat,
            (
                "scheduler.executor_timeout_ms",
                scheduler.executor_timeout_ms,
            ),
            "live executors are declared lost between two heartbeats",
        );
        if scheduler.backoff_base_ms > scheduler.backoff_max_ms {
            self.setting(
                "scheduler.backoff_base_ms",
                scheduler.backoff_base_ms,
                format!(
                    "must not be above scheduler.backoff_max_ms = {}, the longest wait between attempts; lower it or raise scheduler.backoff_max_ms (MARIE_SCHEDULER__BACKOFF_MAX_MS)",
                    scheduler.backoff_max_ms
                ),
            );
        }
    }

    fn supervisor(&mut self, supervisor: &SupervisorConfig) {
        self.positive(
            "supervisor.tick_ms",
            supervisor.tick_ms,
            "it is how often the Supervisor decides; the default is 250",
        );
        let kubernetes = &supervisor.kubernetes;
        self.positive(
            "supervisor.kubernetes.resync_ms",
            kubernetes.resync_ms,
            "it is how often the kubernetes backend reads each pool's replicas back to notice another writer; the default is 2000",
        );
        if kubernetes.namespace.as_deref().is_some_and(str::is_empty) {
            self.setting(
                "supervisor.kubernetes.namespace",
                "\"\"",
                "an empty namespace names no Deployment; set the pools' namespace, or unset the key to use the pod's own (or the kubeconfig context's)",
            );
        }
    }

    fn pools(&mut self, pools: &[PoolConfig]) {
        let mut seen = BTreeSet::new();
        for at in pools.iter().enumerate() {
            let (_, pool) = at;
            if pool.name.is_empty() {
                self.pool(
                    at,
                    "name",
                    "\"\"",
                    "every pool needs a name: jobs name their pool",
                );
            } else if !seen.insert(&pool.name) {
                let name = format!("{:?}", pool.name);
                self.pool(
                    at,
                    "name",
                    name,
                    "the pool is defined twice: rename or remove one",
                );
            }
            if pool.slots == 0 {
                self.pool(
                    at,
                    "slots",
                    0,
                    "must be at least 1: the jobs each executor runs at once",
                );
            }
            if pool.max_queued == 0 {
                self.pool(at, "max_queued", 0, "must be above 0, or every job is refused as \"queue full\"; the default is 100000");
            }
            self.handlers(at);
            if let Some(autoscale) = &pool.autoscale
                && let Err(e) = autoscale.validate()
            {
                self.pool(at, "autoscale", "", format_args!("{e}"));
            }
            if let Some(model) = &pool.model
                && let Err(e) = model.validate(&pool.name)
            {
                self.pool(at, "model", "", format_args!("{e}"));
            }
        }
    }

    fn handlers(&mut self, at: (usize, &PoolConfig)) {
        let (_, pool) = at;
        let list = format!("{:?}", pool.handlers);
        let known: Vec<&str> = BUILTIN
            .iter()
            .chain(MODEL_HANDLERS.iter())
            .copied()
            .collect();
        let offer = format!(
            "the handlers are {} (the last {} with an [executor.pools.model] table)",
            known.join(", "),
            MODEL_HANDLERS.len()
        );
        if pool.handlers.is_empty() {
            let fix = format!("a pool with no handlers runs no job: {offer}");
            self.pool(at, "handlers", list, fix);
            return;
        }
        let unknown: Vec<&String> = pool
            .handlers
            .iter()
            .filter(|h| !known.contains(&h.as_str()))
            .collect();
        if !unknown.is_empty() {
            let fix = format!("{unknown:?} is not a handler of this build: {offer}");
            self.pool(at, "handlers", &list, fix);
        }
        let model_handler = pool
            .handlers
            .iter()
            .find(|h| MODEL_HANDLERS.contains(&h.as_str()));
        if let (Some(handler), None) = (model_handler, &pool.model) {
            let fix = format!(
                "{handler:?} needs a model: add an [executor.pools.model] table, or remove {handler:?} from the handlers"
            );
            self.pool(at, "handlers", list, fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change to the default configuration.
    type Change = fn(&mut Config);

    /// The one problem of the default configuration changed by `change`, checked to
    /// name `key` in its message.
    fn refused(key: &str, change: impl FnOnce(&mut Config)) -> Problem {
        let mut config = Config::default();
        change(&mut config);
        let mut found = problems(&config);
        assert_eq!(found.len(), 1, "expected one problem: {found:#?}");
        let problem = found.remove(0);
        assert_eq!(problem.key, key);
        assert!(problem.to_string().starts_with(key), "{problem}");
        problem
    }

    /// As [`refused`], for a key of a section, whose message also names its variable.
    fn refused_setting(key: &str, change: impl FnOnce(&mut Config)) -> String {
        let problem = refused(key, change);
        let message = problem.to_string();
        assert!(message.contains(&env_var(key)), "{message}");
        message
    }

    #[test]
    fn the_defaults_have_no_problem() {
        assert_eq!(problems(&Config::default()), Vec::new());
    }

    #[test]
    fn env_var_spells_the_key_as_figment_reads_it() {
        assert_eq!(
            env_var("scheduler.heartbeat_ms"),
            "MARIE_SCHEDULER__HEARTBEAT_MS"
        );
    }

    #[test]
    fn a_leader_renewal_not_below_half_the_lease_ttl_is_refused() {
        let message = refused_setting("leader.renew_ms", |c| c.leader.renew_ms = 1_500);
        assert!(
            message.contains("= 1500: must be below half of leader.ttl_ms = 3000"),
            "{message}"
        );
        assert!(message.contains("MARIE_LEADER__TTL_MS"), "{message}");
    }

    #[test]
    fn a_scheduler_heartbeat_not_below_the_lease_ttl_is_refused() {
        let message = refused_setting("scheduler.heartbeat_ms", |c| {
            c.scheduler.heartbeat_ms = 10_000;
            c.scheduler.executor_timeout_ms = 20_000;
        });
        assert!(
            message.contains("= 10000: must be below scheduler.lease_ttl_ms = 10000"),
            "{message}"
        );
        assert!(
            message.contains("MARIE_SCHEDULER__LEASE_TTL_MS"),
            "{message}"
        );
    }

    #[test]
    fn a_scheduler_heartbeat_not_below_the_executor_timeout_is_refused() {
        let message = refused_setting("scheduler.heartbeat_ms", |c| {
            c.scheduler.heartbeat_ms = 15_000;
            c.scheduler.lease_ttl_ms = 20_000;
        });
        assert!(
            message.contains("below scheduler.executor_timeout_ms = 10000"),
            "{message}"
        );
    }

    #[test]
    fn a_cluster_heartbeat_not_below_down_after_is_refused() {
        let message = refused_setting("cluster.heartbeat_ms", |c| c.cluster.heartbeat_ms = 3000);
        assert!(
            message.contains("cluster.down_after_ms = 3000"),
            "{message}"
        );
    }

    #[test]
    fn zero_ticks_and_heartbeats_are_refused() {
        let zero: [(&str, Change); 8] = [
            ("scheduler.tick_ms", |c| c.scheduler.tick_ms = 0),
            ("scheduler.heartbeat_ms", |c| c.scheduler.heartbeat_ms = 0),
            ("supervisor.tick_ms", |c| c.supervisor.tick_ms = 0),
            ("supervisor.kubernetes.resync_ms", |c| {
                c.supervisor.kubernetes.resync_ms = 0
            }),
            ("cluster.heartbeat_ms", |c| c.cluster.heartbeat_ms = 0),
            ("cluster.tls_handshake_timeout_ms", |c| {
                c.cluster.tls_handshake_timeout_ms = 0
            }),
            ("store.max_batch", |c| c.store.max_batch = 0),
            ("store.pool_size", |c| c.store.pool_size = 0),
        ];
        for (key, change) in zero {
            let message = refused_setting(key, change);
            assert!(message.contains("= 0: must be above 0 ("), "{message}");
        }
    }

    #[test]
    fn a_postgres_store_without_a_url_is_refused() {
        for url in [None, Some(String::new())] {
            let message = refused_setting("store.url", |c| {
                c.store.backend = StoreBackend::Postgres;
                c.store.url = url;
            });
            assert!(message.contains("postgres://USER:PASSWORD@"), "{message}");
        }
    }

    #[test]
    fn an_empty_auth_token_is_refused() {
        let message = refused_setting("http.auth_token", |c| {
            c.http.auth_token = Some(String::new())
        });
        assert!(message.contains("unset the key"), "{message}");
    }

    #[test]
    fn an_empty_kubernetes_namespace_is_refused() {
        let message = refused_setting("supervisor.kubernetes.namespace", |c| {
            c.supervisor.kubernetes.namespace = Some(String::new())
        });
        assert!(
            message.contains("MARIE_SUPERVISOR__KUBERNETES__NAMESPACE"),
            "{message}"
        );
        assert!(message.contains("unset the key"), "{message}");
    }

    #[test]
    fn an_empty_cookie_is_refused() {
        let message = refused_setting("cluster.cookie", |c| c.cluster.cookie = Some(String::new()));
        assert!(message.contains("cluster.cookie_file"), "{message}");
    }

    #[test]
    fn a_payload_limit_over_the_cluster_frame_is_refused() {
        let message = refused_setting("gateway.max_payload_bytes", |c| {
            c.gateway.max_payload_bytes = MAX_FRAME_PAYLOAD + 1
        });
        assert!(
            message.contains(&format!("must be at most {MAX_FRAME_PAYLOAD}")),
            "{message}"
        );
        let mut at_limit = Config::default();
        at_limit.gateway.max_payload_bytes = MAX_FRAME_PAYLOAD;
        assert_eq!(problems(&at_limit), Vec::new());
    }

    #[test]
    fn gateway_defaults_that_refuse_every_job_are_refused() {
        let message = refused_setting("gateway.default_max_attempts", |c| {
            c.gateway.default_max_attempts = 11
        });
        assert!(message.contains("gateway.max_attempts = 10"), "{message}");
        refused_setting("gateway.default_timeout_secs", |c| {
            c.gateway.default_timeout_secs = 0
        });
        refused_setting("gateway.max_payload_bytes", |c| {
            c.gateway.max_payload_bytes = 0
        });
    }

    #[test]
    fn a_backoff_base_above_its_max_is_refused() {
        let message = refused_setting("scheduler.backoff_base_ms", |c| {
            c.scheduler.backoff_base_ms = 60_000
        });
        assert!(message.contains("backoff_max_ms = 30000"), "{message}");
    }

    #[test]
    fn an_unknown_handler_is_refused_with_the_handlers_there_are() {
        let problem = refused("executor.pools[1].handlers", |c| {
            c.executor.pools[1].handlers.push("ocr".into())
        });
        assert_eq!(problem.env, None);
        let message = problem.to_string();
        assert!(message.contains("in pool \"extract\""), "{message}");
        assert!(message.contains("[\"ocr\"] is not a handler"), "{message}");
        for name in BUILTIN.iter().chain(MODEL_HANDLERS.iter()) {
            assert!(message.contains(name), "{name} missing: {message}");
        }
    }

    #[test]
    fn a_model_handler_without_a_model_is_refused() {
        let problem = refused("executor.pools[2].handlers", |c| {
            c.executor.pools[2].model = None
        });
        assert!(problem.fix.contains("[executor.pools.model]"), "{problem}");
    }

    #[test]
    fn pools_that_can_run_no_job_are_refused() {
        let cases: [(&str, Change); 5] = [
            ("executor.pools[0].name", |c| {
                c.executor.pools[0].name.clear()
            }),
            ("executor.pools[1].name", |c| {
                c.executor.pools[1].name = "cpu-general".into()
            }),
            ("executor.pools[0].slots", |c| c.executor.pools[0].slots = 0),
            ("executor.pools[0].max_queued", |c| {
                c.executor.pools[0].max_queued = 0
            }),
            ("executor.pools[0].handlers", |c| {
                c.executor.pools[0].handlers.clear()
            }),
        ];
        for (key, change) in cases {
            refused(key, change);
        }
    }

    #[test]
    fn a_bad_autoscale_or_model_table_is_refused_with_its_own_reason() {
        let problem = refused("executor.pools[0].autoscale", |c| {
            c.executor.pools[0].autoscale = Some(marie_decide::autoscale::AutoscaleSettings {
                min: 3,
                max: 2,
                ..Default::default()
            })
        });
        assert!(
            problem.to_string().contains("min (3) is above max (2)"),
            "{problem}"
        );
        let problem = refused("executor.pools[2].model", |c| {
            if let Some(model) = &mut c.executor.pools[2].model {
                model.labels.clear();
            }
        });
        assert!(problem.fix.contains("labels is empty"), "{problem}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut config = Config::default();
        config.scheduler.tick_ms = 0;
        config.supervisor.tick_ms = 0;
        config.http.auth_token = Some(String::new());
        let keys: Vec<String> = problems(&config).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["http.auth_token", "scheduler.tick_ms", "supervisor.tick_ms"]
        );
    }
}
