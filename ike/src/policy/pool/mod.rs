//! Virtual IP address pools (RFC 7296 §3.15, `[pool.NAME]`).
//!
//! Every operation is O(log n) in the number of addresses handed out so far, and memory
//! grows with the addresses actually used, not with the size of the range, so an IPv6
//! pool of any size is fine. Never-used addresses are handed out first (in order), then
//! released ones nobody remembers, then the least recently released remembered ones; an
//! identity that reconnects gets its previous address back while that is free. An address
//! that is leased is never handed out again until released: the cluster replicates leases
//! with [`AddressPool::mark_leased`] so that holds across nodes.
//!
//! A cluster node hands out only its own share of a pool ([`AddressPool::set_filter`]: a
//! fixed partition of the addresses among the configured nodes), so two nodes never lease
//! the same address, even when they cannot reach each other; leases of any address can
//! still be recorded with [`AddressPool::mark_leased`].

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::config::{Identity, PoolConfig};
use crate::endpoint::Endpoint;

/// Which addresses of a pool this endpoint may hand out (a cluster node's share). It must
/// give the same answer for an address every time it is asked.
pub type PoolFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// A [`PoolFilter`] slot with a `Debug` that does not try to print the closure.
#[derive(Clone, Default)]
pub(crate) struct Share(pub(crate) Option<PoolFilter>);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Share(filtered)"
        } else {
            "Share(all)"
        })
    }
}

/// Why a pool could not be built or a lease recorded.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PoolError {
    /// `first` and `last` are of different address families, or `first` > `last`.
    #[error("pool \"{pool}\": invalid range {first} - {last}")]
    InvalidRange {
        /// Pool name.
        pool: String,
        /// First address.
        first: IpAddr,
        /// Last address.
        last: IpAddr,
    },
    /// The address is not in this pool.
    #[error("pool \"{pool}\": {addr} is not in the pool")]
    OutOfRange {
        /// Pool name.
        pool: String,
        /// The address.
        addr: IpAddr,
    },
    /// The address is already leased to another identity.
    #[error("pool \"{pool}\": {addr} is already leased to {holder}")]
    AlreadyLeased {
        /// Pool name.
        pool: String,
        /// The address.
        addr: IpAddr,
        /// Its current holder, as text.
        holder: String,
    },
}

/// A virtual IP pool: the addresses `first..=last` of a [`PoolConfig`].
#[derive(Clone, Debug)]
pub struct AddressPool {
    config: PoolConfig,
    /// `first` as a number; addresses are handled as offsets from it.
    base: u128,
    /// 32 or 128.
    width: u8,
    /// Number of addresses minus one (`last - first`).
    max_offset: u128,
    /// Offsets at or above this were never handed out by [`Self::lease`] (some may be
    /// leased through [`Self::mark_leased`]; the cursor skips those).
    cursor: u128,
    /// Active leases.
    leases: BTreeMap<u128, Identity>,
    /// The address each identity had last (leased now or released since).
    remembered: HashMap<Identity, u128>,
    /// Reverse of `remembered`.
    remembered_by: HashMap<u128, Identity>,
    /// Free offsets below the cursor that no identity remembers.
    free_unclaimed: BTreeSet<u128>,
    /// Free offsets below the cursor that an identity remembers, by release order.
    free_remembered: BTreeMap<u64, u128>,
    /// Release order of each offset in `free_remembered`.
    release_seq: HashMap<u128, u64>,
    next_seq: u64,
    /// The addresses [`Self::lease`] may hand out (all without a filter). Offsets outside
    /// the share are never in the free sets; the cursor skips them.
    share: Share,
    /// No address is handed out (a cluster node that does not yet hold every lease).
    paused: bool,
}

