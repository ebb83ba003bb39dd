//! `marie-client`: talk to a running Marie cluster from Rust.
//!
//! The client joins the cluster as a light node: it runs its own `NodeServer` on an
//! ephemeral loopback port, hosts no remotable actor, authenticates with the cluster's
//! cookie, and calls a Gateway found through the `marie.gateway` process group.
//!
//! ```no_run
//! # async fn demo() -> Result<(), marie_client::ClientError> {
//! use marie_client::Client;
//! use marie_protocol::JobSpec;
//! let client = Client::connect("127.0.0.1:52000", "the-cookie").await?;
//! let job = client.submit(JobSpec::new("cpu-general", "echo", b"hello".to_vec())).await?;
//! let status = client.wait(job.id, std::time::Duration::from_secs(30)).await?;
//! println!("{} is {}", status.id, status.state);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod connect;
mod error;
pub mod tls;

use std::time::Duration;

use marie_protocol::messages::{
    CapacityQuery, GatewayMsg, JobPage, ListQuery, Ping, Reply, Submitted, WaitFor,
};
use marie_protocol::{
    CapacityReport, GatewayError, JobId, JobSpec, JobState, JobStatus, MAX_FRAME_PAYLOAD,
};
use ractor::{ActorRef, RpcReplyPort};
use ractor_cluster::NodeServerMessage;

pub use connect::dial;
pub use error::ClientError;

/// Default time to wait for the cluster to answer one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a Marie cluster's Gateway.
#[derive(Clone)]
pub struct Client {
    gateway: ActorRef<GatewayMsg>,
    timeout: Duration,
    /// Keeps the client's node alive as long as the client.
    _node: Option<ActorRef<NodeServerMessage>>,
}

impl Client {
    /// Joins the cluster at `addr` (`host:port` of any node's cluster port) with its
    /// cookie, and finds a Gateway. Fails with a clear error when nothing listens there
    /// or the cookie is wrong.
    pub async fn connect(addr: &str, cookie: &str) -> Result<Client, ClientError> {
        Self::connect_with(addr, cookie, None, Duration::from_secs(5)).await
    }

    /// [`Client::connect`] over mutual TLS when `tls` is given (see [`tls`]), with a
    /// limit on how long joining may take.
    pub async fn connect_with(
        addr: &str,
        cookie: &str,
        tls: Option<&tls::TlsFiles>,
        join_timeout: Duration,
    ) -> Result<Client, ClientError> {
        let tls = tls.map(tls::client_config).transpose()?;
        let (node, gateway) = connect::join(addr, cookie, tls.as_ref(), join_timeout).await?;
        Ok(Client {
            gateway,
            timeout: DEFAULT_TIMEOUT,
            _node: Some(node),
        })
    }

    /// A client of the Gateway running in this very process (`marie up`, benchmarks).
    pub fn local() -> Result<Client, ClientError> {
        let gateway = connect::any_gateway().ok_or(ClientError::NoGateway {
            addr: "this process".into(),
        })?;
        Ok(Client {
            gateway,
            timeout: DEFAULT_TIMEOUT,
            _node: None,
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Submits a job; answers once it is durable.
    pub async fn submit(&self, spec: JobSpec) -> Result<Submitted, ClientError> {
        let size = spec.payload.len() as u64;
        if size > MAX_FRAME_PAYLOAD {
            let limit = MAX_FRAME_PAYLOAD;
            return Err(GatewayError::PayloadTooLarge { size, limit }.into());
        }
        self.call(|reply| GatewayMsg::Submit(spec, reply), self.timeout)
            .await
    }

    /// The job's status now.
    pub async fn status(&self, id: JobId) -> Result<JobStatus, ClientError> {
        self.call(|reply| GatewayMsg::Status(id, reply), self.timeout)
            .await
    }

    /// The job's status once it ends, or after `wait` if it has not ended by then.
    pub async fn wait(&self, id: JobId, wait: Duration) -> Result<JobStatus, ClientError> {
        let timeout_ms = wait.as_millis() as u64;
        let msg = |reply| GatewayMsg::Wait(WaitFor { id, timeout_ms }, reply);
        self.call(msg, wait + self.timeout).await
    }

    /// The output bytes of a succeeded job.
    pub async fn output(&self, id: JobId) -> Result<Vec<u8>, ClientError> {
        let output = self
            .call(|reply| GatewayMsg::Output(id, reply), self.timeout)
            .await?;
        Ok(output.0)
    }

    /// Cancels a queued or running job; answers its final state.
    pub async fn cancel(&self, id: JobId) -> Result<JobState, ClientError> {
        self.call(|reply| GatewayMsg::Cancel(id, reply), self.timeout)
            .await
    }

    /// Submits a job, and while the pool's queue is full waits the `Retry-After` the
    /// Gateway names and submits again, for at most `retry_for` in all; then answers the
    /// last refusal. Any other error is answered at once.
    pub async fn submit_retrying(
        &self,
        spec: JobSpec,
        retry_for: Duration,
    ) -> Result<Submitted, ClientError> {
        let give_up = tokio::time::Instant::now() + retry_for;
        loop {
            match self.submit(spec.clone()).await {
                Err(ClientError::Gateway(GatewayError::QueueFull {
                    retry_after_secs, ..
                })) if tokio::time::Instant::now() < give_up => {
                    let pause = Duration::from_secs(u64::from(retry_after_secs.max(1)));
                    tokio::time::sleep_until(give_up.min(tokio::time::Instant::now() + pause))
                        .await;
                }
                answer => return answer,
            }
        }
    }

    /// A page of jobs, newest first.
    pub async fn list(&self, query: ListQuery) -> Result<JobPage, ClientError> {
        self.call(|reply| GatewayMsg::List(query, reply), self.timeout)
            .await
    }

    /// The capacity report of every pool.
    pub async fn capacity(&self) -> Result<CapacityReport, ClientError> {
        self.call(
            |reply| GatewayMsg::Capacity(CapacityQuery, reply),
            self.timeout,
        )
        .await
    }

    /// A round trip to the Gateway that does nothing else: a liveness check, and the
    /// baseline against which a job's cost is measured.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self
            .gateway
            .call(|reply| GatewayMsg::Ping(Ping, reply), Some(self.timeout))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(_)) => Ok(()),
            Ok(ractor::rpc::CallResult::Timeout) => Err(ClientError::Timeout(self.timeout)),
            Ok(ractor::rpc::CallResult::SenderError) => Err(ClientError::Dropped),
            Err(e) => Err(ClientError::Send(Box::new(e))),
        }
    }

    async fn call<T>(
        &self,
        msg: impl FnOnce(RpcReplyPort<Reply<T>>) -> GatewayMsg,
        timeout: Duration,
    ) -> Result<T, ClientError>
    where
        T: Send + 'static,
        Reply<T>: ractor::Message,
    {
        match self.gateway.call(msg, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(Reply(result))) => Ok(result?),
            Ok(ractor::rpc::CallResult::Timeout) => Err(ClientError::Timeout(timeout)),
            Ok(ractor::rpc::CallResult::SenderError) => Err(ClientError::Dropped),
            Err(e) => Err(ClientError::Send(Box::new(e))),
        }
    }
}
