//! Assembly of protected messages: the SK payload (RFC 7296 §3.14) and the SKF payload
//! with fragmentation and reassembly (RFC 7383), over any [`SkCipher`].
//!
//! The cipher sees, as its prefix/AAD, the message from the first header octet up to and
//! including the SK generic header (for SKF, also the Fragment Number and Total
//! Fragments fields), with every length already final: RFC 5282 §5.1, RFC 7634 §3,
//! RFC 7383 §2.5.

#![deny(clippy::indexing_slicing)]

use std::collections::BTreeMap;

use crate::crypto::SkCipher;

use super::codec::Reader;
use super::decode::{GENERIC_HEADER_LEN, decode_chain};
use super::encode::try_encode_chain;
use super::error::{DecodeError, EncodeError};
use super::header::HeaderView;
use super::payload::{Header, Payload};
use super::registry::PayloadType;

/// Octets before an SK payload's IV in a message whose only payload is SK.
pub const SK_PREFIX_LEN: usize = Header::LEN + GENERIC_HEADER_LEN;
/// Octets before an SKF payload's IV (header, generic header, number, total).
pub const SKF_PREFIX_LEN: usize = Header::LEN + GENERIC_HEADER_LEN + 4;
/// Default cap on Total Fragments, for sending and receiving.
pub const MAX_FRAGMENTS: u16 = 64;

/// Encrypts `inner` into a message made of `header` and one SK payload. The header's
/// Next Payload and Length are replaced by the real ones.
pub fn encrypt_message(
    header: &Header,
    inner: &[Payload],
    cipher: &dyn SkCipher,
) -> Result<Vec<u8>, EncodeError> {
    let (first, plaintext) = try_encode_chain(inner)?;
    let sealed = cipher.sealed_len(plaintext.len());
    let sk_len =
        u16::try_from(GENERIC_HEADER_LEN + sealed).map_err(|_| EncodeError::PayloadTooLong {
            payload: PayloadType::SK,
        })?;
    let total = SK_PREFIX_LEN + sealed;
    let total_u32 = u32::try_from(total).map_err(|_| EncodeError::MessageTooLong)?;
    let mut out = Vec::with_capacity(total);
    header.encode_with(PayloadType::SK, total_u32, &mut out);
    out.extend_from_slice(&[first.0, 0]);
    out.extend_from_slice(&sk_len.to_be_bytes());
    cipher.seal(&plaintext, &mut out)?;
    if out.len() != total {
        return Err(EncodeError::CipherLengthMismatch {
            expected: sealed,
            got: out.len().saturating_sub(SK_PREFIX_LEN),
        });
    }
    Ok(out)
}

/// The parts of a protected message after its header: SK's first inner type and body.
struct Protected<'a> {
    header: Header,
    first_inner: PayloadType,
    prefix: &'a [u8],
    body: &'a [u8],
}

/// Splits a message whose only payload is SK (or SKF, with `skf`) without copying.
fn split_protected(raw: &[u8], expect: PayloadType) -> Result<Protected<'_>, DecodeError> {
    split_protected_inner(raw, expect).map_err(DecodeError::unverified)
}

fn split_protected_inner(raw: &[u8], expect: PayloadType) -> Result<Protected<'_>, DecodeError> {
    let view = HeaderView::new_checked(raw)?;
    let header = view.header();
    if header.next_payload != expect {
        return Err(DecodeError::ExpectedSk {
            found: header.next_payload,
        });
    }
    let chain = view.payload();
    let mut r = Reader::new(chain, "generic payload header");
    let first_inner = PayloadType(r.u8()?);
    r.skip(1)?;
    let length = r.u16()?;
    let total = usize::from(length);
    let min = if expect == PayloadType::SKF {
        GENERIC_HEADER_LEN + 4
    } else {
        GENERIC_HEADER_LEN
    };
    if total < min {
        return Err(DecodeError::PayloadTooShort {
            payload: expect,
            length: total,
            minimum: min,
        });
    }
    if total > chain.len() {
        return Err(DecodeError::PayloadLengthPastEnd {
            payload: expect,
            length,
            available: chain.len(),
        });
    }
    if total < chain.len() {
        // RFC 7296 §3.14: SK is last; as it is also first here, it is alone.
        return Err(if expect == PayloadType::SKF {
            DecodeError::SkfNotAlone
        } else {
            DecodeError::SkNotLast
        });
    }
    let prefix_len = Header::LEN + min;
    let prefix = raw.get(..prefix_len).ok_or(DecodeError::Truncated {
        within: "SK payload",
    })?;
    let body = raw.get(prefix_len..).unwrap_or_default();
    Ok(Protected {
        header,
        first_inner,
        prefix,
        body,
    })
}

