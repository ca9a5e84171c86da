//! Distinguished names: text (`C=CH, O=Example, CN=gw`, RDNs in the order written, as
//! strongSwan writes them, not RFC 4514's reversed order) to DER and back, and comparison
//! after normalisation.

use std::str::FromStr;

use der::asn1::Any;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

use super::IdentityError;

/// Attribute names strongSwan users write that the OID database spells differently.
fn canonical_key(key: &str) -> &str {
    match key.to_ascii_uppercase().as_str() {
        "E" | "EMAIL" => "emailAddress",
        "G" | "GN" => "givenName",
        "T" => "title",
        "S" => "st",
        _ => key,
    }
}

/// Splits at unescaped `sep` (a backslash escapes the next character).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// Encodes a DN written as `C=CH, O=Example, CN=gw` (also `/C=CH/O=Example/CN=gw`) as a
/// DER Name. `+` joins attributes of one RDN; `\` escapes `,`, `+`, `=` and itself.
/// Country and serial number become PrintableString, e-mail and DC IA5String, everything
/// else UTF8String (RFC 5280 §4.1.2.4, Appendix A.1).
pub fn parse_dn(text: &str) -> Result<Vec<u8>, IdentityError> {
    let err = |reason: String| IdentityError::InvalidDn {
        input: text.to_owned(),
        reason,
    };
    let t = text.trim();
    let parts = match t.strip_prefix('/') {
        Some(rest) => split_unescaped(rest, '/'),
        None => split_unescaped(t, ','),
    };
    let mut seq = RdnSequence::default();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return Err(err("empty relative distinguished name".to_owned()));
        }
        let mut rdn_atvs = Vec::new();
        for atv in split_unescaped(part, '+') {
            let Some((key, value)) = atv.split_once('=') else {
                return Err(err(format!("\"{atv}\" is not of the form NAME=value")));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err(format!("no attribute name in \"{atv}\"")));
            }
            let canonical = format!("{}={value}", canonical_key(key));
            let parsed = AttributeTypeAndValue::from_str(&canonical).map_err(|_| {
                err(format!(
                    "unknown attribute \"{key}\" or bad value in \"{atv}\""
                ))
            })?;
            rdn_atvs.push(parsed);
        }
        let rdn = RelativeDistinguishedName::try_from(rdn_atvs)
            .map_err(|e| err(format!("invalid RDN \"{part}\": {e}")))?;
        seq.push(rdn);
    }
    seq.to_der().map_err(|e| err(format!("cannot encode: {e}")))
}

/// The text form of a DER Name, RDNs in encoded order, `, ` between them (`None` if
/// `der` is not a Name).
pub fn dn_to_string(der: &[u8]) -> Option<String> {
    let seq = RdnSequence::from_der(der).ok()?;
    let rdns: Vec<String> = seq.iter().map(|rdn| rdn.to_string()).collect();
    Some(rdns.join(", "))
}

/// The characters of a directory string, if `v` is one (UTF8String, PrintableString,
/// IA5String, TeletexString as Latin-1, BMPString as UTF-16).
fn string_value(v: &Any) -> Option<String> {
    let bytes = v.value();
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            std::str::from_utf8(bytes).ok().map(str::to_owned)
        }
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A comparable form of one attribute: its OID and its value with letter case and runs of
/// white space folded (RFC 5280 §7.1's spirit), or the raw DER for non-string values.
fn normalized(atv: &AttributeTypeAndValue) -> (String, Vec<u8>) {
    let value = match string_value(&atv.value) {
        Some(s) => s
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
            .into_bytes(),
        None => atv.value.to_der().unwrap_or_default(),
    };
    (atv.oid.to_string(), value)
}

/// Whether two DER Names are the same DN: same RDNs in the same order, each with the same
/// set of attributes, string values compared without regard to string type, letter case
/// and extra white space. `false` if either is not a Name.
pub fn dn_equal(a: &[u8], b: &[u8]) -> bool {
    let (Ok(a), Ok(b)) = (RdnSequence::from_der(a), RdnSequence::from_der(b)) else {
        return false;
    };
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b.iter()).all(|(x, y)| {
        let mut xs: Vec<_> = x.iter().map(normalized).collect();
        let mut ys: Vec<_> = y.iter().map(normalized).collect();
        xs.sort();
        ys.sort();
        xs == ys
    })
}
