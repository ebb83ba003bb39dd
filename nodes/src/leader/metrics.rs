//! The election's gauges: `marie_leader{node}` (1 on the node that holds the lease, 0
//! on a standby) and `marie_leader_epoch{node}` (the lease's epoch as this node last
//! saw it), read from the keeper's status at every scrape.

use opentelemetry::KeyValue;

use super::{LeaderView, Lease};

/// Registers the gauges of the node whose view is `view`, once per process.
pub fn register(view: LeaderView) {
    let meter = opentelemetry::global::meter("marie");
    let node = KeyValue::new("node", view.node.clone());
    let leading = view.clone();
    let label = node.clone();
    // The instruments live as long as the meter provider: their callbacks are kept.
    let _ = meter
        .u64_observable_gauge("marie_leader")
        .with_description("1 on the server node that holds the leader's lease, 0 on a standby")
        .with_callback(move |observer| {
            let leads = matches!(&*leading.lease.borrow(), Lease::Leading { .. });
            observer.observe(u64::from(leads), std::slice::from_ref(&label));
        })
        .build();
    let _ = meter
        .u64_observable_gauge("marie_leader_epoch")
        .with_description("The epoch of the leader's lease, as this node last saw it")
        .with_callback(move |observer| {
            let epoch = match &*view.lease.borrow() {
                Lease::Leading { epoch, .. } | Lease::Standby { epoch, .. } => Some(*epoch),
                Lease::Lost => None,
            };
            if let Some(epoch) = epoch {
                observer.observe(epoch, std::slice::from_ref(&node));
            }
        })
        .build();
}
