//! The HMAC-SHA2 PRFs (RFC 4868 §2.2, RFC 7296 §3.3.2) and prf+ (RFC 7296 §2.13).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::{CryptoError, Prf, SecretBytes};
use crate::wire::registry::PrfId;

/// The hash under an HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sha2 {
    Sha256,
    Sha384,
    Sha512,
}

impl Sha2 {
    /// Output length in octets.
    pub(crate) const fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// HMAC(key, data[0] | data[1] | ...), full length. HMAC takes keys of any length
/// (RFC 2104 §2), so this cannot fail.
pub(crate) fn hmac_sha2(hash: Sha2, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        // `new_from_slice` of HMAC never fails: any key length is valid (RFC 2104 §2).
        // Should a future version change that, an empty output makes every ICV and AUTH
        // comparison fail rather than panic.
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return Zeroizing::new(Vec::new());
        };
        for d in data {
            mac.update(d);
        }
        Zeroizing::new(mac.finalize().into_bytes().to_vec())
    }
    match hash {
        Sha2::Sha256 => run::<Hmac<Sha256>>(key, data),
        Sha2::Sha384 => run::<Hmac<Sha384>>(key, data),
        Sha2::Sha512 => run::<Hmac<Sha512>>(key, data),
    }
}

/// PRF_HMAC_SHA2_256/384/512 (RFC 4868 §2.2): the key is used as is, whatever its length.
#[derive(Debug)]
pub struct HmacPrf {
    id: PrfId,
    hash: Sha2,
}

impl Prf for HmacPrf {
    fn id(&self) -> PrfId {
        self.id
    }

    fn output_len(&self) -> usize {
        self.hash.output_len()
    }

    fn compute(&self, key: &[u8], data: &[&[u8]]) -> SecretBytes {
        let mut out = hmac_sha2(self.hash, key, data);
        SecretBytes::new(core::mem::take(&mut *out))
    }
}

/// PRF_HMAC_SHA2_256 (transform ID 5).
pub static HMAC_SHA2_256: HmacPrf = HmacPrf {
    id: PrfId::HMAC_SHA2_256,
    hash: Sha2::Sha256,
};

/// PRF_HMAC_SHA2_384 (transform ID 6).
pub static HMAC_SHA2_384: HmacPrf = HmacPrf {
    id: PrfId::HMAC_SHA2_384,
    hash: Sha2::Sha384,
};

/// PRF_HMAC_SHA2_512 (transform ID 7).
pub static HMAC_SHA2_512: HmacPrf = HmacPrf {
    id: PrfId::HMAC_SHA2_512,
    hash: Sha2::Sha512,
};

/// prf+(K, S) = T1 | T2 | ... truncated to `len` octets, where T1 = prf(K, S | 0x01) and
/// Tn = prf(K, Tn-1 | S | n) (RFC 7296 §2.13).
///
/// The counter is one octet, so at most 255 blocks can be produced: asking for more than
/// `255 * prf.output_len()` octets is an error rather than a silent wrap.
pub fn prf_plus(
    prf: &dyn Prf,
    key: &[u8],
    seed: &[u8],
    len: usize,
) -> Result<SecretBytes, CryptoError> {
    let block = prf.output_len();
    if block == 0 || len > 255 * block {
        return Err(CryptoError::Unsupported(
            "prf+ output longer than 255 PRF blocks",
        ));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(len + block));
    let mut prev = SecretBytes::default();
    let mut counter: u8 = 1;
    while out.len() < len {
        let t = prf.compute(key, &[prev.expose(), seed, &[counter]]);
        out.extend_from_slice(t.expose());
        prev = t;
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Ok(SecretBytes::new(core::mem::take(&mut *out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 §4.2 (test case 1), checked by hand against the RFC text.
    #[test]
    fn hmac_sha2_rfc4231_case1() {
        let key = [0x0b; 20];
        let data = b"Hi There";
        assert_eq!(
            HMAC_SHA2_256.compute(&key, &[data]).expose(),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        assert_eq!(
            HMAC_SHA2_384.compute(&key, &[data]).expose(),
            hex(
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6"
            )
        );
        assert_eq!(
            HMAC_SHA2_512.compute(&key, &[data]).expose(),
            hex(
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
            )
        );
    }

    #[test]
    fn compute_concatenates_its_parts() {
        let a = HMAC_SHA2_256.compute(b"k", &[b"ab", b"", b"cd"]);
        let b = HMAC_SHA2_256.compute(b"k", &[b"abcd"]);
        assert_eq!(a, b);
        assert_ne!(a, HMAC_SHA2_256.compute(b"K", &[b"abcd"]));
    }

    /// prf+ built by hand from the definition: T1 = prf(K, S|1), T2 = prf(K, T1|S|2).
    #[test]
    fn prf_plus_follows_rfc7296_2_13() {
        let k = b"key";
        let s = b"seed";
        let t1 = HMAC_SHA2_256.compute(k, &[s, &[1]]);
        let t2 = HMAC_SHA2_256.compute(k, &[t1.expose(), s, &[2]]);
        let t3 = HMAC_SHA2_256.compute(k, &[t2.expose(), s, &[3]]);
        let mut expected = t1.expose().to_vec();
        expected.extend_from_slice(t2.expose());
        expected.extend_from_slice(t3.expose());
        let out = prf_plus(&HMAC_SHA2_256, k, s, 70).unwrap();
        assert_eq!(out.expose(), &expected[..70]);
        assert_eq!(prf_plus(&HMAC_SHA2_256, k, s, 0).unwrap().len(), 0);
    }

    #[test]
    fn prf_plus_limit_is_255_blocks() {
        assert_eq!(
            prf_plus(&HMAC_SHA2_256, b"k", b"s", 255 * 32)
                .unwrap()
                .len(),
            255 * 32
        );
        assert!(prf_plus(&HMAC_SHA2_256, b"k", b"s", 255 * 32 + 1).is_err());
    }

    #[test]
    fn ids_and_lengths() {
        assert_eq!(HMAC_SHA2_256.id(), PrfId::HMAC_SHA2_256);
        assert_eq!(HMAC_SHA2_384.output_len(), 48);
        assert_eq!(HMAC_SHA2_512.output_len(), 64);
    }
}
