//! Key exchange methods: Curve25519 (RFC 8031), ECP-256/384 (RFC 5903) and MODP-2048/3072
//! (RFC 3526).

mod modp;

use x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use zeroize::Zeroizing;

use super::{CryptoError, KeMethod, KeyExchange, SecretBytes, try_fill_random};
use crate::wire::registry::KeGroup;

pub use modp::{MODP_2048, MODP_3072, ModpMethod};

/// Curve25519 (group 31, RFC 8031).
#[derive(Debug)]
pub struct X25519Method;

/// Curve25519 (group 31, RFC 8031): 32-octet public values and shared secrets.
pub static X25519: X25519Method = X25519Method;

struct X25519Exchange {
    secret: StaticSecret,
    public: [u8; 32],
}

impl X25519Exchange {
    fn new(private: [u8; 32]) -> Self {
        // RFC 7748 §5: the scalar is clamped inside `diffie_hellman` and `PublicKey::from`.
        let secret = StaticSecret::from(private);
        let public = X25519Public::from(&secret).to_bytes();
        Self { secret, public }
    }
}

impl KeyExchange for X25519Exchange {
    fn public_value(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
        let peer: [u8; 32] = peer_public
            .try_into()
            .map_err(|_| CryptoError::InvalidPublicValue)?;
        let shared = self.secret.diffie_hellman(&X25519Public::from(peer));
        // RFC 8031 §2.3: the all-zero result of a small-order peer point MUST be rejected.
        if !shared.was_contributory() {
            return Err(CryptoError::InvalidPublicValue);
        }
        Ok(SecretBytes::from_slice(shared.as_bytes()))
    }
}

impl KeMethod for X25519Method {
    fn group(&self) -> KeGroup {
        KeGroup::CURVE25519
    }

    fn public_value_len(&self) -> usize {
        32
    }

    fn start(&self) -> Result<Box<dyn KeyExchange>, CryptoError> {
        let mut private = Zeroizing::new([0u8; 32]);
        try_fill_random(&mut *private)?;
        Ok(Box::new(X25519Exchange::new(*private)))
    }
}

/// Defines an RFC 5903 ECP group over a RustCrypto curve crate: public value x || y
/// (no SEC1 0x04 prefix, RFC 5903 §7), shared secret the x coordinate (RFC 5903 §7),
/// peer points checked to be on the curve and not the identity (RFC 5903 §1: "Validate").
macro_rules! ecp_group {
    ($method:ident, $exchange:ident, $stat:ident, $krate:ident, $group:expr, $n:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $method;

        #[doc = $doc]
        pub static $stat: $method = $method;

        struct $exchange {
            secret: $krate::SecretKey,
            public: Vec<u8>,
        }

        impl $exchange {
            fn from_private(private: &[u8]) -> Result<Self, CryptoError> {
                if private.len() != $n {
                    return Err(CryptoError::InvalidKeyLength(stringify!($stat)));
                }
                // Rejects 0 and values >= the group order.
                let secret = $krate::SecretKey::from_slice(private)
                    .map_err(|_| CryptoError::InvalidKey("ECP private value out of range"))?;
                let point = $krate::Sec1Point::from(secret.public_key());
                let public = match point.as_bytes().split_first() {
                    Some((0x04, xy)) if xy.len() == 2 * $n => xy.to_vec(),
                    _ => return Err(CryptoError::Unsupported("SEC1 point encoding")),
                };
                Ok(Self { secret, public })
            }
        }

        impl KeyExchange for $exchange {
            fn public_value(&self) -> &[u8] {
                &self.public
            }

            fn complete(self: Box<Self>, peer_public: &[u8]) -> Result<SecretBytes, CryptoError> {
                if peer_public.len() != 2 * $n {
                    return Err(CryptoError::InvalidPublicValue);
                }
                let mut sec1 = Vec::with_capacity(1 + 2 * $n);
                sec1.push(0x04);
                sec1.extend_from_slice(peer_public);
                // Decoding checks that the point is on the curve and is not the identity.
                let peer = $krate::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let shared = self.secret.diffie_hellman(&peer);
                Ok(SecretBytes::from_slice(shared.raw_secret_bytes()))
            }
        }

        impl KeMethod for $method {
            fn group(&self) -> KeGroup {
                $group
            }

            fn public_value_len(&self) -> usize {
                2 * $n
            }

            fn start(&self) -> Result<Box<dyn KeyExchange>, CryptoError> {
                // A uniformly random string is below the group order with overwhelming
                // probability (P-256: 1 - 2^-32, P-384: 1 - 2^-189); retry otherwise.
                let mut private = Zeroizing::new([0u8; $n]);
                for _ in 0..64 {
                    try_fill_random(&mut *private)?;
                    if let Ok(x) = $exchange::from_private(&*private) {
                        return Ok(Box::new(x));
                    }
                }
                Err(CryptoError::RandomFailed)
            }
        }
    };
}

