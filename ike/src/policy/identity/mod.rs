//! IKE identities (RFC 7296 §3.5) as strongSwan users write them, and the patterns that
//! decide who may connect.
//!
//! | text                         | ID type            |
//! |------------------------------|--------------------|
//! | `192.0.2.1`, `2001:db8::1`   | ID_IPV4_ADDR / ID_IPV6_ADDR |
//! | `user@example.com`           | ID_RFC822_ADDR     |
//! | `vpn.example.com`, `@name`   | ID_FQDN (`@` keeps the rest as is) |
//! | `C=CH, O=Example, CN=gw`     | ID_DER_ASN1_DN (DER, RDNs in the order written) |
//! | `@#0123abcd`                 | ID_KEY_ID          |
//! | `@@name`                     | ID_RFC822_ADDR     |
//! | `fqdn:`, `email:`, `keyid:`, `ipv4:`, `ipv6:`, `asn1dn:` prefixes | that type, explicitly |
//!
//! Distinguished names are compared after normalisation (string types, letter case and
//! runs of spaces do not matter), so the DN of a certificate matches the configured text
//! even when the CA encoded it as PrintableString and we as UTF8String.

mod dn;
#[cfg(test)]
mod tests;

pub use dn::{dn_equal, dn_to_string, parse_dn};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{Identity, IdentityPattern};
use crate::wire::payload::IdPayload;
use crate::wire::registry::IdType;

/// Why an identity or pattern could not be parsed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum IdentityError {
    /// Empty text.
    #[error("empty identity")]
    Empty,
    /// `%any` or `*` where one exact identity is needed.
    #[error("\"{0}\" matches any identity; an exact identity is needed here")]
    Wildcard(String),
    /// Text that looks like a distinguished name but is not one.
    #[error("invalid distinguished name \"{input}\": {reason}")]
    InvalidDn {
        /// The text.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Bad hexadecimal after `#`.
    #[error("invalid hexadecimal in identity \"{0}\"")]
    InvalidHex(String),
    /// `ipv4:`/`ipv6:` followed by something else.
    #[error("invalid IP address in identity \"{0}\"")]
    InvalidAddress(String),
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ip_identity(a: IpAddr) -> Identity {
    match a {
        IpAddr::V4(v4) => Identity {
            id_type: IdType::IPV4_ADDR,
            data: v4.octets().to_vec(),
        },
        IpAddr::V6(v6) => Identity {
            id_type: IdType::IPV6_ADDR,
            data: v6.octets().to_vec(),
        },
    }
}

fn text_identity(id_type: IdType, s: &str) -> Identity {
    Identity {
        id_type,
        data: s.as_bytes().to_vec(),
    }
}

impl Identity {
    /// Parses an identity as written in the configuration (see the module table).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let s = text.trim();
        if s.is_empty() {
            return Err(IdentityError::Empty);
        }
        if s == "%any" || s == "*" {
            return Err(IdentityError::Wildcard(s.to_owned()));
        }
        if let Some((prefix, rest)) = s.split_once(':') {
            let explicit = match prefix.to_ascii_lowercase().as_str() {
                "fqdn" => Some(Ok(text_identity(IdType::FQDN, rest))),
                "email" | "rfc822" | "userfqdn" => {
                    Some(Ok(text_identity(IdType::RFC822_ADDR, rest)))
                }
                "keyid" => Some(match rest.strip_prefix('#') {
                    Some(h) => hex_decode(h)
                        .map(|data| Self {
                            id_type: IdType::KEY_ID,
                            data,
                        })
                        .ok_or_else(|| IdentityError::InvalidHex(s.to_owned())),
                    None => Ok(text_identity(IdType::KEY_ID, rest)),
                }),
                "ipv4" => Some(
                    rest.parse::<Ipv4Addr>()
                        .map(|a| ip_identity(IpAddr::V4(a)))
                        .map_err(|_| IdentityError::InvalidAddress(s.to_owned())),
                ),
                "ipv6" => Some(
                    rest.parse::<Ipv6Addr>()
                        .map(|a| ip_identity(IpAddr::V6(a)))
                        .map_err(|_| IdentityError::InvalidAddress(s.to_owned())),
                ),
                "asn1dn" | "dn" => Some(match rest.strip_prefix('#') {
                    Some(h) => hex_decode(h)
                        .ok_or_else(|| IdentityError::InvalidHex(s.to_owned()))
                        .and_then(|data| {
                            dn_to_string(&data)
                                .map(|_| Self {
                                    id_type: IdType::DER_ASN1_DN,
                                    data,
                                })
                                .ok_or_else(|| IdentityError::InvalidDn {
                                    input: s.to_owned(),
                                    reason: "not a DER-encoded Name".to_owned(),
                                })
                        }),
                    None => parse_dn(rest).map(|data| Self {
                        id_type: IdType::DER_ASN1_DN,
                        data,
                    }),
                }),
                _ => None,
            };
            if let Some(r) = explicit {
                return r;
            }
        }
        if let Some(h) = s.strip_prefix("@#") {
            return hex_decode(h)
                .map(|data| Self {
                    id_type: IdType::KEY_ID,
                    data,
                })
                .ok_or_else(|| IdentityError::InvalidHex(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("@@") {
            return Ok(text_identity(IdType::RFC822_ADDR, rest));
        }
        if let Some(rest) = s.strip_prefix('@') {
            return Ok(text_identity(IdType::FQDN, rest));
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(ip_identity(a));
        }
        if s.contains('=') {
            return parse_dn(s).map(|data| Self {
                id_type: IdType::DER_ASN1_DN,
                data,
            });
        }
        if s.contains('@') {
            return Ok(text_identity(IdType::RFC822_ADDR, s));
        }
        Ok(text_identity(IdType::FQDN, s))
    }

    /// The identity carried by an IDi/IDr payload.
    pub fn from_payload(p: &IdPayload) -> Self {
        Self {
            id_type: p.id_type,
            data: p.data.clone(),
        }
    }

    /// The IDi/IDr payload carrying this identity.
    pub fn to_payload(&self) -> IdPayload {
        IdPayload {
            id_type: self.id_type,
            data: self.data.clone(),
        }
    }

    /// Whether two identities name the same entity: same type, and equal data, where
    /// FQDN and RFC822 names compare without letter case and DNs after normalisation.
    pub fn same_as(&self, other: &Self) -> bool {
        if self.id_type != other.id_type {
            return false;
        }
        match self.id_type {
            IdType::FQDN | IdType::RFC822_ADDR => self.data.eq_ignore_ascii_case(&other.data),
            IdType::DER_ASN1_DN => self.data == other.data || dn_equal(&self.data, &other.data),
            _ => self.data == other.data,
        }
    }

    /// The text form without the `@`/`@@` disambiguation (for glob matching).
    fn plain_text(&self) -> String {
        match self.id_type {
            IdType::FQDN | IdType::RFC822_ADDR => String::from_utf8_lossy(&self.data).into_owned(),
            _ => self.to_string(),
        }
    }
}

/// The text form: what [`Identity::parse`] maps back to the same identity for every type
/// it produces (`@`/`@@` are added where the plain text would parse differently). Other
/// types print as `ID_<type>:#<hex>`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id_type {
            IdType::IPV4_ADDR => match <[u8; 4]>::try_from(self.data.as_slice()) {
                Ok(b) => write!(f, "{}", Ipv4Addr::from(b)),
                Err(_) => write!(f, "ipv4:#{}", hex_encode(&self.data)),
            },
            IdType::IPV6_ADDR => match <[u8; 16]>::try_from(self.data.as_slice()) {
                Ok(b) => write!(f, "{}", Ipv6Addr::from(b)),
                Err(_) => write!(f, "ipv6:#{}", hex_encode(&self.data)),
            },
            IdType::FQDN | IdType::RFC822_ADDR => {
                let text = String::from_utf8_lossy(&self.data);
                let plain_ok = Self::parse(&text).is_ok_and(|p| p == *self);
                match (plain_ok, self.id_type) {
                    (true, _) => f.write_str(&text),
                    (false, IdType::FQDN) => write!(f, "@{text}"),
                    (false, _) => write!(f, "@@{text}"),
                }
            }
            IdType::DER_ASN1_DN => match dn_to_string(&self.data) {
                Some(s) => f.write_str(&s),
                None => write!(f, "asn1dn:#{}", hex_encode(&self.data)),
            },
            IdType::KEY_ID => write!(f, "@#{}", hex_encode(&self.data)),
            other => write!(f, "ID_{other}:#{}", hex_encode(&self.data)),
        }
    }
}