fn to_num(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl AddressPool {
    /// A pool with no leases.
    pub fn new(config: &PoolConfig) -> Result<Self, PoolError> {
        let (first, w1) = to_num(config.first);
        let (last, w2) = to_num(config.last);
        if w1 != w2 || first > last {
            return Err(PoolError::InvalidRange {
                pool: config.name.clone(),
                first: config.first,
                last: config.last,
            });
        }
        Ok(Self {
            config: config.clone(),
            base: first,
            width: w1,
            max_offset: last - first,
            cursor: 0,
            leases: BTreeMap::new(),
            remembered: HashMap::new(),
            remembered_by: HashMap::new(),
            free_unclaimed: BTreeSet::new(),
            free_remembered: BTreeMap::new(),
            release_seq: HashMap::new(),
            next_seq: 0,
            share: Share(None),
            paused: false,
        })
    }

    /// Restricts [`Self::lease`] to the addresses `filter` accepts (`None`: all). Active
    /// leases and remembered holders stay; the free addresses are found again from the
    /// start of the pool under the new filter.
    pub fn set_filter(&mut self, filter: Option<PoolFilter>) {
        self.share = Share(filter);
        self.cursor = 0;
        self.free_unclaimed.clear();
        self.free_remembered.clear();
        self.release_seq.clear();
    }

    /// While paused, [`Self::lease`] hands out nothing (leases can still be recorded and
    /// released).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether the pool is paused ([`Self::set_paused`]).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether [`Self::lease`] may hand out `addr` (it is in this pool and in its share).
    pub fn is_in_share(&self, addr: IpAddr) -> bool {
        self.offset(addr).is_some_and(|off| self.mine(off))
    }

    fn mine(&self, off: u128) -> bool {
        self.share.0.as_ref().is_none_or(|f| f(self.addr(off)))
    }

    /// The configuration this pool was built from.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Number of addresses in the pool (saturating at `u128::MAX` for a whole IPv6 space).
    pub fn size(&self) -> u128 {
        self.max_offset.saturating_add(1)
    }

    /// Number of active leases.
    pub fn leased_count(&self) -> usize {
        self.leases.len()
    }

    fn addr(&self, offset: u128) -> IpAddr {
        let n = self.base + offset;
        if self.width == 32 {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
        } else {
            IpAddr::V6(Ipv6Addr::from(n))
        }
    }

    fn offset(&self, addr: IpAddr) -> Option<u128> {
        let (n, w) = to_num(addr);
        if w != self.width || n < self.base {
            return None;
        }
        let off = n - self.base;
        (off <= self.max_offset).then_some(off)
    }

    fn out_of_range(&self, addr: IpAddr) -> PoolError {
        PoolError::OutOfRange {
            pool: self.config.name.clone(),
            addr,
        }
    }

    /// Takes `off` out of the free sets (it may be in neither).
    fn unfree(&mut self, off: u128) {
        self.free_unclaimed.remove(&off);
        if let Some(seq) = self.release_seq.remove(&off) {
            self.free_remembered.remove(&seq);
        }
    }

    /// Records that `identity` now holds `off`: forgets the identity's older address and
    /// the older holder of this one.
    fn remember(&mut self, off: u128, identity: &Identity) {
        if let Some(old) = self.remembered.remove(identity) {
            self.remembered_by.remove(&old);
            // A free address nobody remembers any more becomes unclaimed (the free sets
            // hold only addresses of our share).
            if let Some(seq) = self.release_seq.remove(&old) {
                self.free_remembered.remove(&seq);
                self.free_unclaimed.insert(old);
            }
        }
        if let Some(prev) = self.remembered_by.remove(&off) {
            self.remembered.remove(&prev);
        }
        self.remembered.insert(identity.clone(), off);
        self.remembered_by.insert(off, identity.clone());
    }

    fn take(&mut self, off: u128, identity: &Identity) -> IpAddr {
        self.unfree(off);
        self.remember(off, identity);
        self.leases.insert(off, identity.clone());
        self.addr(off)
    }

    /// Hands out an address to `identity`: its previous one if that is free, else a
    /// never-used one, else a released one (unremembered first, then the least recently
    /// released). `None` when every address is leased.
    pub fn lease(&mut self, identity: &Identity) -> Option<IpAddr> {
        if self.paused {
            return None;
        }
        if let Some(&off) = self.remembered.get(identity)
            && !self.leases.contains_key(&off)
            && self.mine(off)
        {
            return Some(self.take(off, identity));
        }
        while self.cursor <= self.max_offset {
            let off = self.cursor;
            self.cursor += 1;
            if !self.leases.contains_key(&off) && self.mine(off) {
                return Some(self.take(off, identity));
            }
        }
        if let Some(&off) = self.free_unclaimed.iter().next() {
            return Some(self.take(off, identity));
        }
        let (_, &off) = self.free_remembered.iter().next()?;
        Some(self.take(off, identity))
    }

    /// Ends the lease of `addr`; returns the identity that held it (`None` if it was not
    /// leased or is not in the pool). The identity keeps a claim on it for reconnection.
    pub fn release(&mut self, addr: IpAddr) -> Option<Identity> {
        let off = self.offset(addr)?;
        let holder = self.leases.remove(&off)?;
        // Outside our share: another node hands it out; the cursor never comes back.
        if off < self.cursor && self.mine(off) {
            if self.remembered_by.contains_key(&off) {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.free_remembered.insert(seq, off);
                self.release_seq.insert(off, seq);
            } else {
                self.free_unclaimed.insert(off);
            }
        }
        Some(holder)
    }

    /// Whether `addr` is leased.
    pub fn is_leased(&self, addr: IpAddr) -> bool {
        self.offset(addr)
            .is_some_and(|off| self.leases.contains_key(&off))
    }

    /// The holder of `addr`, if leased.
    pub fn holder(&self, addr: IpAddr) -> Option<&Identity> {
        self.leases.get(&self.offset(addr)?)
    }

    /// Records a lease made elsewhere (replicated from another cluster node). Succeeds if
    /// the address is free or already leased to the same identity.
    pub fn mark_leased(&mut self, addr: IpAddr, identity: &Identity) -> Result<(), PoolError> {
        let off = self.offset(addr).ok_or_else(|| self.out_of_range(addr))?;
        match self.leases.get(&off) {
            Some(holder) if holder == identity => Ok(()),
            Some(holder) => Err(PoolError::AlreadyLeased {
                pool: self.config.name.clone(),
                addr,
                holder: holder.to_string(),
            }),
            None => {
                self.take(off, identity);
                Ok(())
            }
        }
    }

    /// The active leases, in address order.
    pub fn leases(&self) -> impl Iterator<Item = (IpAddr, &Identity)> + '_ {
        self.leases.iter().map(|(&off, id)| (self.addr(off), id))
    }
}

