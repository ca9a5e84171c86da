//! The interface the gateway and the cluster drive.

use std::net::IpAddr;

use crate::error::Result;
use crate::types::{
    DataplaneEvent, FlushReport, PolicyId, PolicySpec, Protocol, ReplayState, SaCounters, SaId,
    SaInfo, SaSpec, Spi, SpiRange,
};

/// The kernel's IPsec data plane (or a model of it).
///
/// Calls are synchronous: each is one or two netlink round trips. Errors say
/// which object and which kernel answer (see [`crate::Error`]).
pub trait Dataplane: Send {
    /// Reserves a free SPI in `range` for an inbound SA from `src` to `dst`
    /// (XFRM_MSG_ALLOCSPI). The kernel holds it as a larval SA for
    /// `net.core.xfrm_acq_expires` seconds (30 by default); [`Dataplane::add_sa`]
    /// replaces that larval SA when this data plane allocated the SPI.
    fn alloc_spi(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: Protocol,
        reqid: u32,
        range: SpiRange,
    ) -> Result<Spi>;

    /// Installs an SA (XFRM_MSG_NEWSA; XFRM_MSG_UPDSA over a larval SA from
    /// [`Dataplane::alloc_spi`]). Fails with `Exists` if the SA is installed.
    fn add_sa(&mut self, sa: &SaSpec) -> Result<()>;

    /// Updates an installed SA (XFRM_MSG_UPDSA): the kernel takes the new
    /// lifetimes and UDP encapsulation ports (NAT-T mapping changes); keys
    /// and algorithms cannot change, and encapsulation can be changed but
    /// not added or removed (EINVAL).
    fn update_sa(&mut self, sa: &SaSpec) -> Result<()>;

    /// Removes an SA (XFRM_MSG_DELSA). `NotFound` if it is not there.
    fn delete_sa(&mut self, id: &SaId) -> Result<()>;

    /// Reads an SA back, keys, counters and statistics included (XFRM_MSG_GETSA).
    fn get_sa(&mut self, id: &SaId) -> Result<SaInfo>;

    /// Every SA in the data plane, baton's or not (XFRM_MSG_GETSA dump).
    fn list_sas(&mut self) -> Result<Vec<SaInfo>>;

    /// Installs a policy (XFRM_MSG_NEWPOLICY). `Exists` if one with the same
    /// selector and direction is installed.
    fn add_policy(&mut self, policy: &PolicySpec) -> Result<()>;

    /// Installs or replaces the policy with this selector and direction
    /// (XFRM_MSG_UPDPOLICY), e.g. swapping a block policy for an IPsec one.
    fn update_policy(&mut self, policy: &PolicySpec) -> Result<()>;

    /// Removes a policy (XFRM_MSG_DELPOLICY). `NotFound` if it is not there.
    fn delete_policy(&mut self, id: &PolicyId) -> Result<()>;

    /// Every policy in the data plane (XFRM_MSG_GETPOLICY dump).
    fn list_policies(&mut self) -> Result<Vec<PolicySpec>>;

    /// Reads the replay state (XFRM_MSG_GETAE).
    fn get_replay_state(&mut self, id: &SaId) -> Result<ReplayState>;

    /// Sets the replay state (XFRM_MSG_NEWAE): outbound sequence number,
    /// inbound top and bitmap.
    fn set_replay_state(&mut self, id: &SaId, state: &ReplayState) -> Result<()>;

    /// Reads byte and packet counters (XFRM_MSG_GETAE).
    fn get_counters(&mut self, id: &SaId) -> Result<SaCounters>;

    /// Returns the events that arrived since the last call, without blocking.
    fn poll_events(&mut self) -> Result<Vec<DataplaneEvent>>;

    /// Removes baton's own SAs and policies (by reqid range), e.g. leftovers
    /// of a previous run at start-up.
    fn flush_own(&mut self) -> Result<FlushReport>;
}
