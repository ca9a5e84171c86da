//! The MODP groups 14 and 15 (RFC 3526 §3, §4): generator 2, constant-time modular
//! exponentiation in Montgomery form (crypto-bigint).

use std::sync::LazyLock;

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Limb, Odd, U2048, U3072, Uint};
use zeroize::Zeroizing;

use super::super::{CryptoError, KeMethod, KeyExchange, SecretBytes, try_fill_random};
use crate::wire::registry::KeGroup;

/// RFC 3526 §3: p = 2^2048 - 2^1984 - 1 + 2^64 * ( [2^1918 pi] + 124476 ). The unit test
/// re-derives it from that formula.
const P2048_HEX: &str = "\
FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879\
8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B\
0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836\
1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804\
F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6\
955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/// RFC 3526 §4: p = 2^3072 - 2^3008 - 1 + 2^64 * ( [2^2942 pi] + 1690314 ).
const P3072_HEX: &str = "\
FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879\
8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B\
0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836\
1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804\
F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6\
955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64\
ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226\
1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2\
08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

const L2048: usize = U2048::LIMBS;
const L3072: usize = U3072::LIMBS;

/// Precomputed Montgomery parameters of a group.
struct Params<const L: usize> {
    monty: FixedMontyParams<L>,
    p_minus_1: Uint<L>,
    generator: FixedMontyForm<L>,
}

impl<const L: usize> Params<L> {
    fn new(p: Odd<Uint<L>>) -> Self {
        // The modulus is public: variable-time setup is fine.
        let monty = FixedMontyParams::new_vartime(p);
        let p_minus_1 = p.get().wrapping_sub(&Uint::ONE);
        let generator = FixedMontyForm::new(&Uint::from_u64(2), &monty);
        Self {
            monty,
            p_minus_1,
            generator,
        }
    }
}

// `from_be_hex` panics only on a malformed or even constant; the tests evaluate both.
static P2048: LazyLock<Params<L2048>> =
    LazyLock::new(|| Params::new(Odd::<U2048>::from_be_hex(P2048_HEX)));
static P3072: LazyLock<Params<L3072>> =
    LazyLock::new(|| Params::new(Odd::<U3072>::from_be_hex(P3072_HEX)));

#[derive(Debug, Clone, Copy)]
enum Which {
    P2048,
    P3072,
}

/// A MODP group (RFC 3526). Public values are g^x mod p, left-padded with zeros to the
/// prime's length (RFC 7296 §3.4); so is the shared secret (§2.14).
#[derive(Debug)]
pub struct ModpMethod {
    group: KeGroup,
    which: Which,
    /// Bits of a fresh private exponent: twice the larger strength estimate of RFC 3526
    /// §8 (2048: 160 bits -> 320; 3072: 210 bits -> 420, rounded up to whole limbs).
    exponent_bits: u32,
}

/// 2048-bit MODP group (group 14, RFC 3526 §3).
pub static MODP_2048: ModpMethod = ModpMethod {
    group: KeGroup::MODP_2048,
    which: Which::P2048,
    exponent_bits: 320,
};

/// 3072-bit MODP group (group 15, RFC 3526 §4).
pub static MODP_3072: ModpMethod = ModpMethod {
    group: KeGroup::MODP_3072,
    which: Which::P3072,
    exponent_bits: 448,
};

struct ModpExchange<const L: usize> {
    params: &'static Params<L>,
    x: Zeroizing<Uint<L>>,
    /// Bit length bound of `x` (public: the same for every exchange of a group).
    x_bits: u32,
    public: Vec<u8>,
}

impl<const L: usize> ModpExchange<L> {
    const LEN: usize = L * Limb::BYTES;

    /// `private` is a big-endian exponent of at most the prime's length.
    fn new(params: &'static Params<L>, private: &[u8]) -> Result<Self, CryptoError> {
        if private.is_empty() || private.len() > Self::LEN {
            return Err(CryptoError::InvalidKeyLength("MODP private exponent"));
        }
        let mut buf = Zeroizing::new(vec![0u8; Self::LEN]);
        let start = Self::LEN - private.len();
        buf.get_mut(start..)
            .ok_or(CryptoError::InvalidKeyLength("MODP private exponent"))?
            .copy_from_slice(private);
        let x = Zeroizing::new(Uint::<L>::from_be_slice(&buf));
        if bool::from(x.is_zero()) {
            return Err(CryptoError::InvalidKey("MODP private exponent is zero"));
        }
        let x_bits = u32::try_from(private.len() * 8)
            .map_err(|_| CryptoError::InvalidKeyLength("MODP private exponent"))?;
        // Constant time in the exponent's value for a fixed bit bound.
        let y = params.generator.pow_bounded_exp(&*x, x_bits).retrieve();
        let public = y.to_be_bytes().as_slice().to_vec();
        Ok(Self {
            params,
            x,
            x_bits,
            public,
        })
    }
}