ecp_group!(
    Ecp256Method,
    Ecp256Exchange,
    ECP_256,
    p256,
    KeGroup::ECP_256,
    32,
    "256-bit random ECP group (group 19, RFC 5903): 64-octet public values."
);
ecp_group!(
    Ecp384Method,
    Ecp384Exchange,
    ECP_384,
    p384,
    KeGroup::ECP_384,
    48,
    "384-bit random ECP group (group 20, RFC 5903): 96-octet public values."
);

/// A deterministic exchange from a fixed private key, for known-answer tests: the X25519
/// scalar (32 octets, clamped per RFC 7748 §5), the ECP private scalar (32 / 48 octets, big
/// endian), or the MODP private exponent (big endian, at most the prime's length).
pub fn ke_from_private(
    group: KeGroup,
    private: &[u8],
) -> Result<Box<dyn KeyExchange>, CryptoError> {
    match group {
        KeGroup::CURVE25519 => {
            let k: [u8; 32] = private
                .try_into()
                .map_err(|_| CryptoError::InvalidKeyLength("X25519"))?;
            Ok(Box::new(X25519Exchange::new(k)))
        }
        KeGroup::ECP_256 => Ok(Box::new(Ecp256Exchange::from_private(private)?)),
        KeGroup::ECP_384 => Ok(Box::new(Ecp384Exchange::from_private(private)?)),
        KeGroup::MODP_2048 => MODP_2048.exchange_from_private(private),
        KeGroup::MODP_3072 => MODP_3072.exchange_from_private(private),
        _ => Err(CryptoError::Unsupported("key exchange group")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn round_trip(m: &dyn KeMethod) {
        let a = m.start().unwrap();
        let b = m.start().unwrap();
        assert_eq!(a.public_value().len(), m.public_value_len());
        assert_ne!(a.public_value(), b.public_value());
        let pa = a.public_value().to_vec();
        let pb = b.public_value().to_vec();
        let sa = a.complete(&pb).unwrap();
        let sb = b.complete(&pa).unwrap();
        assert_eq!(sa, sb);
        assert!(sa.expose().iter().any(|&x| x != 0));
    }

    #[test]
    fn every_group_agrees_with_itself() {
        for m in [
            &X25519 as &dyn KeMethod,
            &ECP_256,
            &ECP_384,
            &MODP_2048,
            &MODP_3072,
        ] {
            round_trip(m);
        }
    }

    /// RFC 7748 §6.1 (Alice and Bob), checked by hand against the RFC text.
    #[test]
    fn x25519_rfc7748_6_1() {
        let a = ke_from_private(
            KeGroup::CURVE25519,
            &hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
        )
        .unwrap();
        assert_eq!(
            a.public_value(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let k = a
            .complete(&hex(
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            ))
            .unwrap();
        assert_eq!(
            k.expose(),
            hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    #[test]
    fn x25519_rejects_small_order_points_and_bad_lengths() {
        let a = X25519.start().unwrap();
        // The all-zero point has order 1: the shared secret would be all zeros.
        assert_eq!(
            a.complete(&[0u8; 32]).unwrap_err(),
            CryptoError::InvalidPublicValue
        );
        let a = X25519.start().unwrap();
        let mut one = [0u8; 32];
        one[0] = 1; // u = 1, also of small order
        assert!(a.complete(&one).is_err());
        let a = X25519.start().unwrap();
        assert!(a.complete(&[9u8; 31]).is_err());
        assert!(ke_from_private(KeGroup::CURVE25519, &[1u8; 31]).is_err());
    }

    #[test]
    fn ecp_rejects_points_off_the_curve() {
        let a = ECP_256.start().unwrap();
        let b = ECP_256.start().unwrap();
        let mut bad = b.public_value().to_vec();
        bad[63] ^= 1; // y no longer matches x
        assert_eq!(
            a.complete(&bad).unwrap_err(),
            CryptoError::InvalidPublicValue
        );
        let a = ECP_384.start().unwrap();
        assert!(a.complete(&[0u8; 96]).is_err());
        let a = ECP_384.start().unwrap();
        assert!(a.complete(&[1u8; 95]).is_err());
        // The private scalar must be in [1, n-1] and of the exact length.
        assert!(ke_from_private(KeGroup::ECP_256, &[0u8; 32]).is_err());
        assert!(ke_from_private(KeGroup::ECP_256, &[0xffu8; 32]).is_err());
        assert!(ke_from_private(KeGroup::ECP_256, &[1u8; 31]).is_err());
    }

    /// The public value of private key 1 is the generator: x || y of G (SEC 2 / FIPS 186-4).
    #[test]
    fn ecp256_private_one_gives_the_generator() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let a = ke_from_private(KeGroup::ECP_256, &one).unwrap();
        assert_eq!(
            a.public_value(),
            hex(
                "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296
                 4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
            )
        );
        // Shared secret with private key 1 is the peer's x coordinate.
        let b = ECP_256.start().unwrap();
        let pb = b.public_value().to_vec();
        let k = a.complete(&pb).unwrap();
        assert_eq!(k.expose(), &pb[..32]);
    }

    #[test]
    fn unsupported_groups() {
        assert!(ke_from_private(KeGroup::MODP_1024, &[1]).is_err());
        assert!(ke_from_private(KeGroup::CURVE448, &[1; 56]).is_err());
    }
}
