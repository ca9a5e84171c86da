//! The real protocol core: `ike::endpoint::Endpoint`, with its data-plane effects
//! executed on the configured [`xfrm::Dataplane`] and the kernel's expiry events fed back.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use ike::endpoint::{Endpoint, EndpointConfig, IkeSaInfo, SaEvent};
use ike::sa::IkeSaId;
use xfrm::{Dataplane, DataplaneEvent, OwnedRange};

use super::child_effects::ChildSaExecutor;
use super::core::{Core, Counts, Event, Output};
use crate::config::{DataplaneKind, GatewayConfig};
use crate::control::{ChildSaView, IkeSaView};

/// How often the data plane is asked for expiry events.
const DATAPLANE_POLL: Duration = Duration::from_secs(1);

/// The endpoint's configuration from the gateway's.
pub fn endpoint_config(cfg: &GatewayConfig) -> EndpointConfig {
    let mut c = EndpointConfig::new(&ike::crypto::DEFAULT_PROVIDER);
    c.connections.clone_from(&cfg.connections);
    c.secrets.clone_from(&cfg.secrets);
    c.pools.clone_from(&cfg.pools);
    c.cookie_threshold = cfg.gateway.cookie_threshold;
    c.half_open_limit = cfg.gateway.half_open_limit;
    c.half_open_timeout = cfg.gateway.half_open_timeout;
    c
}

/// Request IDs of a cluster node's kernel objects: wider than a single gateway's
/// (`OwnedRange::default()`), since every node's Child SAs get a reqid of their own
/// share and keep it wherever they move.
pub const CLUSTER_OWNED: OwnedRange = OwnedRange {
    min: 0x4300_0000,
    max: 0x43ff_ffff,
};

/// The reqid range of this daemon's kernel objects.
pub fn owned_range(cfg: &GatewayConfig) -> OwnedRange {
    if cfg.cluster.is_some() {
        CLUSTER_OWNED
    } else {
        OwnedRange::default()
    }
}

/// Opens the data plane `cfg` asks for.
pub fn open_dataplane(cfg: &GatewayConfig) -> Result<Box<dyn Dataplane>, String> {
    let owned = owned_range(cfg);
    match cfg.gateway.dataplane {
        DataplaneKind::Memory => {
            let mut seed = [0u8; 8];
            ike::crypto::fill_random(&mut seed);
            Ok(Box::new(xfrm::MemoryDataplane::new(
                owned,
                u64::from_le_bytes(seed),
            )))
        }
        DataplaneKind::Xfrm => {
            let mut dp = xfrm::KernelDataplane::open_with_events(owned).map_err(|e| {
                format!("{e} (dataplane = \"xfrm\" needs CAP_NET_ADMIN; \"memory\" needs nothing)")
            })?;
            // A fresh daemon has no SAs: whatever the kernel still holds under our reqids
            // was left by a previous run that died, and would shadow new Child SAs.
            match dp.flush_own() {
                Ok(r) if r.sas > 0 || r.policies > 0 => {
                    tracing::warn!(
                        sas = r.sas,
                        policies = r.policies,
                        "removed stale kernel state of a previous run"
                    );
                }
                Ok(_) => {}
                Err(e) => return Err(format!("cannot flush stale kernel state: {e}")),
            }
            Ok(Box::new(dp))
        }
    }
}

/// `ike::endpoint::Endpoint` plus its data plane.
pub struct EndpointCore {
    endpoint: Endpoint,
    dataplane: Box<dyn Dataplane>,
    out: VecDeque<Output>,
    children: ChildSaExecutor,
    next_dataplane_poll: Instant,
}

impl std::fmt::Debug for EndpointCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCore")
            .field("child_sas", &self.children.child_sas())
            .finish_non_exhaustive()
    }
}

impl EndpointCore {
    /// A core for `cfg` on `dataplane`.
    pub fn new(cfg: &GatewayConfig, dataplane: Box<dyn Dataplane>, now: Instant) -> Self {
        let mut endpoint = Endpoint::new(endpoint_config(cfg), now);
        endpoint.set_wall_clock(now, SystemTime::now());
        Self {
            endpoint,
            dataplane,
            out: VecDeque::new(),
            children: ChildSaExecutor::new(OwnedRange::default()),
            next_dataplane_poll: now + DATAPLANE_POLL,
        }
    }

    /// Moves the endpoint's effects into `out`, executing data-plane ones on the way.
    fn pump(&mut self) {
        while let Some(e) = self.endpoint.poll_effect() {
            self.children
                .execute(self.dataplane.as_mut(), e, &mut self.out);
        }
    }

