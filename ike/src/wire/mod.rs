//! IKEv2 message encoding and decoding (RFC 7296 §3, RFC 7383).
