//! IKEv2 message encoding and decoding (RFC 7296 §3, RFC 7383).
//!
//! - [`registry`]: the IANA registries as newtypes (unknown values round-trip).
//! - [`payload`]: the decoded form of every payload.
//! - [`header`]: a checked view of the fixed header, to route on SPIs before decoding.
//! - [`codec`]: the bounded [`Reader`] and the length-patching writer.
//! - [`Message::decode`], [`Message::encode`], [`decode_chain`], [`encode_chain`]: the
//!   codec for whole messages and for SK plaintexts.
//! - [`notify`]: typed notification data.
//! - [`sk`]: SK and SKF (RFC 7383) protection, fragmentation and reassembly.
//! - [`error`]: [`DecodeError`] and its one mapping to the notify the responder sends.

pub mod codec;
mod decode;
mod encode;
pub mod error;
pub mod header;
pub mod notify;
pub mod payload;
pub mod registry;
pub mod sk;

pub use codec::Reader;
pub use decode::{
    GENERIC_HEADER_LEN, MAX_CP_ATTRIBUTES, MAX_PAYLOADS, MAX_PROPOSALS, MAX_SELECTORS,
    MAX_TRANSFORM_ATTRIBUTES, MAX_TRANSFORMS, decode_chain,
};
pub use encode::{encode_chain, try_encode_chain};
pub use error::{DecodeError, EncodeError, Protection, ResponderAction};
pub use header::HeaderView;
pub use notify::{find_error_notify, find_notify, notifies};
pub use payload::*;
pub use registry::*;
pub use sk::{
    FragmentOutcome, Reassembler, ReassemblyLimits, decrypt_message, encrypt_fragments,
    encrypt_message,
};
