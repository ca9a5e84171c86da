//! The providers: [`DEFAULT_PROVIDER`] and, for fuzzing builds only, `NULL_PROVIDER`.

use super::ke::{ECP_256, ECP_384, MODP_2048, MODP_3072, X25519};
use super::prf::{HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512};
use super::{CryptoProvider, KeMethod, Prf, fill_random, sk::sk_cipher};

static PRFS: [&dyn Prf; 3] = [&HMAC_SHA2_256, &HMAC_SHA2_384, &HMAC_SHA2_512];

/// Preference order (DESIGN §2): X25519 first, then the NIST curves, then MODP for older
/// clients.
static KE_METHODS: [&dyn KeMethod; 5] = [&X25519, &ECP_256, &ECP_384, &MODP_3072, &MODP_2048];

/// Everything this crate implements, with randomness from the operating system.
pub static DEFAULT_PROVIDER: CryptoProvider = CryptoProvider {
    prfs: &PRFS,
    ke_methods: &KE_METHODS,
    sk_cipher,
    fill_random,
};

#[cfg(feature = "fuzzing")]
pub use null::NULL_PROVIDER;

#[cfg(feature = "fuzzing")]
mod null {
    //! A provider with NO SECURITY, so fuzzers get past SK{} to the inner payload decoder
    //! (the idea of rustls' fuzzing provider). Never built without the `fuzzing` feature.

    use super::super::{CryptoError, CryptoProvider, SkCipher};
    use super::{KE_METHODS, PRFS};
    use crate::wire::registry::{EncrId, IntegId};

    /// Length of the fake IV and of the all-zero ICV.
    const IV_LEN: usize = 8;
    const ICV_LEN: usize = 16;

    /// Identity "cipher": body = zero IV | plaintext | pad length 0 | zero ICV. `open`
    /// accepts any IV and ICV.
    #[derive(Debug)]
    struct NullCipher;

    impl SkCipher for NullCipher {
        fn sealed_len(&self, plaintext_len: usize) -> usize {
            IV_LEN + plaintext_len + 1 + ICV_LEN
        }

        fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
            out.extend_from_slice(&[0; IV_LEN]);
            out.extend_from_slice(plaintext);
            out.push(0);
            out.extend_from_slice(&[0; ICV_LEN]);
            Ok(())
        }

        fn open(&self, _prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
            let inner = body
                .get(IV_LEN..body.len().saturating_sub(ICV_LEN))
                .ok_or(CryptoError::IntegrityCheckFailed)?;
            let (pad, rest) = inner.split_last().ok_or(CryptoError::InvalidPadding)?;
            let keep = rest
                .len()
                .checked_sub(usize::from(*pad))
                .ok_or(CryptoError::InvalidPadding)?;
            Ok(rest.get(..keep).unwrap_or_default().to_vec())
        }
    }

    fn null_cipher(
        _encr: EncrId,
        _key_bits: u16,
        _integ: IntegId,
        _sk_e: &[u8],
        _sk_a: &[u8],
    ) -> Result<Box<dyn SkCipher>, CryptoError> {
        Ok(Box::new(NullCipher))
    }

    /// Deterministic "randomness" so fuzz runs reproduce; not zero, because a zero SPI
    /// means "unset" (RFC 7296 §3.1).
    fn fixed_random(buf: &mut [u8]) {
        buf.fill(0x42);
    }

    /// NO SECURITY: identity SK cipher, zero ICV accepted, fixed randomness. For fuzzers.
    pub static NULL_PROVIDER: CryptoProvider = CryptoProvider {
        prfs: &PRFS,
        ke_methods: &KE_METHODS,
        sk_cipher: null_cipher,
        fill_random: fixed_random,
    };

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn null_cipher_round_trips_and_rejects_short_bodies() {
            let c = (NULL_PROVIDER.sk_cipher)(EncrId::AES_GCM_16, 128, IntegId::NONE, &[], &[])
                .unwrap();
            let mut out = b"hdr".to_vec();
            c.seal(b"payloads", &mut out).unwrap();
            assert_eq!(out.len(), 3 + c.sealed_len(8));
            assert_eq!(c.open(b"hdr", &out[3..]).unwrap(), b"payloads");
            assert!(c.open(b"hdr", &[0; 10]).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::registry::{EncrId, IntegId, KeGroup, PrfId};

    #[test]
    fn default_provider_offers_everything() {
        let p = &DEFAULT_PROVIDER;
        for id in [
            PrfId::HMAC_SHA2_256,
            PrfId::HMAC_SHA2_384,
            PrfId::HMAC_SHA2_512,
        ] {
            assert_eq!(p.prf(id).unwrap().id(), id);
        }
        assert!(p.prf(PrfId::HMAC_SHA1).is_none());
        for g in [
            KeGroup::CURVE25519,
            KeGroup::ECP_256,
            KeGroup::ECP_384,
            KeGroup::MODP_2048,
            KeGroup::MODP_3072,
        ] {
            assert_eq!(p.ke_method(g).unwrap().group(), g);
        }
        assert!(p.ke_method(KeGroup::MODP_1024).is_none());
        assert!((p.sk_cipher)(EncrId::AES_GCM_16, 128, IntegId::NONE, &[7; 20], &[]).is_ok());
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        (p.fill_random)(&mut a);
        (p.fill_random)(&mut b);
        assert_ne!(a, b);
    }
}
