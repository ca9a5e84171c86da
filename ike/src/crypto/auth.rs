//! AUTH payload data: shared keys (RFC 7296 §2.15) and RSA digital signatures (RFC 7296
//! §3.8 method 1, RFC 7427 method 14).
//!
//! Signing goes through ring, whose RSA private-key operation is constant time: the `rsa`
//! crate must not be used for it (RUSTSEC-2023-0071, the Marvin attack), since a gateway
//! signs for anyone who asks. Verification uses ring too.

use core::fmt;

use ring::signature::{self as rsig, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm};

use super::pem;
use super::{CryptoError, Prf, SecretBytes};
use crate::wire::registry::HashAlgorithm;

/// The pad string of RFC 7296 §2.15, without a terminating NUL.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> ) (RFC 7296 §2.15).
pub fn psk_auth(prf: &dyn Prf, psk: &[u8], signed_octets: &[u8]) -> SecretBytes {
    let inner = prf.compute(psk, &[KEY_PAD]);
    prf.compute(inner.expose(), &[signed_octets])
}

/// The octets that AUTH covers (RFC 7296 §2.15): RealMessage | Nonce | prf(SK_p, IDx'),
/// where `message` is the first message the signer sent, `peer_nonce` the other side's
/// nonce data, `sk_p` the signer's SK_pi / SK_pr, and `id_body` the ID payload body from the
/// ID Type octet on (IDx').
pub fn signed_octets(
    message: &[u8],
    peer_nonce: &[u8],
    prf: &dyn Prf,
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let mac = prf.compute(sk_p, &[id_body]);
    let mut out = Vec::with_capacity(message.len() + peer_nonce.len() + mac.len());
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(mac.expose());
    out
}

/// An RSA signature scheme: the padding and the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-1: the only hash of AUTH method 1 (RFC 7296 §3.8);
    /// verification only.
    RsaPkcs1Sha1,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (sha256WithRSAEncryption).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-octet salt.
    RsaPssSha256,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-octet salt.
    RsaPssSha384,
    /// RSASSA-PSS, SHA-512, MGF1-SHA-512, 64-octet salt.
    RsaPssSha512,
}

impl SignatureScheme {
    /// The hash, as announced in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    pub fn hash_algorithm(self) -> HashAlgorithm {
        match self {
            Self::RsaPkcs1Sha1 => HashAlgorithm::SHA1,
            Self::RsaPkcs1Sha256 | Self::RsaPssSha256 => HashAlgorithm::SHA2_256,
            Self::RsaPkcs1Sha384 | Self::RsaPssSha384 => HashAlgorithm::SHA2_384,
            Self::RsaPkcs1Sha512 | Self::RsaPssSha512 => HashAlgorithm::SHA2_512,
        }
    }

    fn signing(self) -> Option<&'static dyn rsig::RsaEncoding> {
        Some(match self {
            Self::RsaPkcs1Sha1 => return None,
            Self::RsaPkcs1Sha256 => &rsig::RSA_PKCS1_SHA256,
            Self::RsaPkcs1Sha384 => &rsig::RSA_PKCS1_SHA384,
            Self::RsaPkcs1Sha512 => &rsig::RSA_PKCS1_SHA512,
            Self::RsaPssSha256 => &rsig::RSA_PSS_SHA256,
            Self::RsaPssSha384 => &rsig::RSA_PSS_SHA384,
            Self::RsaPssSha512 => &rsig::RSA_PSS_SHA512,
        })
    }

    /// ring's verifiers accept 2048- to 8192-bit moduli.
    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::RsaPkcs1Sha1 => &rsig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Self::RsaPkcs1Sha256 => &rsig::RSA_PKCS1_2048_8192_SHA256,
            Self::RsaPkcs1Sha384 => &rsig::RSA_PKCS1_2048_8192_SHA384,
            Self::RsaPkcs1Sha512 => &rsig::RSA_PKCS1_2048_8192_SHA512,
            Self::RsaPssSha256 => &rsig::RSA_PSS_2048_8192_SHA256,
            Self::RsaPssSha384 => &rsig::RSA_PSS_2048_8192_SHA384,
            Self::RsaPssSha512 => &rsig::RSA_PSS_2048_8192_SHA512,
        }
    }
}

