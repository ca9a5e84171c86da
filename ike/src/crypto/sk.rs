//! The Encrypted (SK) payload transforms (RFC 7296 §3.14): AES-GCM-16 (RFC 5282),
//! ChaCha20-Poly1305 (RFC 7634) and AES-CBC (RFC 3602) with HMAC-SHA2 (RFC 4868).
//!
//! Layout of the payload body after the generic header: IV | ciphertext | ICV, where the
//! ciphertext covers plaintext | padding | pad length (1 octet).

use core::fmt;

use aes::{Aes128, Aes256};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, block_padding::NoPadding};
use chacha20poly1305::ChaCha20Poly1305;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::prf::{Sha2, hmac_sha2};
use super::{CryptoError, SecretBytes, SkCipher, try_fill_random};
use crate::wire::registry::{EncrId, IntegId};

/// AEAD IV length (RFC 5282 §3.1, RFC 7634 §3).
const AEAD_IV_LEN: usize = 8;
/// AEAD salt length (RFC 5282 §7.1, RFC 7634 §2).
const SALT_LEN: usize = 4;
/// AEAD ICV length: AES-GCM-16 and Poly1305 tags are 16 octets.
const AEAD_TAG_LEN: usize = 16;
/// AES block (and CBC IV) length.
const AES_BLOCK: usize = 16;

enum AeadKey {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// An AEAD SK cipher: AES-GCM-16 with 128/256-bit keys or ChaCha20-Poly1305. The key
/// schedules zeroize on drop (the crates' `zeroize` feature); `Debug` names only the
/// transform.
pub struct AeadCipher {
    encr: EncrId,
    key: AeadKey,
    salt: Zeroizing<[u8; SALT_LEN]>,
}

impl fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipher")
            .field("encr", &self.encr)
            .finish_non_exhaustive()
    }
}

