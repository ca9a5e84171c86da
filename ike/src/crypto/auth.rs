//! AUTH payload data: shared keys (RFC 7296 §2.15) and digital signatures (RFC 7427).

use super::{Prf, SecretBytes};

/// The pad string of RFC 7296 §2.15, without a terminating NUL.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> ) (RFC 7296 §2.15).
pub fn psk_auth(prf: &dyn Prf, psk: &[u8], signed_octets: &[u8]) -> SecretBytes {
    let inner = prf.compute(psk, &[KEY_PAD]);
    prf.compute(inner.expose(), &[signed_octets])
}

/// The octets that AUTH covers (RFC 7296 §2.15): RealMessage | Nonce | prf(SK_p, IDx'),
/// where `message` is the first message we (or the peer) sent, `peer_nonce` the other side's
/// nonce data, `sk_p` the signer's SK_pi / SK_pr, and `id_body` the ID payload body from the
/// ID Type octet on (IDx').
pub fn signed_octets(
    message: &[u8],
    peer_nonce: &[u8],
    prf: &dyn Prf,
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let mac = prf.compute(sk_p, &[id_body]);
    let mut out = Vec::with_capacity(message.len() + peer_nonce.len() + mac.len());
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(mac.expose());
    out
}