/// Pool hooks for a cluster node (the endpoint's pools by name).
impl Endpoint {
    /// Restricts every pool (present and added by [`Endpoint::reconfigure`]) to the
    /// addresses `filter` accepts: a cluster node's share of each pool.
    pub fn set_pool_filter(&mut self, filter: Option<PoolFilter>) {
        for p in self.pools.values_mut() {
            p.set_filter(filter.clone());
        }
        self.pool_filter = Share(filter);
    }

    /// Pauses or resumes handing out addresses from every pool (a cluster node that does
    /// not yet hold the leases the other nodes hold); IKE_AUTH requests asking for an
    /// address meanwhile get INTERNAL_ADDRESS_FAILURE.
    pub fn set_pools_paused(&mut self, paused: bool) {
        for p in self.pools.values_mut() {
            p.set_paused(paused);
        }
        self.pools_paused = paused;
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&AddressPool> {
        self.pools.get(name)
    }

    /// Records a lease made by another cluster node: `addr` held by `holder` through
    /// connection `connection`'s pool. Returns false if that pool does not exist, does
    /// not contain `addr`, or has it leased to another identity.
    pub fn mark_address_leased(
        &mut self,
        connection: &str,
        addr: IpAddr,
        holder: &Identity,
    ) -> bool {
        let pool = self.connection(connection).and_then(|c| c.pool.clone());
        pool.and_then(|p| self.pools.get_mut(&p))
            .is_some_and(|p| p.mark_leased(addr, holder).is_ok())
    }

    /// Ends the lease of `addr` in whichever pool holds it, when the IKE SA that held it
    /// is gone from the cluster (the caller knows that no IKE SA here uses it). Returns
    /// whether a lease was ended.
    pub fn release_address_lease(&mut self, addr: IpAddr) -> bool {
        let mut any = false;
        for p in self.pools.values_mut() {
            any |= p.release(addr).is_some();
        }
        any
    }
}