/// Our RSA private key (ring inside). `Debug` prints only the modulus size.
pub struct RsaSigningKey {
    key: RsaKeyPair,
}

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigningKey")
            .field("modulus_bits", &(self.key.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl RsaSigningKey {
    /// Loads the first "PRIVATE KEY" (PKCS#8, RFC 5958) or "RSA PRIVATE KEY" (PKCS#1,
    /// RFC 8017 A.1.2) block of a PEM file; other blocks (certificates) are skipped.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        for block in pem::parse_all(pem)? {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der),
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(CryptoError::InvalidKey(
                        "encrypted private keys are not supported",
                    ));
                }
                _ => {}
            }
        }
        Err(CryptoError::InvalidKey("no RSA private key in PEM"))
    }

    /// From a DER PKCS#8 PrivateKeyInfo holding an rsaEncryption key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        RsaKeyPair::from_pkcs8(der)
            .map(|key| Self { key })
            .map_err(|_| CryptoError::InvalidKey("not an RSA PKCS#8 key ring accepts"))
    }

    /// From a DER PKCS#1 RSAPrivateKey.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, CryptoError> {
        RsaKeyPair::from_der(der)
            .map(|key| Self { key })
            .map_err(|_| CryptoError::InvalidKey("not an RSA PKCS#1 key ring accepts"))
    }

    /// Modulus length in octets (= signature length).
    pub fn public_modulus_len(&self) -> usize {
        self.key.public().modulus_len()
    }

    /// The public key as a DER SubjectPublicKeyInfo (rsaEncryption), e.g. to check that it
    /// matches our certificate.
    pub fn public_key_spki(&self) -> Vec<u8> {
        let rsa_public_key = self.key.public().as_ref();
        let mut bit_string = Vec::with_capacity(rsa_public_key.len() + 1);
        bit_string.push(0); // no unused bits
        bit_string.extend_from_slice(rsa_public_key);
        let mut body = der_tlv(0x30, &[OID_RSA_ENCRYPTION, NULL].concat());
        body.extend(der_tlv(0x03, &bit_string));
        der_tlv(0x30, &body)
    }

    /// Signs `msg` (ring hashes it). PKCS#1 v1.5 is deterministic; PSS draws its salt from
    /// the OS RNG. SHA-1 signing is refused ([`CryptoError::Unsupported`]).
    pub fn sign(&self, scheme: SignatureScheme, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let enc = scheme
            .signing()
            .ok_or(CryptoError::Unsupported("SHA-1 signatures"))?;
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(enc, &ring::rand::SystemRandom::new(), msg, &mut sig)
            .map_err(|_| CryptoError::SigningFailed)?;
        Ok(sig)
    }
}

/// Verifies an RSA signature with the public key of `spki_der`, a DER
/// SubjectPublicKeyInfo (as in an X.509 certificate) whose algorithm is rsaEncryption.
pub fn verify_rsa(
    spki_der: &[u8],
    scheme: SignatureScheme,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    let rsa_public_key = rsa_public_key_from_spki(spki_der)?;
    UnparsedPublicKey::new(scheme.verification(), rsa_public_key)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// The RSAPublicKey inside an rsaEncryption SubjectPublicKeyInfo (RFC 5280 §4.1.2.7,
/// RFC 8017 A.1.1).
fn rsa_public_key_from_spki(spki: &[u8]) -> Result<&[u8], CryptoError> {
    let bad = CryptoError::InvalidKey("malformed SubjectPublicKeyInfo");
    let mut outer = Der::new(spki);
    let mut seq = Der::new(outer.expect(0x30).ok_or(bad.clone())?);
    if !outer.is_empty() {
        return Err(bad);
    }
    let mut alg = Der::new(seq.expect(0x30).ok_or(bad.clone())?);
    let bits = seq.expect(0x03).ok_or(bad.clone())?;
    if !seq.is_empty() {
        return Err(bad);
    }
    if alg.expect(0x06).ok_or(bad.clone())? != &OID_RSA_ENCRYPTION[2..] {
        return Err(CryptoError::Unsupported(
            "public key algorithm other than rsaEncryption",
        ));
    }
    // Parameters MUST be NULL (RFC 3279 §2.3.1); tolerate them absent.
    if !alg.is_empty() && (alg.expect(0x05) != Some(&[]) || !alg.is_empty()) {
        return Err(bad);
    }
    match bits.split_first() {
        Some((0, key)) => Ok(key),
        _ => Err(bad),
    }
}

// --- RFC 7427 AUTH data: 1-octet length | AlgorithmIdentifier | signature ---

const OID_RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1];
const OID_SHA1_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 5];
const OID_SHA256_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11];
const OID_SHA384_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 12];
const OID_SHA512_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 13];
const OID_RSASSA_PSS: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 10];
const OID_MGF1: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 8];
const OID_SHA256: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
];
const OID_SHA384: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
];
const OID_SHA512: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
];
const NULL: &[u8] = &[0x05, 0x00];

