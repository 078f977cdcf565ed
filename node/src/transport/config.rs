//! What the peer transport needs to know, and the checks that turn a bad configuration into
//! an error at start instead of a panic or a silent misbehaviour later.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use wire::tls::ReloadingTls;

use crate::identity::ClusterMembership;

/// The peer transport's configuration.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This node's Raft id (ids start at 1, see `pod::node_id_from_pod_name`).
    pub own_id: u64,
    /// The cluster's name (`--cluster-name`). Nodes of different names refuse each other
    /// at the handshake, so a misconfigured peer list cannot merge two clusters' logs.
    pub cluster_name: String,
    /// This data dir's incarnation (`crate::identity`), carried in every handshake.
    pub incarnation: u64,
    /// The cluster this node is a member of; `None` while it is not one yet (it then only
    /// answers and sends probes, see `crate::bootstrap`, until `Transport::join`).
    pub membership: Option<ClusterMembership>,
    /// Where to listen for peers, e.g. `"0.0.0.0:7001"`.
    pub listen_address: String,
    /// Peer id -> `"host:port"`. DNS names are resolved on every connect, so a
    /// rescheduled pod's new address is picked up. An entry for `own_id` is ignored, so the
    /// same list can be given to every node.
    pub peers: BTreeMap<u64, String>,
    /// This node's client address, announced to peers so they can redirect clients here.
    pub advertised_client_address: String,
    /// Capacity of each peer's outbound queue, in messages.
    pub queue_messages_max: usize,
    /// First delay before reconnecting to a peer; doubles per failed attempt.
    pub reconnect_backoff_min: Duration,
    /// Upper bound of the reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Mutual TLS on every peer link, each side verifying that the other's certificate
    /// names the node id it claims (`wire::tls::node_name`). `None`: plain TCP
    /// (`--insecure`, and the simulation).
    pub tls: Option<Arc<ReloadingTls>>,
}

impl TransportConfig {
    /// Rejects what would later panic (a zero-capacity channel, an address madsim cannot
    /// parse) or misbehave (id 0, backoff bounds out of order).
    pub(super) fn validate(&self) -> io::Result<()> {
        let invalid = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        if self.own_id == 0 {
            return invalid("transport: own_id must be at least 1".to_string());
        }
        if self.cluster_name.is_empty() {
            return invalid("transport: cluster_name must not be empty".to_string());
        }
        if self.queue_messages_max == 0 {
            return invalid("transport: queue_messages_max must be at least 1".to_string());
        }
        if self.reconnect_backoff_min.is_zero() {
            // A zero delay would reconnect in a hot loop to a peer that refuses us.
            return invalid("transport: reconnect_backoff_min must be positive".to_string());
        }
        if self.reconnect_backoff_min > self.reconnect_backoff_max {
            return invalid(format!(
                "transport: reconnect_backoff_min {:?} exceeds reconnect_backoff_max {:?}",
                self.reconnect_backoff_min, self.reconnect_backoff_max
            ));
        }
        check_host_port("listen_address", &self.listen_address)?;
        for (&id, address) in &self.peers {
            if id == 0 {
                return invalid(format!("transport: peer id 0 (at {address:?}) is not a valid id"));
            }
            check_host_port(&format!("address of peer {id}"), address)?;
        }
        Ok(())
    }

    /// The peers this node talks to: every configured peer except itself.
    pub(super) fn remote_peers(&self) -> impl Iterator<Item = (u64, &String)> + '_ {
        self.peers
            .iter()
            .filter(|(&id, _)| id != self.own_id)
            .map(|(&id, address)| (id, address))
    }
}

/// Checks the `host:port` shape. Resolution happens on connect; this only catches typos,
/// and madsim's resolver panics on an address without a numeric port.
fn check_host_port(what: &str, address: &str) -> io::Result<()> {
    let valid = match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("transport: {what} {address:?} is not host:port"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> TransportConfig {
        TransportConfig {
            own_id: 1,
            cluster_name: "test".to_string(),
            incarnation: 1,
            membership: None,
            listen_address: "127.0.0.1:0".to_string(),
            peers: BTreeMap::from([(1, "a:1".to_string()), (2, "raftkv-1.raftkv:7001".to_string())]),
            advertised_client_address: "127.0.0.1:7000".to_string(),
            queue_messages_max: 4,
            reconnect_backoff_min: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(100),
            tls: None,
        }
    }

    #[test]
    fn valid_configuration_passes_and_skips_own_entry() {
        let config = valid();
        assert!(config.validate().is_ok());
        assert_eq!(
            config.remote_peers().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn bad_configurations_are_errors() {
        let cases: Vec<fn(&mut TransportConfig)> = vec![
            |c| c.own_id = 0,
            |c| c.cluster_name.clear(),
            |c| c.queue_messages_max = 0,
            |c| c.reconnect_backoff_min = Duration::ZERO,
            |c| c.reconnect_backoff_max = Duration::from_millis(1),
            |c| c.listen_address = "7001".to_string(),
            |c| {
                c.peers.insert(3, "raftkv-2".to_string());
            },
            |c| {
                c.peers.insert(3, ":7001".to_string());
            },
            |c| {
                c.peers.insert(0, "a:1".to_string());
            },
        ];
        for (index, break_config) in cases.into_iter().enumerate() {
            let mut config = valid();
            break_config(&mut config);
            let error = config.validate().expect_err("invalid configuration");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "case {index}: {error}");
        }
    }
}
