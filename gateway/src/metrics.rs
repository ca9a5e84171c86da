//! Prometheus metrics (text exposition via prometheus-client) and a tiny HTTP responder.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::daemon::core::{Counts, Event};

/// A label set with one `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// A label set with one `exchange` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabel {
    /// Exchange type.
    pub exchange: String,
}

/// A label set with the UDP `port` kind (`ike` or `natt`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabel {
    /// `ike` or `natt`.
    pub port: String,
}

/// A label set with a `result` (`ok` or `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// A label set with a cluster `node`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// Node name.
    pub node: String,
}

/// A label set with a cluster event `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `took_over`, `transferred_in`, ...
    pub kind: String,
}

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// IKE SAs established since start.
    pub ike_sas_established: Counter,
    /// Current IKE SAs.
    pub ike_sas: Gauge,
    /// Current half-open IKE SAs.
    pub half_open: Gauge,
    /// Current Child SAs.
    pub child_sas: Gauge,
    /// Requests answered, by exchange type.
    pub exchanges: Family<ExchangeLabel, Counter>,
    /// Retransmitted requests answered from the cache (RFC 7296 §2.1).
    pub retransmits_answered: Counter,
    /// Datagrams dropped or refused by the core, by reason (decode error, notify sent...).
    pub dropped: Family<ReasonLabel, Counter>,
    /// Failed IKE_AUTH.
    pub auth_failures: Counter,
    /// Datagrams received, by port kind.
    pub datagrams_in: Family<PortLabel, Counter>,
    /// Datagrams sent, by port kind.
    pub datagrams_out: Family<PortLabel, Counter>,
    /// Datagrams the daemon dropped before the core (keepalives, ESP-in-UDP, runts).
    pub datagrams_ignored: Family<ReasonLabel, Counter>,
    /// Child SAs installed (incl. rekeys).
    pub child_sas_installed: Counter,
    /// Data plane errors.
    pub dataplane_errors: Counter,
    /// Configuration reloads, by result.
    pub reloads: Family<ResultLabel, Counter>,
    /// Cluster events (takeovers, transfers, RFC 6311 syncs, ack timeouts), by kind.
    pub cluster_events: Family<KindLabel, Counter>,
    /// RFC 6311 Message ID syncs the peer answered.
    pub mid_syncs_completed: Counter,
    /// Cluster members live in this node's view (this node included).
    pub cluster_members_live: Gauge,
    /// IKE SAs owned, per node, by this node's records.
    pub cluster_sas_owned: Family<NodeLabel, Gauge>,
    /// Replication lag (records queued or unacknowledged) toward each peer.
    pub cluster_replication_lag: Family<NodeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("baton");
        let m = Self {
            registry: Registry::default(),
            ike_sas_established: Counter::default(),
            ike_sas: Gauge::default(),
            half_open: Gauge::default(),
            child_sas: Gauge::default(),
            exchanges: Family::default(),
            retransmits_answered: Counter::default(),
            dropped: Family::default(),
            auth_failures: Counter::default(),
            datagrams_in: Family::default(),
            datagrams_out: Family::default(),
            datagrams_ignored: Family::default(),
            child_sas_installed: Counter::default(),
            dataplane_errors: Counter::default(),
            reloads: Family::default(),
            cluster_events: Family::default(),
            mid_syncs_completed: Counter::default(),
            cluster_members_live: Gauge::default(),
            cluster_sas_owned: Family::default(),
            cluster_replication_lag: Family::default(),
        };
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "ike_sas_established",
            "IKE SAs established",
            m.ike_sas_established.clone(),
        );
        registry.register("ike_sas", "Current IKE SAs", m.ike_sas.clone());
        registry.register(
            "ike_sas_half_open",
            "Current half-open IKE SAs",
            m.half_open.clone(),
        );
        registry.register("child_sas", "Current Child SAs", m.child_sas.clone());
        registry.register(
            "child_sas_installed",
            "Child SAs installed (incl. rekeys)",
            m.child_sas_installed.clone(),
        );
        registry.register(
            "exchanges",
            "Requests answered, by exchange type",
            m.exchanges.clone(),
        );
        registry.register(
            "retransmits_answered",
            "Retransmitted requests answered with the cached response",
            m.retransmits_answered.clone(),
        );
        registry.register(
            "dropped",
            "Messages dropped or refused by the protocol core, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed IKE_AUTH exchanges",
            m.auth_failures.clone(),
        );
        registry.register(
            "datagrams_received",
            "UDP datagrams received",
            m.datagrams_in.clone(),
        );
        registry.register(
            "datagrams_sent",
            "UDP datagrams sent",
            m.datagrams_out.clone(),
        );
        registry.register(
            "datagrams_ignored",
            "UDP datagrams not passed to the protocol core (keepalives, ESP-in-UDP, runts)",
            m.datagrams_ignored.clone(),
        );
        registry.register(
            "dataplane_errors",
            "Data plane operations that failed",
            m.dataplane_errors.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "cluster_events",
            "Cluster events by kind (took_over, transferred_in, transferred_out, lost_ownership, sync_started, ack_timeout)",
            m.cluster_events.clone(),
        );
        registry.register(
            "message_id_syncs_completed",
            "RFC 6311 Message ID synchronisations answered by the peer",
            m.mid_syncs_completed.clone(),
        );
        registry.register(
            "cluster_members_live",
            "Cluster members live in this node's view (this node included)",
            m.cluster_members_live.clone(),
        );
        registry.register(
            "cluster_sas_owned",
            "IKE SAs owned per node, by this node's records",
            m.cluster_sas_owned.clone(),
        );
        registry.register(
            "cluster_replication_lag",
            "Replication records queued or unacknowledged toward each peer",
            m.cluster_replication_lag.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts `e`.
    pub fn record(&self, e: &Event) {
        match e {
            Event::IkeUp { .. } => {
                self.ike_sas_established.inc();
            }
            Event::ChildUp { .. } => {
                self.child_sas_installed.inc();
            }
            Event::Exchange { exchange } => {
                self.exchanges
                    .get_or_create(&ExchangeLabel {
                        exchange: exchange.clone(),
                    })
                    .inc();
            }
            Event::RetransmitAnswered => {
                self.retransmits_answered.inc();
            }
            Event::Dropped { reason } => {
                self.dropped
                    .get_or_create(&ReasonLabel {
                        reason: reason.clone(),
                    })
                    .inc();
            }
            Event::AuthFailed { .. } => {
                self.auth_failures.inc();
            }
            Event::DataplaneError { .. } => {
                self.dataplane_errors.inc();
            }
            Event::MessageIdsSynced { .. } => {
                self.mid_syncs_completed.inc();
            }
            Event::Cluster { kind, .. } => {
                self.cluster_events
                    .get_or_create(&KindLabel {
                        kind: (*kind).to_owned(),
                    })
                    .inc();
            }
            Event::IkeDown { .. } | Event::IkeRekeyed { .. } | Event::ChildDown { .. } => {}
        }
    }

    /// Sets the cluster gauges from `ikectl cluster`'s view.
    pub fn set_cluster(&self, v: &crate::control::ClusterView) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.cluster_members_live
            .set(g(v.members.iter().filter(|m| m.live).count()));
        for m in &v.members {
            let l = NodeLabel {
                node: m.node.clone(),
            };
            self.cluster_sas_owned.get_or_create(&l).set(g(m.sas_owned));
            if let Some(lag) = m.replication_lag {
                self.cluster_replication_lag.get_or_create(&l).set(g(lag));
            }
        }
    }

    /// Sets the gauges.
    pub fn set_counts(&self, c: Counts) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.ike_sas.set(g(c.ike_sas));
        self.half_open.set(g(c.half_open));
        self.child_sas.set(g(c.child_sas));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Anything else gets 404;
