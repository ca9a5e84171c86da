//! Crypto suites for IKEv2: PRFs and prf+ (RFC 7296 §2.13), SKEYSEED and the seven IKE SA
//! keys (§2.14), Child SA KEYMAT (§2.17), AUTH data (§2.15, RFC 7427), the SK payload
//! transforms (RFC 5282, RFC 7634, RFC 3602 + RFC 4868) and key exchange (RFC 8031,
//! RFC 5903, RFC 3526).
//!
//! Everything sits behind [`CryptoProvider`], a plain struct of `&'static` trait objects, so
//! that a fuzzing build can swap in a provider with no security at all.

use core::fmt;

use zeroize::Zeroizing;

pub mod auth;
pub mod ke;
pub mod keys;
mod pem;
pub mod prf;
pub mod provider;
pub mod sk;

pub use auth::{
    RsaSigningKey, SignatureScheme, algorithm_identifier, decode_signature_auth,
    encode_signature_auth, psk_auth, signed_octets, verify_rsa,
};
pub use ke::{ECP_256, ECP_384, MODP_2048, MODP_3072, X25519, ke_from_private};
pub use keys::{
    IkeSaKeys, KeyLengths, child_keymat, derive_ike_sa_keys, encr_key_len, integ_key_len, is_aead,
    key_lengths, skeyseed, skeyseed_rekey,
};
pub use prf::{HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512, prf_plus};
pub use provider::DEFAULT_PROVIDER;
#[cfg(feature = "fuzzing")]
pub use provider::NULL_PROVIDER;
pub use sk::{AeadCipher, CbcHmacCipher, aead_open, aead_seal, integ_mac, sk_cipher};

use crate::wire::registry::{EncrId, IntegId, KeGroup, PrfId};

/// Secret bytes: zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `v`; it is wiped when this value is dropped.
    pub fn new(v: Vec<u8>) -> Self {
        Self(Zeroizing::new(v))
    }

    /// Copies `v`.
    pub fn from_slice(v: &[u8]) -> Self {
        Self(Zeroizing::new(v.to_vec()))
    }

    /// The secret, for the code that must use it (keying a cipher, replicating an SA).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no octets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

/// Why a crypto operation failed. Carries no secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The algorithm (or key length) is not implemented by this provider.
    #[error("unsupported algorithm: {0}")]
    Unsupported(&'static str),
    /// A key had the wrong length for its algorithm.
    #[error("invalid key length for {0}")]
    InvalidKeyLength(&'static str),
    /// The peer's key exchange value is malformed or not on the curve / in the group.
    #[error("invalid key exchange public value")]
    InvalidPublicValue,
    /// The SK payload failed its integrity check (or was too short to hold IV and ICV).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// The decrypted SK payload had an impossible padding length.
    #[error("invalid padding")]
    InvalidPadding,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A key (PEM/DER) could not be parsed.
    #[error("invalid key encoding: {0}")]
    InvalidKey(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    SigningFailed,
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    RandomFailed,
}

/// Fills `buf` from the operating system's CSPRNG (getrandom(2) on Linux).
pub fn try_fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|_| CryptoError::RandomFailed)
}

/// Fills `buf` from the operating system's CSPRNG; the [`CryptoProvider::fill_random`] of
/// [`DEFAULT_PROVIDER`].
///
/// If the OS cannot deliver randomness the process aborts: nonces, SPIs and IVs drawn from
/// anything else would be predictable, and this signature has no way to report an error.
/// (getrandom(2) does not fail once the kernel's pool is initialised.)
pub fn fill_random(buf: &mut [u8]) {
    if try_fill_random(buf).is_err() {
        std::process::abort();
    }
}

/// A pseudorandom function (RFC 7296 §2.13).
pub trait Prf: Send + Sync + fmt::Debug {
    /// The transform ID this implements.
    fn id(&self) -> PrfId;
    /// Preferred key length (and output length) in octets.
    fn output_len(&self) -> usize;
    /// prf(key, data[0] | data[1] | ...).
    fn compute(&self, key: &[u8], data: &[&[u8]]) -> SecretBytes;
}

/// The cipher of an established SK payload direction pair, keyed with SK_e and SK_a
/// (or SK_e alone for AEAD). Seals outgoing and opens incoming SK/SKF payloads.
///
/// `prefix` is the message from the IKE header up to and including the SK (or SKF)
/// payload's generic header (and, for SKF, the fragment number and total), with all
/// lengths already final: it is the AAD for AEAD transforms (RFC 5282 §5.1, RFC 7634 §3)
/// and the start of the integrity-protected octets for encrypt+integrity transforms.
pub trait SkCipher: Send + Sync + fmt::Debug {
    /// Length of IV + ciphertext (incl. padding and the pad-length octet) + ICV for a
    /// plaintext of `plaintext_len` octets.
    fn sealed_len(&self, plaintext_len: usize) -> usize;
    /// Appends IV || ciphertext || ICV for `plaintext` to `out`; `out` must hold exactly
    /// `prefix` when called, so the integrity check can cover it.
    fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError>;
    /// Verifies and decrypts `body` (IV || ciphertext || ICV) of a payload whose message
    /// starts with `prefix`; returns the plaintext with padding and pad length removed.
    fn open(&self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// An ephemeral key exchange in progress (RFC 7296 §2.10 / §3.4).
pub trait KeyExchange: Send {
    /// Our public value, as it goes into the KE payload.
    fn public_value(&self) -> &[u8];
    /// Completes the exchange with the peer's public value; consumes the private key.
    fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SecretBytes, CryptoError>;
}

/// A key exchange method (a row of Transform Type 4).
pub trait KeMethod: Send + Sync + fmt::Debug {
    /// The transform ID.
    fn group(&self) -> KeGroup;
    /// Length of the public value in octets, for checking KE payloads before work.
    fn public_value_len(&self) -> usize;
    /// Starts an exchange with a fresh private key.
    fn start(&self) -> Result<Box<dyn KeyExchange>, CryptoError>;
}

/// Builds the SK cipher for one direction: `(encr, key_bits, integ, sk_e, sk_a)`. For AEAD
/// transforms `sk_e` includes the 4-octet salt (RFC 5282 §7.1, RFC 7634 §2) and `integ` is
/// [`IntegId::NONE`]; `key_bits` is the Key Length attribute (0 when the transform has none).
pub type SkCipherFactory =
    fn(EncrId, u16, IntegId, &[u8], &[u8]) -> Result<Box<dyn SkCipher>, CryptoError>;

/// The set of algorithms a build offers. Plain data, so providers can be swapped.
#[derive(Debug)]
pub struct CryptoProvider {
    /// PRFs.
    pub prfs: &'static [&'static dyn Prf],
    /// Key exchange methods, in our preference order.
    pub ke_methods: &'static [&'static dyn KeMethod],
    /// Builds the SK cipher for one direction of an IKE SA.
    pub sk_cipher: SkCipherFactory,
    /// Fills `buf` with random octets (nonces, SPIs, IVs).
    pub fill_random: fn(&mut [u8]),
}

impl CryptoProvider {
    /// The PRF for `id`, if offered.
    pub fn prf(&self, id: PrfId) -> Option<&'static dyn Prf> {
        self.prfs.iter().copied().find(|p| p.id() == id)
    }

    /// The key exchange method for `group`, if offered.
    pub fn ke_method(&self, group: KeGroup) -> Option<&'static dyn KeMethod> {
        self.ke_methods.iter().copied().find(|k| k.group() == group)
    }
}