impl AeadCipher {
    /// Keys an AEAD transform. `sk_e` is the key followed by the 4-octet salt; `key_bits`
    /// is the Key Length attribute (128 or 256 for AES-GCM-16, 0 or 256 for ChaCha20).
    pub fn new(encr: EncrId, key_bits: u16, sk_e: &[u8]) -> Result<Self, CryptoError> {
        let want = super::keys::encr_key_len(encr, key_bits)
            .filter(|_| super::keys::is_aead(encr))
            .ok_or(CryptoError::Unsupported("AEAD transform"))?;
        if sk_e.len() != want {
            return Err(CryptoError::InvalidKeyLength("AEAD key"));
        }
        let (key, salt) = sk_e.split_at(want - SALT_LEN);
        let bad = |_| CryptoError::InvalidKeyLength("AEAD key");
        let key = match (encr, key.len()) {
            (EncrId::AES_GCM_16, 16) => {
                AeadKey::Aes128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?))
            }
            (EncrId::AES_GCM_16, 32) => {
                AeadKey::Aes256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?))
            }
            (EncrId::CHACHA20_POLY1305, 32) => AeadKey::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
            )),
            _ => return Err(CryptoError::Unsupported("AEAD transform")),
        };
        let mut s = Zeroizing::new([0u8; SALT_LEN]);
        s.copy_from_slice(salt);
        Ok(Self { encr, key, salt: s })
    }

    fn nonce(&self, iv: &[u8; AEAD_IV_LEN]) -> [u8; 12] {
        // RFC 5282 §4 / RFC 7634 §2: nonce = salt (4) | IV (8).
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&*self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Encrypts `buf` in place and returns the tag.
    fn encrypt(
        &self,
        iv: &[u8; AEAD_IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; AEAD_TAG_LEN], CryptoError> {
        let nonce = self.nonce(iv).into();
        let fail = |_| CryptoError::Unsupported("AEAD message too long");
        let tag = match &self.key {
            AeadKey::Aes128(k) => k
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map_err(fail)?,
            AeadKey::Aes256(k) => k
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map_err(fail)?,
            AeadKey::ChaCha(k) => k
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .map_err(fail)?,
        };
        Ok(tag.into())
    }

    /// Verifies `tag` (in constant time, inside the AEAD crates) and decrypts in place.
    fn decrypt(
        &self,
        iv: &[u8; AEAD_IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv).into();
        let tag = (*tag).into();
        let fail = |_| CryptoError::IntegrityCheckFailed;
        match &self.key {
            AeadKey::Aes128(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            AeadKey::Aes256(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            AeadKey::ChaCha(k) => k.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .map_err(fail)
    }

    /// Like [`SkCipher::seal`] but with a caller-chosen IV. ONLY for known-answer tests:
    /// reusing an IV under one key destroys GCM and ChaCha20-Poly1305.
    pub fn seal_with_iv(
        &self,
        iv: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let iv: &[u8; AEAD_IV_LEN] = iv
            .try_into()
            .map_err(|_| CryptoError::InvalidKeyLength("AEAD IV"))?;
        let prefix_len = out.len();
        out.reserve(self.sealed_len(plaintext.len()));
        out.extend_from_slice(iv);
        out.extend_from_slice(plaintext);
        // No padding is needed: both ciphers are stream ciphers (block size 1, RFC 7296
        // §3.14 "a multiple of the block size"); the pad length octet is 0.
        out.push(0);
        let (aad, rest) = out.split_at_mut(prefix_len);
        let body = rest
            .get_mut(AEAD_IV_LEN..)
            .ok_or(CryptoError::Unsupported("AEAD buffer"))?;
        let tag = self.encrypt(iv, aad, body)?;
        out.extend_from_slice(&tag);
        Ok(())
    }
}

impl SkCipher for AeadCipher {
    fn sealed_len(&self, plaintext_len: usize) -> usize {
        AEAD_IV_LEN + plaintext_len + 1 + AEAD_TAG_LEN
    }

    fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        // RFC 5282 §3.1 / RFC 7634 §2: the IV must never repeat under a key; 64 random bits
        // per message keep collisions negligible over an IKE SA's lifetime of messages.
        let mut iv = [0u8; AEAD_IV_LEN];
        try_fill_random(&mut iv)?;
        self.seal_with_iv(&iv, plaintext, out)
    }

    fn open(&self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if body.len() < AEAD_IV_LEN + 1 + AEAD_TAG_LEN {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        let (iv, rest) = body.split_at(AEAD_IV_LEN);
        let (ct, tag) = rest.split_at(rest.len() - AEAD_TAG_LEN);
        let iv: &[u8; AEAD_IV_LEN] = iv
            .try_into()
            .map_err(|_| CryptoError::IntegrityCheckFailed)?;
        let tag: &[u8; AEAD_TAG_LEN] = tag
            .try_into()
            .map_err(|_| CryptoError::IntegrityCheckFailed)?;
        let mut pt = ct.to_vec();
        self.decrypt(iv, prefix, &mut pt, tag)?;
        strip_padding(pt)
    }
}

/// Removes padding and the pad length octet (RFC 7296 §3.14). The padding's content is not
/// checked: "MAY contain any value chosen by the sender".
fn strip_padding(mut pt: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    let pad = usize::from(*pt.last().ok_or(CryptoError::InvalidPadding)?);
    let keep = pt
        .len()
        .checked_sub(pad + 1)
        .ok_or(CryptoError::InvalidPadding)?;
    // Wipe the decrypted tail before dropping it (it may be padding, but costs nothing).
    for b in pt.get_mut(keep..).unwrap_or_default() {
        *b = 0;
    }
    pt.truncate(keep);
    Ok(pt)
}

enum CbcKey {
    Aes128(Box<Aes128>),
    Aes256(Box<Aes256>),
}

/// AES-CBC (RFC 3602) with an HMAC-SHA2 integrity transform (RFC 4868), encrypt-then-MAC
/// over prefix | IV | ciphertext (RFC 7296 §3.14).
pub struct CbcHmacCipher {
    key: CbcKey,
    integ: IntegId,
    hash: Sha2,
    icv_len: usize,
    sk_a: SecretBytes,
}

impl fmt::Debug for CbcHmacCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = match self.key {
            CbcKey::Aes128(_) => 128,
            CbcKey::Aes256(_) => 256,
        };
        f.debug_struct("CbcHmacCipher")
            .field("aes_bits", &bits)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

/// The hash and truncated ICV length of an HMAC-SHA2 integrity transform (RFC 4868 §2.3).
fn integ_params(integ: IntegId) -> Option<(Sha2, usize)> {
    match integ {
        IntegId::HMAC_SHA2_256_128 => Some((Sha2::Sha256, 16)),
        IntegId::HMAC_SHA2_384_192 => Some((Sha2::Sha384, 24)),
        IntegId::HMAC_SHA2_512_256 => Some((Sha2::Sha512, 32)),
        _ => None,
    }
}

/// The truncated HMAC of an integrity transform: the leftmost half of HMAC-SHA2-n
/// (RFC 4868 §2.3). The key must be as long as the hash output (RFC 4868 §2.1.1).
pub fn integ_mac(integ: IntegId, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (hash, icv_len) =
        integ_params(integ).ok_or(CryptoError::Unsupported("integrity transform"))?;
    if key.len() != hash.output_len() {
        return Err(CryptoError::InvalidKeyLength("integrity key"));
    }
    let full = hmac_sha2(hash, key, &[data]);
    Ok(full.get(..icv_len).unwrap_or_default().to_vec())
}

impl CbcHmacCipher {
    /// Keys AES-CBC (`key_bits` 128 or 256) with an HMAC-SHA2 integrity transform.
    pub fn new(
        key_bits: u16,
        integ: IntegId,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<Self, CryptoError> {
        let (hash, icv_len) =
            integ_params(integ).ok_or(CryptoError::Unsupported("integrity transform"))?;
        if sk_a.len() != hash.output_len() {
            return Err(CryptoError::InvalidKeyLength("integrity key"));
        }
        let bad = |_| CryptoError::InvalidKeyLength("AES-CBC key");
        let key = match (key_bits, sk_e.len()) {
            (128, 16) => CbcKey::Aes128(Box::new(Aes128::new_from_slice(sk_e).map_err(bad)?)),
            (256, 32) => CbcKey::Aes256(Box::new(Aes256::new_from_slice(sk_e).map_err(bad)?)),
            (128 | 256, _) => return Err(CryptoError::InvalidKeyLength("AES-CBC key")),
            _ => return Err(CryptoError::Unsupported("AES-CBC key length")),
        };
        Ok(Self {
            key,
            integ,
            hash,
            icv_len,
            sk_a: SecretBytes::from_slice(sk_a),
        })
    }

    fn icv(&self, data: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut full = hmac_sha2(self.hash, self.sk_a.expose(), &[data]);
        full.truncate(self.icv_len);
        full
    }

    /// Like [`SkCipher::seal`] but with a caller-chosen 16-octet IV and zero padding. ONLY
    /// for known-answer tests: CBC IVs must be unpredictable (RFC 7296 §3.14).
    pub fn seal_with_iv(
        &self,
        iv: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if iv.len() != AES_BLOCK {
            return Err(CryptoError::InvalidKeyLength("AES-CBC IV"));
        }
        out.reserve(self.sealed_len(plaintext.len()));
        out.extend_from_slice(iv);
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        // Pad to the block size with the fewest octets (RFC 7296 §3.14); contents are zero.
        let pad = (AES_BLOCK - (plaintext.len() + 1) % AES_BLOCK) % AES_BLOCK;
        out.resize(out.len() + pad, 0);
        out.push(u8::try_from(pad).map_err(|_| CryptoError::InvalidPadding)?);
        let body = out
            .get_mut(body_start..)
            .ok_or(CryptoError::Unsupported("CBC buffer"))?;
        let len = body.len();
        let fail = |_| CryptoError::Unsupported("CBC buffer");
        match &self.key {
            CbcKey::Aes128(k) => {
                cbc::Encryptor::<Aes128>::inner_iv_slice_init((**k).clone(), iv)
                    .map_err(|_| CryptoError::InvalidKeyLength("AES-CBC IV"))?
                    .encrypt_padded::<NoPadding>(body, len)
                    .map_err(fail)?;
            }
            CbcKey::Aes256(k) => {
                cbc::Encryptor::<Aes256>::inner_iv_slice_init((**k).clone(), iv)
                    .map_err(|_| CryptoError::InvalidKeyLength("AES-CBC IV"))?
                    .encrypt_padded::<NoPadding>(body, len)
                    .map_err(fail)?;
            }
        }
        // The ICV covers prefix | IV | ciphertext, all of `out` so far.
        let icv = self.icv(out);
        out.extend_from_slice(&icv);
        Ok(())
    }
}

impl SkCipher for CbcHmacCipher {
    fn sealed_len(&self, plaintext_len: usize) -> usize {
        let padded = (plaintext_len + 1).div_ceil(AES_BLOCK) * AES_BLOCK;
        AES_BLOCK + padded + self.icv_len
    }

    fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let mut iv = [0u8; AES_BLOCK];
        try_fill_random(&mut iv)?;
        self.seal_with_iv(&iv, plaintext, out)
    }

    fn open(&self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if body.len() < AES_BLOCK + AES_BLOCK + self.icv_len {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        let (signed, icv) = body.split_at(body.len() - self.icv_len);
        let expected = {
            let mut full = hmac_sha2(self.hash, self.sk_a.expose(), &[prefix, signed]);
            full.truncate(self.icv_len);
            full
        };
        // Constant-time comparison: no early exit reveals how many ICV octets matched.
        if !bool::from(expected.as_slice().ct_eq(icv)) {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        let (iv, ct) = signed.split_at(AES_BLOCK);
        if ct.len() % AES_BLOCK != 0 {
            return Err(CryptoError::InvalidPadding);
        }
        let mut pt = ct.to_vec();
        let fail = |_| CryptoError::InvalidPadding;
        match &self.key {
            CbcKey::Aes128(k) => {
                cbc::Decryptor::<Aes128>::inner_iv_slice_init((**k).clone(), iv)
                    .map_err(|_| CryptoError::IntegrityCheckFailed)?
                    .decrypt_padded::<NoPadding>(&mut pt)
                    .map_err(fail)?;
            }
            CbcKey::Aes256(k) => {
                cbc::Decryptor::<Aes256>::inner_iv_slice_init((**k).clone(), iv)
                    .map_err(|_| CryptoError::IntegrityCheckFailed)?
                    .decrypt_padded::<NoPadding>(&mut pt)
                    .map_err(fail)?;
            }
        }
        strip_padding(pt)
    }
}

/// The default [`super::SkCipherFactory`]: an [`AeadCipher`] for AEAD transforms (with
/// integrity NONE; `sk_a` must be empty), a [`CbcHmacCipher`] for AES-CBC.
pub fn sk_cipher(
    encr: EncrId,
    key_bits: u16,
    integ: IntegId,
    sk_e: &[u8],
    sk_a: &[u8],
) -> Result<Box<dyn SkCipher>, CryptoError> {
    if super::keys::is_aead(encr) {
        if integ != IntegId::NONE || !sk_a.is_empty() {
            return Err(CryptoError::Unsupported("integrity transform with AEAD"));
        }
        return Ok(Box::new(AeadCipher::new(encr, key_bits, sk_e)?));
    }
    if encr == EncrId::AES_CBC {
        return Ok(Box::new(CbcHmacCipher::new(key_bits, integ, sk_e, sk_a)?));
    }
    Err(CryptoError::Unsupported("encryption transform"))
}

/// Raw AEAD encryption for known-answer tests: returns ciphertext | 16-octet tag, with
/// nonce = salt | iv where `key_with_salt` is key | 4-octet salt.
pub fn aead_seal(
    encr: EncrId,
    key_with_salt: &[u8],
    iv: &[u8; 8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let c = aead_for_kat(encr, key_with_salt)?;
    let mut buf = plaintext.to_vec();
    let tag = c.encrypt(iv, aad, &mut buf)?;
    buf.extend_from_slice(&tag);
    Ok(buf)
}

/// Raw AEAD decryption for known-answer tests: `ciphertext_and_tag` is ciphertext | tag.
pub fn aead_open(
    encr: EncrId,
    key_with_salt: &[u8],
    iv: &[u8; 8],
    aad: &[u8],
    ciphertext_and_tag: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let c = aead_for_kat(encr, key_with_salt)?;
    let split = ciphertext_and_tag
        .len()
        .checked_sub(AEAD_TAG_LEN)
        .ok_or(CryptoError::IntegrityCheckFailed)?;
    let (ct, tag) = ciphertext_and_tag.split_at(split);
    let tag: &[u8; AEAD_TAG_LEN] = tag
        .try_into()
        .map_err(|_| CryptoError::IntegrityCheckFailed)?;
    let mut buf = ct.to_vec();
    c.decrypt(iv, aad, &mut buf, tag)?;
    Ok(buf)
}

fn aead_for_kat(encr: EncrId, key_with_salt: &[u8]) -> Result<AeadCipher, CryptoError> {
    let bits = match (encr, key_with_salt.len()) {
        (EncrId::AES_GCM_16, 20) => 128,
        (EncrId::AES_GCM_16, 36) | (EncrId::CHACHA20_POLY1305, 36) => 256,
        (EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305, _) => {
            return Err(CryptoError::InvalidKeyLength("AEAD key"));
        }
        _ => return Err(CryptoError::Unsupported("AEAD transform")),
    };
    AeadCipher::new(encr, bits, key_with_salt)
}

#[cfg(test)]
#[path = "sk_tests.rs"]
mod tests;