/// Verifies and decrypts a message whose only payload is SK, and decodes the inner
/// chain. Payloads outside SK are rejected ([`DecodeError::ExpectedSk`],
/// [`DecodeError::SkNotLast`]): RFC 7296 puts SK last, and the messages we accept carry
/// it alone.
///
/// Errors: malformed framing found before the integrity check comes back wrapped in
/// [`DecodeError::Unverified`] (or as a header-level variant), a failed check as
/// [`DecodeError::Crypto`]; both map to a silent drop. Any other error is from the
/// integrity-verified inner chain, so `err.notify(Protection::IntegrityVerified)` gives
/// the right answer for every error this returns.
pub fn decrypt_message(
    raw: &[u8],
    cipher: &dyn SkCipher,
) -> Result<(Header, Vec<Payload>), DecodeError> {
    let p = split_protected(raw, PayloadType::SK)?;
    let plaintext = cipher.open(p.prefix, p.body)?;
    let payloads = decode_chain(p.first_inner, &plaintext)?;
    Ok((p.header, payloads))
}

/// Splits `inner` into SKF fragments (RFC 7383 §2.5) of at most `max_datagram_len`
/// octets each (the IKE message, without IP/UDP headers or the non-ESP marker).
/// Fragment 1 carries the first inner payload type; all share the header's SPIs,
/// exchange, flags and Message ID.
pub fn encrypt_fragments(
    header: &Header,
    inner: &[Payload],
    cipher: &dyn SkCipher,
    max_datagram_len: usize,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let (first, plaintext) = try_encode_chain(inner)?;
    let too_small = EncodeError::DatagramTooSmall { max_datagram_len };
    let budget = max_datagram_len
        .checked_sub(SKF_PREFIX_LEN)
        .ok_or(too_small.clone())?;
    // Largest chunk whose sealed form fits the budget; sealed_len is monotonic.
    let fits = |n: usize| cipher.sealed_len(n) <= budget;
    if !fits(1) {
        return Err(too_small);
    }
    let (mut lo, mut hi) = (1usize, budget.max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let chunk = lo;
    let needed = plaintext.len().div_ceil(chunk).max(1);
    let total = u16::try_from(needed)
        .ok()
        .filter(|t| *t <= MAX_FRAGMENTS)
        .ok_or(EncodeError::TooManyFragments {
            needed,
            limit: usize::from(MAX_FRAGMENTS),
        })?;
    let mut out = Vec::with_capacity(needed);
    let mut pieces: Vec<&[u8]> = plaintext.chunks(chunk).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    for (i, piece) in pieces.into_iter().enumerate() {
        let number = u16::try_from(i + 1).map_err(|_| EncodeError::TooManyFragments {
            needed,
            limit: usize::from(MAX_FRAGMENTS),
        })?;
        let sealed = cipher.sealed_len(piece.len());
        let len = SKF_PREFIX_LEN + sealed;
        let skf_len =
            u16::try_from(len - Header::LEN).map_err(|_| EncodeError::PayloadTooLong {
                payload: PayloadType::SKF,
            })?;
        let len_u32 = u32::try_from(len).map_err(|_| EncodeError::MessageTooLong)?;
        let mut d = Vec::with_capacity(len);
        header.encode_with(PayloadType::SKF, len_u32, &mut d);
        let next = if number == 1 {
            first
        } else {
            PayloadType::NONE
        };
        d.extend_from_slice(&[next.0, 0]);
        d.extend_from_slice(&skf_len.to_be_bytes());
        d.extend_from_slice(&number.to_be_bytes());
        d.extend_from_slice(&total.to_be_bytes());
        cipher.seal(piece, &mut d)?;
        if d.len() != len {
            return Err(EncodeError::CipherLengthMismatch {
                expected: sealed,
                got: d.len().saturating_sub(SKF_PREFIX_LEN),
            });
        }
        out.push(d);
    }
    Ok(out)
}

/// Bounds on what a [`Reassembler`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Largest Total Fragments accepted.
    pub max_fragments: u16,
    /// Largest reassembled plaintext, in octets.
    pub max_message_len: usize,
    /// Most messages (Message IDs) reassembled at once; the lowest Message ID is
    /// forgotten to make room.
    pub max_messages: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_fragments: MAX_FRAGMENTS,
            max_message_len: 128 * 1024,
            max_messages: 4,
        }
    }
}

/// What became of one fragment given to [`Reassembler::handle_fragment`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// Verified and stored; more fragments are needed.
    Stored {
        /// Distinct fragments held for this message.
        received: u16,
        /// Total Fragments of this message.
        total: u16,
    },
    /// Already held: ignored without decrypting it.
    Duplicate,
    /// Total Fragments is smaller than that of fragments already held: discarded
    /// (RFC 7383 §2.6: the sender has since switched to larger fragments... or this is
    /// a stale retransmission).
    Discarded,
    /// The message is complete.
    Complete {
        /// The header of the fragment that completed it (Next Payload SKF, its own
        /// Length); SPIs, exchange, flags and Message ID are the message's.
        header: Header,
        /// The decoded inner payloads.
        payloads: Vec<Payload>,
    },
}

