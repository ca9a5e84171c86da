//! The configuration file exactly as written (DESIGN §5): serde structs with spans, so
//! every later check can point at a line. Unknown keys are errors.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use zeroize::Zeroizing;

/// A `psk = "..."` value: wiped on drop, never printed.
pub(crate) struct RawPsk(pub(crate) Zeroizing<String>);

impl fmt::Debug for RawPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawPsk([redacted])")
    }
}

impl<'de> Deserialize<'de> for RawPsk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawPsk;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPsk, E> {
                Ok(RawPsk(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawPsk, E> {
                Ok(RawPsk(Zeroizing::new(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string or a list of strings (e.g. `remote_ca`).
#[derive(Debug)]
pub(crate) struct OneOrMany(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    v.push(s);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) gateway: Spanned<RawGateway>,
    #[serde(default)]
    pub(crate) connection: Vec<Spanned<RawConnection>>,
    #[serde(default)]
    pub(crate) secret: Vec<Spanned<RawSecret>>,
    #[serde(default)]
    pub(crate) pool: BTreeMap<String, Spanned<RawPool>>,
    pub(crate) cluster: Option<Spanned<RawCluster>>,
}

/// `[gateway]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) listen: Spanned<Vec<Spanned<String>>>,
    pub(crate) ike_port: Option<Spanned<u16>>,
    pub(crate) natt_port: Option<Spanned<u16>>,
    pub(crate) control_socket: Option<Spanned<String>>,
    pub(crate) metrics: Option<Spanned<String>>,
    pub(crate) dataplane: Option<Spanned<String>>,
    pub(crate) keylog: Option<Spanned<String>>,
    pub(crate) cookie_threshold: Option<Spanned<u64>>,
    pub(crate) half_open_limit: Option<Spanned<u64>>,
    pub(crate) half_open_timeout: Option<Spanned<String>>,
    pub(crate) log_level: Option<Spanned<String>>,
    pub(crate) fragment_size: Option<Spanned<u64>>,
}

/// `[[connection]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub(crate) name: Spanned<String>,
    pub(crate) proposals: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) esp_proposals: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) local_id: Spanned<String>,
    pub(crate) local_auth: Option<Spanned<String>>,
    pub(crate) local_cert: Option<Spanned<String>>,
    pub(crate) local_key: Option<Spanned<String>>,
    pub(crate) remote_id: Option<Spanned<String>>,
    pub(crate) remote_auth: Option<Spanned<String>>,
    pub(crate) remote_ca: Option<Spanned<OneOrMany>>,
    pub(crate) local_ts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) remote_ts: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) pool: Option<Spanned<String>>,
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) rekey_time: Option<Spanned<String>>,
    pub(crate) life_time: Option<Spanned<String>>,
    pub(crate) dpd_delay: Option<Spanned<String>>,
    pub(crate) child_rekey_time: Option<Spanned<String>>,
    pub(crate) child_life_time: Option<Spanned<String>>,
    pub(crate) fragmentation: Option<Spanned<bool>>,
    pub(crate) fragment_size: Option<Spanned<u64>>,
}

/// `[[secret]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub(crate) ids: Spanned<Vec<Spanned<String>>>,
    pub(crate) psk: Spanned<RawPsk>,
}

/// `[pool.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    pub(crate) addrs: Spanned<String>,
    #[serde(default)]
    pub(crate) dns: Vec<Spanned<String>>,
}

/// `[cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) node: Spanned<String>,
    pub(crate) listen: Spanned<String>,
    #[serde(default)]
    pub(crate) peers: BTreeMap<String, Spanned<String>>,
    pub(crate) key_file: Spanned<String>,
    #[serde(default)]
    pub(crate) vip: Vec<Spanned<String>>,
    pub(crate) sync: Option<Spanned<String>>,
    pub(crate) heartbeat_interval: Option<Spanned<String>>,
    pub(crate) heartbeat_multiplier: Option<Spanned<u64>>,
    pub(crate) sync_rate: Option<Spanned<u64>>,
    pub(crate) transfer_rate: Option<Spanned<u64>>,
}
