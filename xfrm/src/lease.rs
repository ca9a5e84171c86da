//! Moving an outbound SA to a new range of sequence numbers while it is in use.
//!
//! A cluster node that kept an SA through a partition must continue above the
//! sequence numbers another node used on it meanwhile (the peer's anti-replay window,
//! RFC 4303 §3.4.3, drops anything below), and must never send past the end of the
//! range it may use (the same (SPI, sequence number) twice would repeat an AES-GCM IV,
//! RFC 4106 §3). The kernel enforces the end through the hard packet lifetime, which
//! counts packets since the install, not sequence numbers; so the jump and the new
//! limit are set in an order where no packet sent in between can pass either end.

use crate::{Dataplane, Error, ReplayState, Result, SaId};

/// Moves outbound SA `id`, which may send up to `old_end` now, so that its next
/// packet carries `start` and it never sends past `end`. `start` must lie above
/// anything it can have sent (`start > old_end`).
///
/// Steps: read the packet count `p0`, then the sequence number `o0`; lower the hard
/// limit to `p0 + min(end - start + 1, old_end - o0)` (safe in the old numbering and
/// in the new one); set the sequence number to `start - 1` (XFRM_MSG_NEWAE); raise the
/// limit to `p0 + (end - start + 1)`, which stops the SA at `end` at the latest (the
/// packets sent between the reads and the jump only make it stop earlier). The soft
/// limit goes to three quarters of the new range.
pub fn move_outbound_range(
    dp: &mut dyn Dataplane,
    id: &SaId,
    old_end: u64,
    start: u64,
    end: u64,
) -> Result<()> {
    if start <= old_end || end < start {
        return Err(Error::invalid(format!(
            "SA {id}: cannot move to [{start}, {end}] from a range ending at {old_end}"
        )));
    }
    let p0 = dp.get_counters(id)?.packets;
    let st = dp.get_replay_state(id)?;
    let len = end - start + 1;
    let mut spec = dp.get_sa(id)?.spec;
    spec.replay_state = None;
    let safe = len.min(old_end.saturating_sub(st.oseq));
    spec.lifetime.hard_packets = Some(p0.saturating_add(safe));
    if let Some(s) = spec.lifetime.soft_packets {
        spec.lifetime.soft_packets = Some(s.min(p0.saturating_add(safe)));
    }
    dp.update_sa(&spec)?;
    dp.set_replay_state(
        id,
        &ReplayState {
            oseq: start - 1,
            ..st
        },
    )?;
    spec.lifetime.hard_packets = Some(p0.saturating_add(len));
    spec.lifetime.soft_packets = Some(p0.saturating_add((len / 4).saturating_mul(3).max(1)));
    dp.update_sa(&spec)
}

/// Caps outbound SA `id`, which may send up to `lease_end`, at most `margin` packets
/// past its current sequence number, and returns the last sequence number it can
/// still use, `S`: a transfer hands the SA to another node that starts at `S + 1`
/// while this one goes on sending until it is told to stop (no gap in between).
///
/// The packet count `p` is read before the sequence number `o`, and the hard limit set
/// to `p + min(margin, lease_end - o)`: packets sent between the two reads only make
/// the SA stop earlier, never past `S = o + min(margin, lease_end - o)`.
pub fn cap_outbound(dp: &mut dyn Dataplane, id: &SaId, lease_end: u64, margin: u64) -> Result<u64> {
    let p = dp.get_counters(id)?.packets;
    let o = dp.get_replay_state(id)?.oseq;
    let room = margin.min(lease_end.saturating_sub(o));
    let mut spec = dp.get_sa(id)?.spec;
    spec.replay_state = None;
    let hard = p.saturating_add(room);
    spec.lifetime.hard_packets = Some(spec.lifetime.hard_packets.map_or(hard, |h| h.min(hard)));
    // No soft expiry (and with it a rekey) of an SA on its way out.
    spec.lifetime.soft_packets = None;
    dp.update_sa(&spec)?;
    Ok(o.saturating_add(room))
}
