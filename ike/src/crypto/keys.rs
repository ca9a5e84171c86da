//! SKEYSEED and the seven IKE SA keys (RFC 7296 §2.14), IKE SA rekeying (§2.18) and Child SA
//! KEYMAT (§2.17).

use super::prf::prf_plus;
use super::{CryptoError, Prf, SecretBytes};
use crate::wire::IkeSpi;
use crate::wire::registry::{EncrId, IntegId};

/// How many octets of prf+ output each key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLengths {
    /// SK_ei / SK_er, including the 4-octet salt of AEAD transforms (RFC 5282 §7.1,
    /// RFC 7634 §2).
    pub encr: usize,
    /// SK_ai / SK_ar (0 for AEAD transforms).
    pub integ: usize,
    /// SK_d, SK_pi and SK_pr: the PRF's preferred key length (RFC 7296 §2.14).
    pub prf: usize,
}

impl KeyLengths {
    /// Total octets of prf+ output for SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr.
    pub fn total(&self) -> usize {
        3 * self.prf + 2 * self.integ + 2 * self.encr
    }
}

/// Octets of keying material for an encryption transform, including the salt of AEAD
/// transforms (AES-GCM-16: key + 4 (RFC 5282 §7.1); ChaCha20-Poly1305: 32 + 4 (RFC 7634 §2);
/// AES-CBC: the key (RFC 3602)). `None` for transforms or key lengths we do not implement.
pub fn encr_key_len(encr: EncrId, key_bits: u16) -> Option<usize> {
    match (encr, key_bits) {
        (EncrId::AES_GCM_16, 128) => Some(16 + 4),
        (EncrId::AES_GCM_16, 256) => Some(32 + 4),
        // RFC 7634 §2: the transform has no Key Length attribute (fixed 256-bit key).
        (EncrId::CHACHA20_POLY1305, 0 | 256) => Some(32 + 4),
        (EncrId::AES_CBC, 128) => Some(16),
        (EncrId::AES_CBC, 256) => Some(32),
        _ => None,
    }
}

/// Whether `encr` is an AEAD transform (no separate integrity transform, RFC 5282 §8).
pub fn is_aead(encr: EncrId) -> bool {
    matches!(encr, EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305)
}

/// Key length of an integrity transform: the HMAC key is as long as the hash output
/// (RFC 4868 §2.1.1). `None` for transforms we do not implement.
pub fn integ_key_len(integ: IntegId) -> Option<usize> {
    match integ {
        IntegId::NONE => Some(0),
        IntegId::HMAC_SHA2_256_128 => Some(32),
        IntegId::HMAC_SHA2_384_192 => Some(48),
        IntegId::HMAC_SHA2_512_256 => Some(64),
        _ => None,
    }
}

/// The key lengths of a negotiated IKE SA suite. AEAD transforms must come with integrity
/// NONE and the others with a real integrity transform (RFC 7296 §3.3.3, RFC 5282 §8).
pub fn key_lengths(
    encr: EncrId,
    key_bits: u16,
    integ: IntegId,
    prf: &dyn Prf,
) -> Result<KeyLengths, CryptoError> {
    let encr_len =
        encr_key_len(encr, key_bits).ok_or(CryptoError::Unsupported("encryption transform"))?;
    let integ_len = integ_key_len(integ).ok_or(CryptoError::Unsupported("integrity transform"))?;
    if is_aead(encr) != (integ == IntegId::NONE) {
        return Err(CryptoError::Unsupported(
            "AEAD needs integrity NONE, other ciphers need an integrity transform",
        ));
    }
    Ok(KeyLengths {
        encr: encr_len,
        integ: integ_len,
        prf: prf.output_len(),
    })
}

/// The seven secrets of an IKE SA (RFC 7296 §2.14). `Debug` shows only lengths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaKeys {
    /// SK_d: keys Child SAs and the next IKE SA.
    pub sk_d: SecretBytes,
    /// SK_ai: integrity key, initiator to responder.
    pub sk_ai: SecretBytes,
    /// SK_ar: integrity key, responder to initiator.
    pub sk_ar: SecretBytes,
    /// SK_ei: encryption key (incl. salt for AEAD), initiator to responder.
    pub sk_ei: SecretBytes,
    /// SK_er: encryption key (incl. salt for AEAD), responder to initiator.
    pub sk_er: SecretBytes,
    /// SK_pi: for the initiator's AUTH payload.
    pub sk_pi: SecretBytes,
    /// SK_pr: for the responder's AUTH payload.
    pub sk_pr: SecretBytes,
}

/// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14). The HMAC PRFs take the whole Ni | Nr as
/// key; only fixed-key-size PRFs (AES-XCBC, AES-CMAC, not offered) would split it.
pub fn skeyseed(prf: &dyn Prf, ni: &[u8], nr: &[u8], shared: &[u8]) -> SecretBytes {
    let mut key = zeroize::Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.compute(&key, &[shared])
}

/// SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old
/// IKE SA's PRF (RFC 7296 §2.18).
pub fn skeyseed_rekey(
    old_prf: &dyn Prf,
    old_sk_d: &[u8],
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> SecretBytes {
    old_prf.compute(old_sk_d, &[shared, ni, nr])
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi |
/// SPIr) (RFC 7296 §2.14), cut in that order.
pub fn derive_ike_sa_keys(
    prf: &dyn Prf,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    lens: &KeyLengths,
) -> Result<IkeSaKeys, CryptoError> {
    let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    seed.extend_from_slice(&spi_i.to_bytes());
    seed.extend_from_slice(&spi_r.to_bytes());
    let km = prf_plus(prf, skeyseed, &seed, lens.total())?;
    let mut rest = km.expose();
    let mut take = |n: usize| -> Result<SecretBytes, CryptoError> {
        let (head, tail) = rest
            .split_at_checked(n)
            .ok_or(CryptoError::Unsupported("prf+ output too short"))?;
        rest = tail;
        Ok(SecretBytes::from_slice(head))
    };
    Ok(IkeSaKeys {
        sk_d: take(lens.prf)?,
        sk_ai: take(lens.integ)?,
        sk_ar: take(lens.integ)?,
        sk_ei: take(lens.encr)?,
        sk_er: take(lens.encr)?,
        sk_pi: take(lens.prf)?,
        sk_pr: take(lens.prf)?,
    })
}

/// KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) | Ni | Nr) with PFS
/// (RFC 7296 §2.17). The caller cuts it: initiator-to-responder keys first (encryption then
/// integrity), then responder-to-initiator.
pub fn child_keymat(
    prf: &dyn Prf,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<SecretBytes, CryptoError> {
    let shared = shared.unwrap_or_default();
    let mut seed = zeroize::Zeroizing::new(Vec::with_capacity(shared.len() + ni.len() + nr.len()));
    seed.extend_from_slice(shared);
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    prf_plus(prf, sk_d, &seed, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::prf::{HMAC_SHA2_256, HMAC_SHA2_512};

    #[test]
    fn lengths_of_offered_suites() {
        let gcm = key_lengths(EncrId::AES_GCM_16, 256, IntegId::NONE, &HMAC_SHA2_256).unwrap();
        assert_eq!(
            gcm,
            KeyLengths {
                encr: 36,
                integ: 0,
                prf: 32
            }
        );
        assert_eq!(gcm.total(), 3 * 32 + 2 * 36);
        let cbc = key_lengths(
            EncrId::AES_CBC,
            128,
            IntegId::HMAC_SHA2_256_128,
            &HMAC_SHA2_512,
        )
        .unwrap();
        assert_eq!((cbc.encr, cbc.integ, cbc.prf), (16, 32, 64));
        assert_eq!(encr_key_len(EncrId::AES_GCM_16, 128), Some(20));
        assert_eq!(encr_key_len(EncrId::CHACHA20_POLY1305, 0), Some(36));
        assert_eq!(encr_key_len(EncrId::AES_CBC, 192), None);
        assert_eq!(integ_key_len(IntegId::HMAC_SHA2_384_192), Some(48));
        assert_eq!(integ_key_len(IntegId::HMAC_SHA1_96), None);
    }

    #[test]
    fn aead_with_integrity_and_cbc_without_are_refused() {
        assert!(
            key_lengths(
                EncrId::AES_GCM_16,
                128,
                IntegId::HMAC_SHA2_256_128,
                &HMAC_SHA2_256
            )
            .is_err()
        );
        assert!(key_lengths(EncrId::AES_CBC, 128, IntegId::NONE, &HMAC_SHA2_256).is_err());
        assert!(key_lengths(EncrId::TRIPLE_DES, 0, IntegId::NONE, &HMAC_SHA2_256).is_err());
    }

    /// The seven keys are consecutive slices of prf+(SKEYSEED, Ni | Nr | SPIi | SPIr),
    /// computed here independently from the prf+ definition.
    #[test]
    fn ike_sa_keys_are_cut_in_rfc_order() {
        let prf = &HMAC_SHA2_256;
        let (ni, nr, gir) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let seed_key = skeyseed(prf, &ni, &nr, &gir);
        let mut nn = ni.to_vec();
        nn.extend_from_slice(&nr);
        assert_eq!(seed_key, prf.compute(&nn, &[&gir]));

        let lens = KeyLengths {
            encr: 20,
            integ: 0,
            prf: 32,
        };
        let (spi_i, spi_r) = (IkeSpi(0x0102030405060708), IkeSpi(0x1112131415161718));
        let keys =
            derive_ike_sa_keys(prf, seed_key.expose(), &ni, &nr, spi_i, spi_r, &lens).unwrap();
        let mut s = nn.clone();
        s.extend_from_slice(&[
            1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        ]);
        let km = prf_plus(prf, seed_key.expose(), &s, lens.total()).unwrap();
        let km = km.expose();
        assert_eq!(keys.sk_d.expose(), &km[0..32]);
        assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
        assert_eq!(keys.sk_ei.expose(), &km[32..52]);
        assert_eq!(keys.sk_er.expose(), &km[52..72]);
        assert_eq!(keys.sk_pi.expose(), &km[72..104]);
        assert_eq!(keys.sk_pr.expose(), &km[104..136]);
        assert!(format!("{keys:?}").contains("redacted"));
    }

    #[test]
    fn rekey_and_child_keymat() {
        let prf = &HMAC_SHA2_256;
        let sk_d = [9u8; 32];
        assert_eq!(
            skeyseed_rekey(prf, &sk_d, b"gir", b"ni", b"nr"),
            prf.compute(&sk_d, &[b"girninr"])
        );
        let no_pfs = child_keymat(prf, &sk_d, None, b"ni", b"nr", 72).unwrap();
        assert_eq!(no_pfs, prf_plus(prf, &sk_d, b"ninr", 72).unwrap());
        let pfs = child_keymat(prf, &sk_d, Some(b"gir"), b"ni", b"nr", 72).unwrap();
        assert_eq!(pfs, prf_plus(prf, &sk_d, b"girninr", 72).unwrap());
        assert_ne!(pfs, no_pfs);
    }
}
