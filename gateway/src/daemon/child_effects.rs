//! Execution of the IKE core's effects on a data plane, shared by the standalone core
//! ([`super::endpoint_core`]) and a cluster node's core ([`super::cluster_core`]).

use std::collections::VecDeque;

use ike::endpoint::{ChildInstall, Effect, SaEvent};
use xfrm::{Dataplane, OwnedRange};

use super::core::{Event, Output};
use super::dataplane::{self, InstallOptions};
use super::endpoint_core::event;

/// Installs and deletes Child SAs, keeps a rekeyed Child SA's outbound SA until the
/// replaced one goes, and turns the other effects into [`Output`]s.
#[derive(Debug)]
pub(crate) struct ChildSaExecutor {
    owned: OwnedRange,
    /// Rekeyed Child SAs whose outbound SA waits for the replaced one's deletion (see
    /// [`dataplane::install`]), keyed by the replaced inbound SPI.
    pending_outbound: Vec<(u32, ChildInstall, InstallOptions)>,
    child_sas: usize,
}

fn error(out: &mut VecDeque<Output>, message: String) {
    out.push_back(Output::Event(Event::DataplaneError { message }));
}

impl ChildSaExecutor {
    pub(crate) fn new(owned: OwnedRange) -> Self {
        Self {
            owned,
            pending_outbound: Vec::new(),
            child_sas: 0,
        }
    }

    /// Child SAs up (by the core's events).
    pub(crate) fn child_sas(&self) -> usize {
        self.child_sas
    }

    /// Installs a Child SA with `opts` (a cluster's replay states and lease).
    pub(crate) fn install(
        &mut self,
        dp: &mut dyn Dataplane,
        ci: ChildInstall,
        opts: InstallOptions,
        out: &mut VecDeque<Output>,
    ) {
        match dataplane::install_with(dp, self.owned, &ci, &opts) {
            Err(m) => error(out, format!("install Child SA {:08x}: {m}", ci.inbound.spi)),
            Ok(()) => {
                if let Some((old_in, _)) = ci.replaces {
                    self.pending_outbound.push((old_in, ci, opts));
                }
            }
        }
    }

    /// Executes one effect of the IKE core.
    pub(crate) fn execute(
        &mut self,
        dp: &mut dyn Dataplane,
        e: Effect,
        out: &mut VecDeque<Output>,
    ) {
        match e {
            Effect::Send {
                local,
                remote,
                data,
            } => out.push_back(Output::Send {
                local,
                remote,
                data,
            }),
            Effect::InstallChild(ci) => self.install(dp, *ci, InstallOptions::default(), out),
            Effect::DeleteChild(cd) => {
                // The replaced Child SA goes: its successor's outbound SA comes in first,
                // so that sending never stops. A successor deleted before that never gets
                // one.
                let spi_in = cd.spi_in;
                let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_outbound)
                    .into_iter()
                    .filter(|(_, ci, _)| ci.inbound.spi != spi_in)
                    .partition(|(old_in, _, _)| *old_in == spi_in);
                self.pending_outbound = rest;
                for (_, ci, opts) in ready {
                    if let Err(m) = dataplane::install_outbound_with(dp, self.owned, &ci, &opts) {
                        error(
                            out,
                            format!("install outbound SA {:08x}: {m}", ci.outbound.spi),
                        );
                    }
                }
                if let Err(m) = dataplane::delete(dp, self.owned, &cd) {
                    error(out, format!("delete Child SA {:08x}: {m}", cd.spi_in));
                }
            }
            Effect::AdvanceOutboundSequence {
                spi_out,
                dst,
                delta,
            } => {
                let id = xfrm::SaId::esp(dst, xfrm::Spi(spi_out));
                let r = dp.get_replay_state(&id).and_then(|mut st| {
                    st.oseq = st.oseq.saturating_add(delta);
                    dp.set_replay_state(&id, &st)
                });
                if let Err(e) = r {
                    error(out, format!("advance sequence of {spi_out:08x}: {e}"));
                }
            }
            Effect::KeyLog(line) => out.push_back(Output::KeyLog(line)),
            Effect::NatKeepalive { local, remote } => {
                out.push_back(Output::NatKeepalive { local, remote });
            }
            Effect::Event(ev) => {
                match &ev {
                    SaEvent::ChildUp { .. } => self.child_sas += 1,
                    SaEvent::ChildDown { .. } => self.child_sas = self.child_sas.saturating_sub(1),
                    _ => {}
                }
                out.push_back(Output::Event(event(ev)));
            }
        }
    }
}
