//! PEM certificates and private keys, and our RSA signer for IKE_AUTH.
//!
//! Signing goes through ike's ring-based constant-time RSA (DESIGN §2: never the `rsa`
//! crate, RUSTSEC-2023-0071): a gateway signs for anyone who asks.

use std::fmt;
use std::path::Path;

use ike::config::LocalSigner;
use ike::crypto::CryptoError;
use ike::crypto::auth::{RsaSigningKey, SignatureScheme};
use ike::wire::registry::HashAlgorithm;
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

/// Our RSA private key for IKE_AUTH: `ike::crypto::auth::RsaSigningKey` (ring, constant
/// time) behind the protocol core's [`LocalSigner`] interface. RSASSA-PKCS1-v1_5 with the
/// hash the peer accepts (RFC 7427).
pub struct RsaSigner(RsaSigningKey);

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaSigner({} bits, [redacted])",
            self.0.public_modulus_len() * 8
        )
    }
}

impl LocalSigner for RsaSigner {
    fn sign(&self, hash: HashAlgorithm, octets: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let scheme = match hash {
            HashAlgorithm::SHA2_256 => SignatureScheme::RsaPkcs1Sha256,
            HashAlgorithm::SHA2_384 => SignatureScheme::RsaPkcs1Sha384,
            HashAlgorithm::SHA2_512 => SignatureScheme::RsaPkcs1Sha512,
            _ => return Err(CryptoError::Unsupported("RSA signature hash")),
        };
        self.0.sign(scheme, octets)
    }
}

/// Reads an RSA private key from a PEM file (`PRIVATE KEY` PKCS#8 or `RSA PRIVATE KEY`
/// PKCS#1). The file's text is wiped after use.
pub fn load_rsa_key(path: &Path) -> Result<RsaSigner, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    RsaSigningKey::from_pem(&text)
        .map(RsaSigner)
        .map_err(|e| format!("{}: not a usable RSA private key: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_key_signs_with_the_hashes_of_rfc_7427() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/certs");
        let key = load_rsa_key(&dir.join("gw.key")).unwrap();
        let sig = key.sign(HashAlgorithm::SHA2_256, b"octets").unwrap();
        assert_eq!(sig.len(), 384, "RSA-3072 signature");
        // PKCS#1 v1.5 is deterministic.
        assert_eq!(sig, key.sign(HashAlgorithm::SHA2_256, b"octets").unwrap());
        assert_ne!(sig, key.sign(HashAlgorithm::SHA2_384, b"octets").unwrap());
        assert!(key.sign(HashAlgorithm::SHA1, b"octets").is_err());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        assert_eq!(load_certificates(&dir.join("gw.pem")).unwrap().len(), 1);
        let e = load_rsa_key(&dir.join("gw.pem")).unwrap_err();
        assert!(e.contains("not a usable RSA private key"), "{e}");
    }
}
