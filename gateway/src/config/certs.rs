//! PEM certificates and private keys, and our RSA signer for IKE_AUTH.
//!
//! Signing goes through ring's constant-time RSA (DESIGN §2: never the `rsa` crate,
//! RUSTSEC-2023-0071): a gateway signs for anyone who asks.

use std::fmt;
use std::path::Path;

use ike::config::LocalSigner;
use ike::crypto::CryptoError;
use ike::wire::registry::HashAlgorithm;
use ring::signature::{self, RsaKeyPair};
use zeroize::Zeroizing;

/// A decoded PEM block: (label, DER), wiped on drop.
type PemBlock = (String, Zeroizing<Vec<u8>>);

/// Splits PEM text into its `-----BEGIN LABEL-----` blocks, decoded: `(label, der)`.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = rest.get(start..).unwrap_or("");
        let label_end = block
            .get(11..)
            .and_then(|s| s.find("-----"))
            .ok_or("malformed PEM header")?;
        let label = block.get(11..11 + label_end).unwrap_or("").to_owned();
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label} has no END line"))?;
        let whole = block.get(..end + end_marker.len()).unwrap_or("");
        let (_, der) = pem_rfc7468::decode_vec(whole.as_bytes())
            .map_err(|e| format!("invalid PEM block {label}: {e}"))?;
        out.push((label, Zeroizing::new(der)));
        rest = block.get(end + end_marker.len()..).unwrap_or("");
    }
    Ok(out)
}

/// Reads every `CERTIFICATE` in a PEM file, in order (end entity first for a chain).
pub fn load_certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<Vec<u8>> = pem_blocks(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der.to_vec())
        .collect();
    if certs.is_empty() {
        return Err(format!("{} holds no PEM CERTIFICATE", path.display()));
    }
    Ok(certs)
}

/// An RSA private key that signs with RSASSA-PKCS1-v1_5 (RFC 7296 §3.8 method 1, and
/// RFC 7427 with the hash the peer accepts), in constant time.
pub struct RsaSigner {
    key: RsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaSigner({} bits, [redacted])",
            self.key.public().modulus_len() * 8
        )
    }
}

impl LocalSigner for RsaSigner {
    fn sign(&self, hash: HashAlgorithm, octets: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let alg: &'static dyn signature::RsaEncoding = match hash {
            HashAlgorithm::SHA2_256 => &signature::RSA_PKCS1_SHA256,
            HashAlgorithm::SHA2_384 => &signature::RSA_PKCS1_SHA384,
            HashAlgorithm::SHA2_512 => &signature::RSA_PKCS1_SHA512,
            _ => return Err(CryptoError::Unsupported("RSA signature hash")),
        };
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(alg, &self.rng, octets, &mut sig)
            .map_err(|_| CryptoError::SigningFailed)?;
        Ok(sig)
    }
}

/// Reads an RSA private key from a PEM file (`PRIVATE KEY` PKCS#8 or `RSA PRIVATE KEY`
/// PKCS#1). The file's text and the DER are wiped after use.
pub fn load_rsa_key(path: &Path) -> Result<RsaSigner, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let blocks = pem_blocks(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for (label, der) in blocks {
        let key = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            _ => continue,
        };
        return key
            .map(|key| RsaSigner {
                key,
                rng: ring::rand::SystemRandom::new(),
            })
            .map_err(|e| format!("{}: not a usable RSA private key: {e}", path.display()));
    }
    Err(format!(
        "{} holds no PEM PRIVATE KEY or RSA PRIVATE KEY",
        path.display()
    ))
}
