//! Who a node is and where others reach it: `node.name` and `cluster.advertise`, with
//! `"auto"` resolved at start. Every node started from one `cluster.toml` (pods of a
//! Deployment, Compose replicas, several nodes on one machine) gets a name and an address
//! of its own.
//!
//! The choices are pure functions of what was found (host name, routes), so they are
//! tested without touching the network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use anyhow::{Context, bail};

use crate::config::Config;

/// The value of `node.name` and `cluster.advertise` that asks for one to be found.
pub const AUTO: &str = "auto";

/// Resolves `node.name` and `cluster.advertise` in `config` to what this node uses.
pub fn resolve(config: &mut Config) -> anyhow::Result<()> {
    let port = config.cluster.port;
    if config.node.name == AUTO {
        config.node.name = node_name(AUTO, &hostname()?, port);
    }
    let cluster = &config.cluster;
    let bind = SocketAddr::new(cluster.host, port);
    let advertised = advertise(cluster.advertise.as_deref(), bind, || {
        auto_address(&cluster.seeds, route_towards, || host_address(&hostname()?))
    })?;
    config.cluster.advertise = Some(advertised);
    Ok(())
}

/// `node.name`: `"auto"` is `<hostname>-<cluster port>` (on Kubernetes the host name is
/// the pod name); anything else is used as is.
pub fn node_name(configured: &str, hostname: &str, port: u16) -> String {
    match configured {
        AUTO => format!("{hostname}-{port}"),
        name => name.to_owned(),
    }
}

/// `cluster.advertise`: unset is the bind address `host:port`; `"auto"` is the address
/// `auto` finds joined with the cluster port; anything else is used as is.
pub fn advertise(
    configured: Option<&str>,
    bind: SocketAddr,
    auto: impl FnOnce() -> anyhow::Result<IpAddr>,
) -> anyhow::Result<String> {
    Ok(match configured {
        None => bind.to_string(),
        Some(AUTO) => {
            let ip = auto().context("cluster.advertise = \"auto\" found no address")?;
            SocketAddr::new(ip, bind.port()).to_string()
        }
        Some(addr) => addr.to_owned(),
    })
}

/// The address `"auto"` advertises: the one of the interface that routes to the first
/// seed, or, without seeds or while the seed's name does not resolve yet (its container
/// is still starting), the host name's address.
pub fn auto_address(
    seeds: &[String],
    route: impl FnOnce(&str) -> anyhow::Result<IpAddr>,
    host: impl FnOnce() -> anyhow::Result<IpAddr>,
) -> anyhow::Result<IpAddr> {
    let Some(seed) = seeds.first() else {
        return host();
    };
    match route(seed) {
        Ok(ip) => Ok(ip),
        Err(e) => {
            tracing::warn!(%seed, error = %format!("{e:#}"), "no route to the first seed yet; advertising the host name's address");
            host().with_context(|| format!("and no route to the seed {seed}: {e:#}"))
        }
    }
}

/// The host part of an advertised `host:port` (without the brackets of an IPv6 address).
pub fn advertised_host(advertised: &str) -> &str {
    let host = advertised
        .rsplit_once(':')
        .map_or(advertised, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The local address of the interface that routes to `seed` (`host:port`). Connecting
/// a UDP socket only picks the route: no packet is sent.
fn route_towards(seed: &str) -> anyhow::Result<IpAddr> {
    let target = seed
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the seed {seed}"))?
        .next()
        .with_context(|| format!("the seed {seed} resolves to no address"))?;
    let any: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0)).context("cannot open a UDP socket")?;
    socket
        .connect(target)
        .with_context(|| format!("no route to the seed {seed}"))?;
    let ip = socket
        .local_addr()
        .context("the UDP socket has no address")?
        .ip();
    if ip.is_unspecified() {
        bail!("no interface routes to the seed {seed}");
    }
    Ok(ip)
}

