//! The node-to-node channel, sans-IO: Noise handshake, Hello, framing, encryption.
//!
//! # Wire format
//!
//! A TCP connection carries frames: a 2-byte big-endian length `L` (1..=65535)
//! followed by `L` bytes of one Noise message. 65535 is Noise's own message limit
//! (Noise spec §3), so a reader never buffers more than 65537 bytes for one frame and
//! never allocates on the strength of a length it has not checked.
//!
//! The first two frames are the handshake `Noise_NNpsk0_25519_ChaChaPoly_SHA256`
//! (`-> psk, e` and `<- e, ee`), keyed with a PSK derived from the cluster key
//! ([`CHANNEL_PSK_LABEL`]). Every later frame is a transport message whose plaintext
//! is empty (a keepalive) or starts with a type byte: `0x01` Hello (sent once, first,
//! by both sides: protocol version u16, incarnation u64, node name), `0x02` an
//! application message (at most [`MAX_MESSAGE`] bytes). Anything else is a protocol
//! violation and the connection is dropped.
//!
//! # Why NNpsk0 and what it guarantees
//!
//! The configuration gives one shared cluster key, no per-node key pairs, so the
//! pattern authenticates by knowledge of the PSK: both sides prove it (a wrong PSK
//! fails the first AEAD check on either side; the responder never answers message
//! one with a wrong PSK). Any holder of the cluster key can claim any node name; the
//! cluster key *is* the trust boundary, as it is for the heartbeat. The `ee` DH over
//! fresh ephemeral keys gives forward secrecy: a later theft of the cluster key does
//! not decrypt recorded traffic.
//!
//! Replay: within a session, Noise's transport nonces are implicit counters, so a
//! replayed, dropped or reordered frame fails to decrypt and kills the connection.
//! Across sessions, a recorded session cannot be replayed either: both sides
//! contribute a fresh ephemeral key, and the transport keys depend on both. Replaying
//! an old message one to a responder makes it answer with a new ephemeral; without
//! the old initiator's ephemeral private key the attacker can derive none of the new
//! session's keys, so it can neither read message two nor send a single valid
//! transport frame (not even the Hello). Replaying old responder messages to an
//! initiator fails the same way, since the initiator's ephemeral is new. What an
//! attacker without the PSK can do is open TCP connections and send junk, which
//! costs us at most one X25519 operation per connection and a closed socket.
//! Which of two valid sessions from the same node is kept is the driver's job
//! (see [`crate::channel`]).

mod session;

pub use session::{
    CHANNEL_PSK_LABEL, Hello, MAX_FRAME, MAX_MESSAGE, NOISE_PARAMS, PROTOCOL_VERSION, Role,
    Session, SessionError, SessionEvent,
};