/// `*` glob over text, ASCII case-insensitive; iterative with one backtrack point, so
/// linear in practice and never recursive.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if text.get(t).is_some_and(|x| x.eq_ignore_ascii_case(&c)) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

impl IdentityPattern {
    /// Parses a remote identity pattern: `*` or `%any` (anyone), text with `*` (a glob over
    /// the identity's text form, e.g. `*@example.com`, `C=CH, O=Example, CN=*`), or an
    /// exact identity.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let s = text.trim();
        if s == "*" || s == "%any" {
            return Ok(Self::Any);
        }
        if s.contains('*') {
            // Validate it the way an identity would parse ('*' is a valid character in
            // every text type), and keep DN globs in the canonical DN text form so they
            // match however the configuration spaced them.
            let id = Identity::parse(s)?;
            return Ok(Self::Glob(match id.id_type {
                IdType::DER_ASN1_DN => id.to_string(),
                _ => s.to_owned(),
            }));
        }
        Identity::parse(s).map(Self::Exact)
    }

    /// Whether `id` is acceptable. A glob only matches identities of the type its text
    /// parses as (`*.example.com` matches FQDNs, not e-mail addresses); a glob made of
    /// address characters only (`10.8.0.*`, `2001:db8::*`) matches IP address identities.
    pub fn matches(&self, id: &Identity) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(want) => want.same_as(id),
            Self::Glob(g) => {
                let Ok(shape) = Identity::parse(g) else {
                    return glob_match(g.as_bytes(), id.to_string().as_bytes());
                };
                // `10.8.0.*` parses as an FQDN; let address-shaped globs match addresses.
                let ip_glob = shape.id_type == IdType::FQDN
                    && matches!(id.id_type, IdType::IPV4_ADDR | IdType::IPV6_ADDR)
                    && g.chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*'));
                if ip_glob {
                    return glob_match(g.as_bytes(), id.to_string().as_bytes());
                }
                if shape.id_type != id.id_type {
                    return false;
                }
                let pattern = match shape.id_type {
                    IdType::FQDN | IdType::RFC822_ADDR => shape.plain_text(),
                    _ => shape.to_string(),
                };
                glob_match(pattern.as_bytes(), id.plain_text().as_bytes())
            }
        }
    }
}

/// `*` for any, the glob's text, or the exact identity.
impl fmt::Display for IdentityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(id) => write!(f, "{id}"),
            Self::Glob(g) => f.write_str(g),
        }
    }
}