/// The first address the host name resolves to, preferring one beyond loopback.
fn host_address(hostname: &str) -> anyhow::Result<IpAddr> {
    let ips: Vec<IpAddr> = (hostname, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the host name {hostname}"))?
        .map(|a| a.ip())
        .collect();
    ips.iter()
        .find(|ip| !ip.is_loopback())
        .or(ips.first())
        .copied()
        .with_context(|| format!("the host name {hostname} resolves to no address"))
}

/// This machine's (or pod's) host name.
fn hostname() -> anyhow::Result<String> {
    let name = nix::unistd::gethostname().context("cannot read the host name")?;
    match name.to_str() {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => {
            bail!("the host name {name:?} is empty or not UTF-8: set node.name (MARIE_NODE__NAME)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 52000);

    fn never() -> anyhow::Result<IpAddr> {
        panic!("not asked for")
    }

    #[test]
    fn an_auto_name_is_the_host_name_and_the_cluster_port_and_an_explicit_one_is_kept() {
        assert_eq!(
            node_name(AUTO, "marie-gateway-7d9f-x2", 52000),
            "marie-gateway-7d9f-x2-52000"
        );
        assert_ne!(
            node_name(AUTO, "laptop", 52000),
            node_name(AUTO, "laptop", 52001)
        );
        assert_ne!(node_name(AUTO, "a", 52000), node_name(AUTO, "b", 52000));
        assert_eq!(node_name("server", "laptop", 52000), "server");
    }

    #[test]
    fn advertise_unset_is_the_bind_address_explicit_is_kept_auto_joins_the_port() {
        assert_eq!(advertise(None, BIND, never).unwrap(), "0.0.0.0:52000");
        assert_eq!(
            advertise(Some("marie-server-0.marie-server:52000"), BIND, never).unwrap(),
            "marie-server-0.marie-server:52000"
        );
        let pod = || Ok(IpAddr::from([10, 1, 2, 3]));
        assert_eq!(advertise(Some(AUTO), BIND, pod).unwrap(), "10.1.2.3:52000");
        let v6 = || Ok(IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)));
        assert_eq!(advertise(Some(AUTO), BIND, v6).unwrap(), "[fd00::7]:52000");
        let err = advertise(Some(AUTO), BIND, || bail!("no network")).unwrap_err();
        assert!(format!("{err:#}").contains("no network"), "{err:#}");
    }

    #[test]
    fn auto_takes_the_route_to_the_first_seed_else_the_host_name() {
        let seeds = vec!["marie-server:52000".to_string(), "other:52000".to_string()];
        let route = |seed: &str| {
            assert_eq!(seed, "marie-server:52000");
            Ok(IpAddr::from([172, 18, 0, 4]))
        };
        let host = || Ok(IpAddr::from([172, 18, 0, 9]));
        assert_eq!(
            auto_address(&seeds, route, never).unwrap(),
            IpAddr::from([172, 18, 0, 4])
        );
        assert_eq!(
            auto_address(&[], |_| never(), host).unwrap(),
            IpAddr::from([172, 18, 0, 9])
        );
        let unresolved = |_: &str| bail!("cannot resolve the seed");
        assert_eq!(
            auto_address(&seeds, unresolved, host).unwrap(),
            IpAddr::from([172, 18, 0, 9])
        );
    }

    #[test]
    fn the_route_to_a_loopback_seed_is_loopback() {
        assert_eq!(
            route_towards("127.0.0.1:9").unwrap(),
            IpAddr::from([127, 0, 0, 1])
        );
    }

    #[test]
    fn the_advertised_host_drops_the_port_and_brackets() {
        assert_eq!(advertised_host("10.1.2.3:52000"), "10.1.2.3");
        assert_eq!(advertised_host("[fd00::7]:52000"), "fd00::7");
        assert_eq!(
            advertised_host("marie-server-0.marie-server:52000"),
            "marie-server-0.marie-server"
        );
    }
}
