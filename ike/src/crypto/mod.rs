//! Crypto suites for IKEv2: PRFs, key derivation, key exchange, SK payload transforms, AUTH.