#[derive(Debug)]
struct Partial {
    total: u16,
    first_inner: Option<PayloadType>,
    fragments: BTreeMap<u16, Vec<u8>>,
    len: usize,
}

impl Partial {
    fn new(total: u16) -> Self {
        Self {
            total,
            first_inner: None,
            fragments: BTreeMap::new(),
            len: 0,
        }
    }
}

/// Reassembles the SKF fragments one IKE SA receives (RFC 7383 §2.6), keyed by Message
/// ID and Response flag (the peer's requests and its responses to ours have separate
/// Message ID spaces). Every fragment is verified and decrypted as it arrives, so forged
/// fragments are never stored; memory is bounded by [`ReassemblyLimits`].
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    pending: BTreeMap<(u32, bool), Partial>,
}

impl Reassembler {
    /// A reassembler with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reassembler with the given limits.
    pub fn with_limits(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            pending: BTreeMap::new(),
        }
    }

    /// Number of messages being reassembled.
    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    /// Forgets the fragments of `message_id` (e.g. once the exchange is answered or
    /// timed out).
    pub fn forget(&mut self, message_id: u32) {
        self.pending.remove(&(message_id, false));
        self.pending.remove(&(message_id, true));
    }

    /// Handles one datagram whose only payload is SKF.
    ///
    /// Errors: malformed framing ([`DecodeError::Unverified`]) or a failed integrity
    /// check ([`DecodeError::Crypto`]), with nothing stored; limits exceeded
    /// ([`DecodeError::ReassemblyLimit`], the message's fragments are dropped); all three
    /// map to a silent drop. Otherwise a completed message whose inner chain does not
    /// decode: an integrity-verified error, as with [`decrypt_message`].
    pub fn handle_fragment(
        &mut self,
        raw: &[u8],
        cipher: &dyn SkCipher,
    ) -> Result<FragmentOutcome, DecodeError> {
        let p = split_protected(raw, PayloadType::SKF)?;
        let mut fr = Reader::new(p.prefix.get(SK_PREFIX_LEN..).unwrap_or_default(), "SKF");
        let number = fr.u16().map_err(DecodeError::unverified)?;
        let total = fr.u16().map_err(DecodeError::unverified)?;
        if number == 0 || total == 0 || number > total {
            return Err(DecodeError::BadFragment { number, total }.unverified());
        }
        if total > self.limits.max_fragments {
            return Err(DecodeError::ReassemblyLimit {
                reason: "too many fragments",
            });
        }
        let message_id = (p.header.message_id, p.header.flags.response());
        if let Some(partial) = self.pending.get(&message_id) {
            // RFC 7383 §2.6: fragments announcing fewer fragments than those held are
            // discarded; more fragments restart reassembly (below, once verified).
            if total < partial.total {
                return Ok(FragmentOutcome::Discarded);
            }
            if total == partial.total && partial.fragments.contains_key(&number) {
                return Ok(FragmentOutcome::Duplicate);
            }
        }
        // Verify before touching any state, so forged fragments change nothing.
        let plaintext = cipher.open(p.prefix, p.body)?;

        let restart = self
            .pending
            .get(&message_id)
            .is_some_and(|partial| total > partial.total);
        if restart {
            self.pending.remove(&message_id);
        }
        if !self.pending.contains_key(&message_id) {
            while self.pending.len() >= self.limits.max_messages.max(1) {
                let Some(lowest) = self.pending.keys().next().copied() else {
                    break;
                };
                self.pending.remove(&lowest);
            }
            self.pending.insert(message_id, Partial::new(total));
        }
        let Some(partial) = self.pending.get_mut(&message_id) else {
            return Err(DecodeError::ReassemblyLimit {
                reason: "no room for the message",
            });
        };
        let new_len = partial.len.saturating_add(plaintext.len());
        if new_len > self.limits.max_message_len {
            self.pending.remove(&message_id);
            return Err(DecodeError::ReassemblyLimit {
                reason: "reassembled message too long",
            });
        }
        partial.len = new_len;
        if number == 1 {
            partial.first_inner = Some(p.first_inner);
        }
        partial.fragments.insert(number, plaintext);
        let received = u16::try_from(partial.fragments.len()).unwrap_or(u16::MAX);
        if received < partial.total {
            return Ok(FragmentOutcome::Stored { received, total });
        }
        let Some(done) = self.pending.remove(&message_id) else {
            return Err(DecodeError::ReassemblyLimit {
                reason: "message vanished",
            });
        };
        let mut whole = Vec::with_capacity(done.len);
        for piece in done.fragments.values() {
            whole.extend_from_slice(piece);
        }
        let first = done.first_inner.unwrap_or(PayloadType::NONE);
        let payloads = decode_chain(first, &whole)?;
        Ok(FragmentOutcome::Complete {
            header: p.header,
            payloads,
        })
    }
}