/// DER tag | length | value (definite length; short or long form).
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let len_bytes = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | len_bytes.len() as u8);
        out.extend_from_slice(len_bytes);
    }
    out.extend_from_slice(value);
    out
}

/// The hash OID of a PSS scheme and its output (= salt) length.
fn pss_hash(scheme: SignatureScheme) -> Option<(&'static [u8], u8)> {
    match scheme {
        SignatureScheme::RsaPssSha256 => Some((OID_SHA256, 32)),
        SignatureScheme::RsaPssSha384 => Some((OID_SHA384, 48)),
        SignatureScheme::RsaPssSha512 => Some((OID_SHA512, 64)),
        _ => None,
    }
}

/// The AlgorithmIdentifier DER of a scheme, in the forms of RFC 7427 Appendix A: NULL
/// parameters for PKCS#1 v1.5 (A.1), and for PSS explicit hash, MGF1 with the same hash and
/// salt length = hash length, trailer field omitted (default 1), as in A.4.3.
pub fn algorithm_identifier(scheme: SignatureScheme) -> Vec<u8> {
    let pkcs1 = |oid: &[u8]| der_tlv(0x30, &[oid, NULL].concat());
    match scheme {
        SignatureScheme::RsaPkcs1Sha1 => pkcs1(OID_SHA1_RSA),
        SignatureScheme::RsaPkcs1Sha256 => pkcs1(OID_SHA256_RSA),
        SignatureScheme::RsaPkcs1Sha384 => pkcs1(OID_SHA384_RSA),
        SignatureScheme::RsaPkcs1Sha512 => pkcs1(OID_SHA512_RSA),
        SignatureScheme::RsaPssSha256
        | SignatureScheme::RsaPssSha384
        | SignatureScheme::RsaPssSha512 => {
            let (hash_oid, salt) = pss_hash(scheme).unwrap_or((OID_SHA256, 32));
            let hash_alg = der_tlv(0x30, &[hash_oid, NULL].concat());
            let mgf = der_tlv(0x30, &[OID_MGF1, &hash_alg].concat());
            let mut params = der_tlv(0xa0, &hash_alg);
            params.extend(der_tlv(0xa1, &mgf));
            params.extend(der_tlv(0xa2, &der_tlv(0x02, &[salt])));
            der_tlv(0x30, &[OID_RSASSA_PSS, &der_tlv(0x30, &params)].concat())
        }
    }
}

/// RFC 7427 §3 AUTH data for method 14: ASN.1 length (1 octet) | AlgorithmIdentifier |
/// signature value.
pub fn encode_signature_auth(scheme: SignatureScheme, signature: &[u8]) -> Vec<u8> {
    let ai = algorithm_identifier(scheme);
    let mut out = Vec::with_capacity(1 + ai.len() + signature.len());
    // Every identifier above is shorter than 256 octets (at most 67).
    out.push(u8::try_from(ai.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&ai);
    out.extend_from_slice(signature);
    out
}

/// Splits RFC 7427 AUTH data into the signature scheme and the signature value.
/// Malformed data is [`CryptoError::BadSignature`]; well-formed but unimplemented
/// algorithms (ECDSA, PSS with other parameters) are [`CryptoError::Unsupported`].
pub fn decode_signature_auth(data: &[u8]) -> Result<(SignatureScheme, &[u8]), CryptoError> {
    let (&len, rest) = data.split_first().ok_or(CryptoError::BadSignature)?;
    let (ai, sig) = rest
        .split_at_checked(usize::from(len))
        .ok_or(CryptoError::BadSignature)?;
    let mut outer = Der::new(ai);
    let mut seq = Der::new(outer.expect(0x30).ok_or(CryptoError::BadSignature)?);
    if !outer.is_empty() {
        return Err(CryptoError::BadSignature);
    }
    let oid = seq.expect(0x06).ok_or(CryptoError::BadSignature)?;
    let pkcs1 = |s: SignatureScheme, mut seq: Der<'_>| {
        // NULL parameters (RFC 4055 §5), tolerated absent.
        if !seq.is_empty() && (seq.expect(0x05) != Some(&[]) || !seq.is_empty()) {
            return Err(CryptoError::BadSignature);
        }
        Ok(s)
    };
    let scheme = match oid {
        o if o == &OID_SHA1_RSA[2..] => pkcs1(SignatureScheme::RsaPkcs1Sha1, seq)?,
        o if o == &OID_SHA256_RSA[2..] => pkcs1(SignatureScheme::RsaPkcs1Sha256, seq)?,
        o if o == &OID_SHA384_RSA[2..] => pkcs1(SignatureScheme::RsaPkcs1Sha384, seq)?,
        o if o == &OID_SHA512_RSA[2..] => pkcs1(SignatureScheme::RsaPkcs1Sha512, seq)?,
        o if o == &OID_RSASSA_PSS[2..] => decode_pss_params(seq)?,
        _ => return Err(CryptoError::Unsupported("signature algorithm")),
    };
    if sig.is_empty() {
        return Err(CryptoError::BadSignature);
    }
    Ok((scheme, sig))
}