/// slow or oversized requests are cut off.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = stream.read(buf.get_mut(len..).unwrap_or_default()).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf
                        .get(..len)
                        .is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n"))
                    {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let head = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let response = if head.starts_with("GET ") && (target == "/metrics" || target == "/") {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics endpoint.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ClusterCountersView, ClusterView, MemberView};

    #[test]
    fn cluster_gauges_in_the_exposition() {
        let m = Metrics::new();
        let member = |node: &str, live, sas_owned, lag| MemberView {
            node: node.into(),
            live,
            draining: false,
            sas_owned,
            connected: live,
            replication_lag: lag,
        };
        m.set_cluster(&ClusterView {
            node: "gw1".into(),
            epoch: 3,
            members: vec![
                member("gw1", true, 7, None),
                member("gw2", false, 2, Some(5)),
            ],
            records: 9,
            queued_transfers: 0,
            pools_paused: false,
            counters: ClusterCountersView::default(),
        });
        m.record(&Event::Cluster {
            kind: "took_over",
            sa: None,
            detail: String::new(),
        });
        let text = m.encode();
        for line in [
            "baton_cluster_members_live 1",
            "baton_cluster_sas_owned{node=\"gw1\"} 7",
            "baton_cluster_sas_owned{node=\"gw2\"} 2",
            "baton_cluster_replication_lag{node=\"gw2\"} 5",
            "baton_cluster_events_total{kind=\"took_over\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