impl<const L: usize> KeyExchange for ModpExchange<L> {
    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
        if peer_public.len() != Self::LEN {
            return Err(CryptoError::InvalidPublicValue);
        }
        let y = Uint::<L>::from_be_slice(peer_public);
        // Reject 0, 1, p-1 and anything >= p: 1 < y < p-1 (RFC 6989 §2.1, RFC 7296 §5).
        if y <= Uint::ONE || y >= self.params.p_minus_1 {
            return Err(CryptoError::InvalidPublicValue);
        }
        let mut base = FixedMontyForm::new(&y, &self.params.monty);
        let mut z = base.pow_bounded_exp(&*self.x, self.x_bits);
        let shared = Zeroizing::new(z.retrieve());
        zeroize::Zeroize::zeroize(&mut z);
        zeroize::Zeroize::zeroize(&mut base);
        // Full length, zero-padded on the left (RFC 7296 §2.14).
        let mut enc = shared.to_be_bytes();
        let out = SecretBytes::from_slice(enc.as_slice());
        zeroize::Zeroize::zeroize(&mut enc);
        Ok(out)
    }
}

impl ModpMethod {
    /// A deterministic exchange from a big-endian private exponent (known-answer tests).
    pub(crate) fn exchange_from_private(
        &self,
        private: &[u8],
    ) -> Result<Box<dyn KeyExchange>, CryptoError> {
        Ok(match self.which {
            Which::P2048 => Box::new(ModpExchange::new(&P2048, private)?),
            Which::P3072 => Box::new(ModpExchange::new(&P3072, private)?),
        })
    }
}

impl KeMethod for ModpMethod {
    fn group(&self) -> KeGroup {
        self.group
    }

    fn public_value_len(&self) -> usize {
        match self.which {
            Which::P2048 => ModpExchange::<L2048>::LEN,
            Which::P3072 => ModpExchange::<L3072>::LEN,
        }
    }

    fn start(&self) -> Result<Box<dyn KeyExchange>, CryptoError> {
        let mut x = Zeroizing::new(vec![0u8; self.exponent_bits as usize / 8]);
        try_fill_random(&mut x)?;
        // Keep x >= 2^(bits-1) so that the exponent is never tiny (and never 0 or 1).
        if let Some(top) = x.first_mut() {
            *top |= 0x80;
        }
        self.exchange_from_private(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_the_rfc3526_primes() {
        // The leading and trailing 64 bits are all ones by construction (RFC 3526 §3, §4).
        for hex in [P2048_HEX, P3072_HEX] {
            assert!(hex.starts_with("FFFFFFFFFFFFFFFFC90FDAA22168C234"));
            assert!(hex.ends_with("FFFFFFFFFFFFFFFF"));
        }
        assert_eq!(P2048_HEX.len() * 4, 2048);
        assert_eq!(P3072_HEX.len() * 4, 3072);
        // The 3072-bit prime shares the 2048-bit prime's leading pi digits.
        assert_eq!(P2048_HEX[..400], P3072_HEX[..400]);
        assert!(P2048.p_minus_1.bits() == 2048 && P3072.p_minus_1.bits() == 3072);
    }

    /// Private exponent 1 gives the generator; exponent 2 gives 4; both padded.
    #[test]
    fn small_exponents_by_hand() {
        let a = MODP_2048.exchange_from_private(&[1]).unwrap();
        let mut two = vec![0u8; 256];
        two[255] = 2;
        assert_eq!(a.public_value(), &two[..]);
        let b = MODP_3072.exchange_from_private(&[0, 2]).unwrap();
        let mut four = vec![0u8; 384];
        four[383] = 4;
        assert_eq!(b.public_value(), &four[..]);
        // With x = 2 and peer y = 3, the shared secret is 9, left-padded.
        let mut three = vec![0u8; 384];
        three[383] = 3;
        let z = b.complete(&three).unwrap();
        assert_eq!(z.len(), 384);
        assert_eq!(z.expose()[383], 9);
        assert!(z.expose()[..383].iter().all(|&x| x == 0));
    }

    #[test]
    fn peer_values_outside_1_to_p_minus_1_are_rejected() {
        let p_bytes: Vec<u8> = (0..P2048_HEX.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&P2048_HEX[i..i + 2], 16).unwrap())
            .collect();
        let mut p_minus_1 = p_bytes.clone();
        p_minus_1[255] -= 1;
        let mut one = vec![0u8; 256];
        one[255] = 1;
        for bad in [vec![0u8; 256], one, p_minus_1, p_bytes, vec![0xff; 256]] {
            let a = MODP_2048.start().unwrap();
            assert_eq!(
                a.complete(&bad).unwrap_err(),
                CryptoError::InvalidPublicValue
            );
        }
        let a = MODP_2048.start().unwrap();
        assert!(a.complete(&[2u8; 255]).is_err());
        assert!(MODP_2048.exchange_from_private(&[]).is_err());
        assert!(MODP_2048.exchange_from_private(&[0; 8]).is_err());
        assert!(MODP_2048.exchange_from_private(&[1; 257]).is_err());
    }
}
