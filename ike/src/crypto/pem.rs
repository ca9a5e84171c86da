//! A small PEM reader (RFC 7468) for private keys.
//!
//! Written here rather than taken from a crate because the workspace has no PEM crate yet and
//! we need only "find the block with this label and decode its Base64". The Base64 decoder
//! is branch-free in the decoded values (the approach of constant-time Base64 decoders), so
//! loading a key leaks no key bits through timing or cache lines.

use zeroize::Zeroizing;

use super::CryptoError;

/// One PEM block: its label and decoded contents (wiped on drop).
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// Decodes every PEM block in `text`, in order. Text outside blocks is ignored
/// (RFC 7468 §2 "explanatory text").
pub(crate) fn parse_all(text: &str) -> Result<Vec<PemBlock>, CryptoError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = boundary(line.trim_end(), "-----BEGIN ") else {
            continue;
        };
        let mut body = Zeroizing::new(Vec::new());
        let mut ended = false;
        for line in lines.by_ref() {
            let line = line.trim_end();
            if let Some(end) = boundary(line, "-----END ") {
                if end != label {
                    return Err(CryptoError::InvalidKey(
                        "PEM END label does not match BEGIN",
                    ));
                }
                ended = true;
                break;
            }
            // RFC 1421 headers (e.g. "Proc-Type: 4,ENCRYPTED") mean a legacy encrypted key.
            if line.contains(':') {
                return Err(CryptoError::InvalidKey(
                    "encrypted (or header-carrying) PEM keys are not supported",
                ));
            }
            body.extend_from_slice(line.trim_start().as_bytes());
        }
        if !ended {
            return Err(CryptoError::InvalidKey("PEM block without END line"));
        }
        let der = base64_decode(&body)?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
    }
    Ok(blocks)
}

/// `-----BEGIN LABEL-----` -> `LABEL`.
fn boundary<'a>(line: &'a str, start: &str) -> Option<&'a str> {
    line.strip_prefix(start)?.strip_suffix("-----")
}

/// Maps one Base64 character to 0..=63, or to -1 if it is not in the alphabet, without
/// branching on the character's value.
fn decode_char(c: u8) -> i16 {
    let c = i16::from(c);
    let mut v: i16 = -1;
    // Each term is (lo < c < hi) as an all-ones mask, times (value + 1).
    v += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); // 'A'..='Z' -> 0..=25
    v += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); // 'a'..='z' -> 26..=51
    v += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5); // '0'..='9' -> 52..=61
    v += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; // '+' -> 62
    v += (((0x2e - c) & (c - 0x30)) >> 8) & 64; // '/' -> 63
    v
}

/// Decodes padded or unpadded standard Base64 (RFC 4648 §4) with no whitespace inside.
pub(crate) fn base64_decode(input: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let bad = CryptoError::InvalidKey("invalid Base64 in PEM");
    let mut data = input;
    // Up to two '=' pad characters, only at the end, only to complete a 4-character group.
    let mut pads = 0;
    while let Some((b'=', rest)) = data.split_last() {
        data = rest;
        pads += 1;
    }
    if pads > 2 || (pads > 0 && !(data.len() + pads).is_multiple_of(4)) || data.len() % 4 == 1 {
        return Err(bad);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() / 4 * 3 + 2));
    let mut invalid: i16 = 0;
    for chunk in data.chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            let v = decode_char(c);
            invalid |= v; // negative (sign bit set) iff any character was invalid
            acc = (acc << 6) | u32::from(v as u16 & 0x3f);
        }
        // Left-align the chunk's bits in 24 bits, then emit 1..=3 octets.
        let bits = 6 * chunk.len() as u32;
        acc <<= 24 - bits;
        let [_, b0, b1, b2] = acc.to_be_bytes();
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice([b0, b1, b2].get(..n).unwrap_or_default());
    }
    if invalid < 0 {
        return Err(bad);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        // RFC 4648 §10.
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg", "foob"),
        ] {
            assert_eq!(
                &*base64_decode(enc.as_bytes()).unwrap(),
                dec.as_bytes(),
                "{enc}"
            );
        }
        assert_eq!(&*base64_decode(b"+/+/").unwrap(), &[0xfb, 0xff, 0xbf]);
        for bad in [
            "Zm9v!",
            "Zm9vY",
            "Zg===",
            "Z===",
            "Zm=v",
            "Zm 9v",
            "Zm9v\u{e9}",
        ] {
            assert!(base64_decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn decode_char_covers_the_alphabet_exactly() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for c in 0..=255u8 {
            let want = alphabet
                .iter()
                .position(|&a| a == c)
                .map_or(-1, |p| p as i16);
            assert_eq!(decode_char(c), want, "{c}");
        }
    }

    #[test]
    fn blocks_and_errors() {
        let text = "junk before\n-----BEGIN TEST-----\nZm9v\nYmFy\n-----END TEST-----\n\
                    -----BEGIN OTHER-----\r\nZg==\r\n-----END OTHER-----\r\n";
        let blocks = parse_all(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "TEST");
        assert_eq!(&*blocks[0].der, b"foobar");
        assert_eq!(blocks[1].label, "OTHER");
        assert_eq!(&*blocks[1].der, b"f");
        assert!(parse_all("-----BEGIN A-----\nZg==\n-----END B-----\n").is_err());
        assert!(parse_all("-----BEGIN A-----\nZg==\n").is_err());
        assert!(parse_all("-----BEGIN A-----\nZ*==\n-----END A-----\n").is_err());
        assert!(
            parse_all("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n-----END RSA PRIVATE KEY-----")
                .is_err()
        );
        assert!(parse_all("no blocks at all").unwrap().is_empty());
    }
}
