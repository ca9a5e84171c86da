//! Replay windows (RFC 4303 §3.4.3) in baton's neutral layout, and the
//! conversions to and from the kernel's layouts.
//!
//! Neutral layout: bit `i` set ⇔ packet `top - i` received.
//! Kernel "legacy" mode (no ESN, window ≤ 32, `XFRMA_REPLAY_VAL`): the same.
//! Kernel "bmp"/"esn" modes (`XFRMA_REPLAY_ESN_VAL`): a circular bitmap of
//! `replay_window` bits where the packet `diff` below the top sits at
//! `(pos - diff) mod window`, `pos = (low32(top) - 1) mod window`
//! (net/xfrm/xfrm_replay.c, `xfrm_replay_check_bmp`).

use crate::types::ReplayState;

/// Words of bitmap for a window of `window` packets (at least one).
pub fn window_words(window: u32) -> usize {
    (window.div_ceil(32) as usize).max(1)
}

fn get(bits: &[u32], i: u32) -> bool {
    bits.get((i / 32) as usize)
        .is_some_and(|w| w & (1 << (i % 32)) != 0)
}

fn set(bits: &mut [u32], i: u32) {
    if let Some(w) = bits.get_mut((i / 32) as usize) {
        *w |= 1 << (i % 32);
    }
}

/// Kernel bit index of the packet `diff` below the top (circular layout).
fn circular_index(top_low32: u32, window: u32, diff: u32) -> u32 {
    let pos = top_low32.wrapping_sub(1) % window;
    if pos >= diff {
        pos - diff
    } else {
        window - (diff - pos)
    }
}

/// Neutral → kernel circular bitmap of `bmp_len` words.
pub fn to_circular(neutral: &[u32], top: u64, window: u32, bmp_len: u32) -> Vec<u32> {
    let mut out = vec![0u32; bmp_len as usize];
    if window == 0 || top == 0 {
        return out;
    }
    let top_low = top as u32;
    for diff in 0..window.min(bmp_len.saturating_mul(32)) {
        if get(neutral, diff) {
            set(&mut out, circular_index(top_low, window, diff));
        }
    }
    out
}

/// Kernel circular bitmap → neutral layout with `window_words(window)` words.
pub fn from_circular(bmp: &[u32], top: u64, window: u32) -> Vec<u32> {
    let mut out = vec![0u32; window_words(window)];
    if window == 0 || top == 0 {
        return out;
    }
    let top_low = top as u32;
    for diff in 0..window {
        if u64::from(diff) >= top {
            break;
        }
        if get(bmp, circular_index(top_low, window, diff)) {
            set(&mut out, diff);
        }
    }
    out
}

/// What an inbound packet did to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Accepted and recorded.
    Accepted,
    /// Already received: dropped as a replay.
    Replayed,
    /// Below the window: dropped.
    TooOld,
}

/// Moves the neutral bitmap up by `d` packets, dropping bits beyond `window`.
fn shift_up(bits: &mut [u32], d: u64, window: u32) {
    if d >= u64::from(window) || d >= (bits.len() as u64) * 32 {
        bits.iter_mut().for_each(|w| *w = 0);
        return;
    }
    let (words, rem) = ((d / 32) as usize, (d % 32) as u32);
    for i in (0..bits.len()).rev() {
        let lo = i
            .checked_sub(words)
            .and_then(|j| bits.get(j).copied())
            .unwrap_or(0);
        let below = i
            .checked_sub(words + 1)
            .and_then(|j| bits.get(j).copied())
            .unwrap_or(0);
        let v = if rem == 0 {
            lo
        } else {
            (lo << rem) | (below >> (32 - rem))
        };
        if let Some(w) = bits.get_mut(i) {
            *w = v;
        }
    }
    // Clear bits at or above `window`.
    for i in window..(bits.len() as u32) * 32 {
        if let Some(w) = bits.get_mut((i / 32) as usize) {
            *w &= !(1 << (i % 32));
        }
    }
}

/// Applies one inbound packet with sequence number `n` to `state`, as the
/// kernel does for an SA with a window of `window` packets (0: no checking).
pub fn receive(state: &mut ReplayState, window: u32, n: u64) -> Received {
    let words = window_words(window);
    if state.bitmap.len() != words {
        state.bitmap.resize(words, 0);
    }
    if n > state.seq {
        shift_up(&mut state.bitmap, n - state.seq, window.max(1));
        state.seq = n;
        set(&mut state.bitmap, 0);
        return Received::Accepted;
    }
    if window == 0 {
        return Received::Accepted;
    }
    let diff = state.seq - n;
    if n == 0 || diff >= u64::from(window) {
        return Received::TooOld;
    }
    let diff = diff as u32;
    if get(&state.bitmap, diff) {
        return Received::Replayed;
    }
    set(&mut state.bitmap, diff);
    Received::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circular_round_trip_matches_kernel_positions() {
        // Window 64, top 70: kernel pos = 69 % 64 = 5; packet 70 at bit 5,
        // packet 65 at bit 0, packet 64 at bit 63.
        let mut neutral = vec![0u32; 2];
        for diff in [0u32, 5, 6, 40] {
            set(&mut neutral, diff);
        }
        let k = to_circular(&neutral, 70, 64, 2);
        assert!(get(&k, 5) && get(&k, 0) && get(&k, 63));
        assert!(get(&k, circular_index(70, 64, 40)));
        assert_eq!(k.iter().map(|w| w.count_ones()).sum::<u32>(), 4);
        assert_eq!(from_circular(&k, 70, 64), neutral);
    }

    #[test]
    fn window_accepts_reorders_and_rejects_replays_and_old() {
        let mut s = ReplayState::default();
        assert_eq!(receive(&mut s, 64, 1), Received::Accepted);
        assert_eq!(receive(&mut s, 64, 3), Received::Accepted);
        assert_eq!(receive(&mut s, 64, 2), Received::Accepted);
        assert_eq!(receive(&mut s, 64, 2), Received::Replayed);
        assert_eq!(receive(&mut s, 64, 100), Received::Accepted);
        assert_eq!(receive(&mut s, 64, 36), Received::TooOld);
        assert_eq!(receive(&mut s, 64, 37), Received::Accepted);
        assert_eq!(receive(&mut s, 64, 37), Received::Replayed);
        assert!(s.received(100) && s.received(37) && !s.received(38) && !s.received(3));
        assert_eq!(s.seq, 100);
        assert_eq!(s.bitmap.len(), 2);
    }

    #[test]
    fn shift_crosses_words() {
        let mut s = ReplayState::default();
        receive(&mut s, 128, 1);
        receive(&mut s, 128, 40);
        receive(&mut s, 128, 75);
        assert!(s.received(1) && s.received(40) && s.received(75));
        receive(&mut s, 128, 129);
        assert!(!s.received(1) && s.received(40) && s.received(129));
    }
}