    fn poll_dataplane(&mut self, now: Instant) {
        let events = match self.dataplane.poll_events() {
            Ok(e) => e,
            Err(e) => {
                self.out.push_back(Output::Event(Event::DataplaneError {
                    message: format!("events: {e}"),
                }));
                return;
            }
        };
        for e in events {
            match e {
                DataplaneEvent::SoftExpire { sa, .. } => {
                    self.endpoint.handle_child_expire(now, sa.spi.0, false);
                }
                DataplaneEvent::HardExpire { sa, .. } => {
                    self.endpoint.handle_child_expire(now, sa.spi.0, true);
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn event(e: SaEvent) -> Event {
    match e {
        SaEvent::IkeUp {
            id,
            connection,
            remote,
        } => Event::IkeUp {
            id: id.to_string(),
            connection,
            remote,
        },
        SaEvent::IkeDown { id, reason } => Event::IkeDown {
            id: id.to_string(),
            reason: reason.to_owned(),
        },
        SaEvent::IkeRekeyed { old, new } => Event::IkeRekeyed {
            old: old.to_string(),
            new: new.to_string(),
        },
        SaEvent::ChildUp {
            ike_sa,
            spi_in,
            rekey,
        } => Event::ChildUp {
            ike_sa: ike_sa.to_string(),
            spi_in,
            rekey,
        },
        SaEvent::ChildDown { ike_sa, spi_in } => Event::ChildDown {
            ike_sa: ike_sa.to_string(),
            spi_in,
        },
        SaEvent::Exchange { exchange } => Event::Exchange {
            exchange: exchange.to_owned(),
        },
        SaEvent::RetransmitAnswered => Event::RetransmitAnswered,
        SaEvent::Dropped { reason } => Event::Dropped {
            reason: reason.to_owned(),
        },
        SaEvent::AuthFailed { remote } => Event::AuthFailed { remote },
        SaEvent::MessageIdsSynced { id } => Event::MessageIdsSynced { id: id.to_string() },
        SaEvent::InitiationFailed { id, reason } => Event::IkeDown {
            id: id.to_string(),
            reason: format!("initiation failed: {reason:?}"),
        },
    }
}

/// The operator view of an endpoint's IKE SA (owner is filled in by the daemon).
pub fn view(i: IkeSaInfo) -> IkeSaView {
    IkeSaView {
        id: i.id.to_string(),
        connection: i.connection,
        state: i.state.to_owned(),
        local_id: i.local_id,
        remote_id: i.remote_id,
        local_addr: i.local_addr.to_string(),
        remote_addr: i.remote_addr.to_string(),
        spi_i: i.spi_i,
        spi_r: i.spi_r,
        owner: String::new(),
        proposal: i.proposal,
        virtual_ip: i.virtual_ip.map(|a| a.to_string()),
        remote_vips: i.virtual_ip.iter().map(ToString::to_string).collect(),
        nat_remote: i.nat_remote,
        established_secs: i.established_secs,
        children: i
            .children
            .into_iter()
            .map(|c| ChildSaView {
                name: c.name,
                spi_in: format!("{:08x}", c.spi_in),
                spi_out: format!("{:08x}", c.spi_out),
                local_ts: c.local_ts,
                remote_ts: c.remote_ts,
                state: c.state.to_owned(),
                proposal: c.proposal,
            })
            .collect(),
    }
}

impl Core for EndpointCore {
    fn name(&self) -> &'static str {
        "ike::endpoint"
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
        data: &[u8],
    ) {
        self.endpoint.handle_datagram(now, local, remote, data);
        self.pump();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_dataplane_poll {
            self.poll_dataplane(now);
            self.next_dataplane_poll = now + DATAPLANE_POLL;
        }
        self.endpoint.handle_timeout(now);
        self.pump();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(
            self.endpoint
                .poll_timeout()
                .map_or(self.next_dataplane_poll, |t| {
                    t.min(self.next_dataplane_poll)
                }),
        )
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.pump();
        self.out.pop_front()
    }

    fn terminate(&mut self, now: Instant, id: &str) -> bool {
        let Ok(n) = u64::from_str_radix(id, 16) else {
            return false;
        };
        let ok = self.endpoint.terminate(now, IkeSaId(n));
        self.pump();
        ok
    }

    fn list(&self, now: Instant) -> Vec<IkeSaView> {
        self.endpoint.list(now).into_iter().map(view).collect()
    }

    fn reconfigure(&mut self, config: &GatewayConfig) {
        self.endpoint.reconfigure(endpoint_config(config));
    }

    fn dataplane_sas(&mut self) -> Option<usize> {
        self.dataplane.list_sas().ok().map(|v| v.len())
    }

    fn counts(&self) -> Counts {
        Counts {
            ike_sas: self.endpoint.ike_sa_count(),
            half_open: self.endpoint.half_open_count(),
            child_sas: self.children.child_sas(),
        }
    }
}