/// RSASSA-PSS-params (RFC 4055 §3.1). We support exactly what ring verifies: SHA-2 hash,
/// MGF1 with the same hash, salt length = hash length, trailer field 1.
fn decode_pss_params(mut seq: Der<'_>) -> Result<SignatureScheme, CryptoError> {
    use CryptoError::{BadSignature, Unsupported};
    let unsupported = Unsupported("RSASSA-PSS parameters other than SHA-2 with hash-length salt");
    let mut params = Der::new(seq.expect(0x30).ok_or(BadSignature)?);
    if !seq.is_empty() {
        return Err(BadSignature);
    }
    // [0] hashAlgorithm: absent means SHA-1 (not supported).
    let hash = Der::new(params.expect(0xa0).ok_or(unsupported.clone())?);
    let hash_oid = hash_algorithm_oid(hash)?;
    let scheme = match hash_oid {
        o if o == &OID_SHA256[2..] => SignatureScheme::RsaPssSha256,
        o if o == &OID_SHA384[2..] => SignatureScheme::RsaPssSha384,
        o if o == &OID_SHA512[2..] => SignatureScheme::RsaPssSha512,
        _ => return Err(unsupported),
    };
    let (_, salt_len) = pss_hash(scheme).ok_or(BadSignature)?;
    // [1] maskGenAlgorithm: MGF1 with the same hash.
    let mut mgf_outer = Der::new(params.expect(0xa1).ok_or(unsupported.clone())?);
    let mut mgf = Der::new(mgf_outer.expect(0x30).ok_or(BadSignature)?);
    if !mgf_outer.is_empty() || mgf.expect(0x06).ok_or(BadSignature)? != &OID_MGF1[2..] {
        return Err(unsupported);
    }
    let mgf_hash = Der::new(mgf.expect(0x30).ok_or(BadSignature)?);
    if !mgf.is_empty() {
        return Err(BadSignature);
    }
    let mgf_hash_oid = hash_algorithm_oid_inner(mgf_hash)?;
    if mgf_hash_oid != hash_oid {
        return Err(unsupported);
    }
    // [2] saltLength: absent means 20 (not supported).
    let mut salt = Der::new(params.expect(0xa2).ok_or(unsupported.clone())?);
    if salt.expect(0x02) != Some(&[salt_len]) || !salt.is_empty() {
        return Err(unsupported);
    }
    // [3] trailerField: 1 if present.
    if !params.is_empty() {
        let mut trailer = Der::new(params.expect(0xa3).ok_or(BadSignature)?);
        if trailer.expect(0x02) != Some(&[1]) || !trailer.is_empty() {
            return Err(unsupported);
        }
    }
    if !params.is_empty() {
        return Err(BadSignature);
    }
    Ok(scheme)
}

/// The OID inside an explicit-tagged `[n] AlgorithmIdentifier`.
fn hash_algorithm_oid(mut tagged: Der<'_>) -> Result<&[u8], CryptoError> {
    let inner = Der::new(tagged.expect(0x30).ok_or(CryptoError::BadSignature)?);
    if !tagged.is_empty() {
        return Err(CryptoError::BadSignature);
    }
    hash_algorithm_oid_inner(inner)
}

/// The OID of a hash AlgorithmIdentifier body, with NULL or absent parameters (RFC 4055 §2.1
/// allows both).
fn hash_algorithm_oid_inner(mut seq: Der<'_>) -> Result<&[u8], CryptoError> {
    let oid = seq.expect(0x06).ok_or(CryptoError::BadSignature)?;
    if !seq.is_empty() && (seq.expect(0x05) != Some(&[]) || !seq.is_empty()) {
        return Err(CryptoError::BadSignature);
    }
    Ok(oid)
}

/// A minimal DER reader: definite lengths in minimal form, single-octet tags.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads one element with tag `tag` and returns its value; `None` (consuming nothing)
    /// if the next element has another tag or is malformed.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.rest.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (len_bytes, r) = rest.split_at_checked(n)?;
            rest = r;
            if len_bytes.first() == Some(&0) {
                return None; // not minimal
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return None; // not minimal
            }
            len
        };
        let (value, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(value)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
