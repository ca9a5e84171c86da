//! A minimal client for vici, strongSwan's control protocol, enough to read a
//! charon's IKE and Child SAs back (`list-sas`) without parsing `swanctl` text.
//!
//! Wire format (strongSwan's `libvici` documentation, "vici protocol"): every packet is a
//! 32-bit big-endian length followed by that many bytes; the first byte is the packet
//! type, named packet types carry a length-prefixed name, the rest is a message made of
//! elements (section start/end, key/value, list start/item/end).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::Error;

// Packet types.
const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

// Message element types.
const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

/// Upper bound on one packet; charon's own limit is far lower for what we ask.
const MAX_PACKET: usize = 4 << 20;

/// A value in a vici message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A key's value (bytes as text; vici values are strings for everything we read).
    Str(String),
    /// A list of values.
    List(Vec<String>),
    /// A nested section.
    Section(Section),
}

/// A vici section: ordered keys (charon sends each key once per section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section(pub Vec<(String, Value)>);

impl Section {
    /// The string value of `key`, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }

    /// The list value of `key` (empty if absent).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .find_map(|(k, v)| match v {
                Value::List(l) if k == key => Some(l.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The sub-section `key`, if present.
    pub fn section(&self, key: &str) -> Option<&Self> {
        self.0.iter().find_map(|(k, v)| match v {
            Value::Section(s) if k == key => Some(s),
            _ => None,
        })
    }

    /// All sub-sections, with their names.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Self)> {
        self.0.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

/// One connection to a charon's vici socket.
#[derive(Debug)]
pub struct Vici {
    stream: UnixStream,
}

impl Vici {
    /// Connects to the vici socket at `path` (the `unix://` URI's path).
    pub fn connect(path: &Path) -> Result<Self, Error> {
        let stream = UnixStream::connect(path)
            .map_err(|e| Error::new(format!("vici connect {}: {e}", path.display())))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| Error::new(format!("vici socket: {e}")))?;
        Ok(Self { stream })
    }

    fn send(&mut self, ptype: u8, name: &str, body: &[u8]) -> Result<(), Error> {
        let name_len = u8::try_from(name.len()).map_err(|_| Error::new("vici name too long"))?;
        let len = 2 + name.len() + body.len();
        let len32 = u32::try_from(len).map_err(|_| Error::new("vici message too long"))?;
        let mut pkt = Vec::with_capacity(4 + len);
        pkt.extend_from_slice(&len32.to_be_bytes());
        pkt.push(ptype);
        pkt.push(name_len);
        pkt.extend_from_slice(name.as_bytes());
        pkt.extend_from_slice(body);
        self.stream
            .write_all(&pkt)
            .map_err(|e| Error::new(format!("vici write: {e}")))
    }

    fn recv(&mut self) -> Result<(u8, Vec<u8>), Error> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| Error::new(format!("vici read: {e}")))?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(Error::new(format!("vici packet length {len}")));
        }
        let mut pkt = vec![0u8; len];
        self.stream
            .read_exact(&mut pkt)
            .map_err(|e| Error::new(format!("vici read: {e}")))?;
        let (ptype, rest) = pkt
            .split_first()
            .ok_or_else(|| Error::new("empty vici packet"))?;
        Ok((*ptype, rest.to_vec()))
    }

    /// Runs `command` with an empty message while registered for `event`, returning
    /// every event message streamed before the command's response, and the response.
    pub fn streamed(
        &mut self,
        command: &str,
        event: &str,
    ) -> Result<(Vec<Section>, Section), Error> {
        self.send(EVENT_REGISTER, event, &[])?;
        match self.recv()? {
            (EVENT_CONFIRM, _) => {}
            (EVENT_UNKNOWN, _) => return Err(Error::new(format!("vici: unknown event {event}"))),
            (t, _) => return Err(Error::new(format!("vici: unexpected packet type {t}"))),
        }
        self.send(CMD_REQUEST, command, &[])?;
        let mut events = Vec::new();
        let response = loop {
            match self.recv()? {
                (EVENT, body) => {
                    let msg = skip_name(&body)?;
                    events.push(parse_message(msg)?);
                }
                (CMD_RESPONSE, body) => break parse_message(&body)?,
                (CMD_UNKNOWN, _) => {
                    return Err(Error::new(format!("vici: unknown command {command}")));
                }
                (t, _) => return Err(Error::new(format!("vici: unexpected packet type {t}"))),
            }
        };
        self.send(EVENT_UNREGISTER, event, &[])?;
        // The unregister confirmation; events racing it are dropped.
        loop {
            match self.recv()? {
                (EVENT_CONFIRM, _) => break,
                (EVENT, _) => {}
                (t, _) => return Err(Error::new(format!("vici: unexpected packet type {t}"))),
            }
        }
        Ok((events, response))
    }
}

fn skip_name(body: &[u8]) -> Result<&[u8], Error> {
    let (&n, rest) = body
        .split_first()
        .ok_or_else(|| Error::new("vici: truncated event"))?;
    rest.get(usize::from(n)..)
        .ok_or_else(|| Error::new("vici: truncated event name"))
}

/// A bounded reader over a vici message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::new("vici: truncated message"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        self.take(1).map(|b| b.first().copied().unwrap_or(0))
    }

    fn name(&mut self) -> Result<String, Error> {
        let n = usize::from(self.u8()?);
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn value(&mut self) -> Result<String, Error> {
        let len = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Parses a vici message body into its top-level section.
pub fn parse_message(body: &[u8]) -> Result<Section, Error> {
    let mut r = Reader { buf: body };
    // Stack of open sections: (name, contents).
    let mut stack: Vec<(String, Section)> = vec![(String::new(), Section::default())];
    while !r.buf.is_empty() {
        match r.u8()? {
            SECTION_START => {
                let name = r.name()?;
                stack.push((name, Section::default()));
            }
            SECTION_END => {
                if stack.len() < 2 {
                    return Err(Error::new("vici: unbalanced section end"));
                }
                let (name, sec) = stack.pop().ok_or_else(|| Error::new("vici: stack"))?;
                top(&mut stack)?.0.push((name, Value::Section(sec)));
            }
            KEY_VALUE => {
                let name = r.name()?;
                let value = r.value()?;
                top(&mut stack)?.0.push((name, Value::Str(value)));
            }
            LIST_START => {
                let name = r.name()?;
                let mut items = Vec::new();
                loop {
                    match r.u8()? {
                        LIST_ITEM => items.push(r.value()?),
                        LIST_END => break,
                        t => return Err(Error::new(format!("vici: element {t} inside a list"))),
                    }
                }
                top(&mut stack)?.0.push((name, Value::List(items)));
            }
            t => return Err(Error::new(format!("vici: unknown element type {t}"))),
        }
    }
    if stack.len() != 1 {
        return Err(Error::new("vici: unterminated section"));
    }
    stack
        .pop()
        .map(|(_, s)| s)
        .ok_or_else(|| Error::new("vici: stack"))
}

fn top(stack: &mut [(String, Section)]) -> Result<&mut Section, Error> {
    stack
        .last_mut()
        .map(|(_, s)| s)
        .ok_or_else(|| Error::new("vici: stack"))
}

/// A Child SA as charon reports it (`list-sas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// The child config's name (`net`).
    pub name: String,
    /// charon's unique id of this Child SA.
    pub uniqueid: String,
    /// `INSTALLED`, `REKEYING`, `REKEYED`, `DELETING`, ...
    pub state: String,
    /// Inbound SPI (hex, as charon prints it: 8 digits).
    pub spi_in: String,
    /// Outbound SPI.
    pub spi_out: String,
    /// Negotiated encryption algorithm (`AES_GCM_16`, ...).
    pub encr_alg: Option<String>,
    /// Our traffic selectors.
    pub local_ts: Vec<String>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<String>,
}

/// An IKE SA as charon reports it (`list-sas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The connection's name.
    pub name: String,
    /// charon's unique id of this IKE SA.
    pub uniqueid: String,
    /// `ESTABLISHED`, `CONNECTING`, `REKEYING`, `DELETING`, ...
    pub state: String,
    /// Our address.
    pub local_host: String,
    /// Our UDP port.
    pub local_port: String,
    /// The peer's address as seen by us (after NAT).
    pub remote_host: String,
    /// The peer's UDP port.
    pub remote_port: String,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// IKE SPI of the original initiator (hex).
    pub initiator_spi: String,
    /// IKE SPI of the original responder (hex).
    pub responder_spi: String,
    /// Whether we were the original initiator.
    pub initiator: bool,
    /// We are behind a NAT (RFC 7296 §2.23 detection).
    pub nat_local: bool,
    /// The peer is behind a NAT.
    pub nat_remote: bool,
    /// Virtual IPs assigned to us (client) or to the peer (gateway).
    pub local_vips: Vec<String>,
    /// Virtual IPs handed to the peer.
    pub remote_vips: Vec<String>,
    /// Child SAs.
    pub children: Vec<ChildSaInfo>,
    /// Everything charon sent about this IKE SA.
    pub raw: Section,
}

/// Reads all IKE SAs from the charon listening on `socket`.
pub fn list_sas(socket: &Path) -> Result<Vec<IkeSaInfo>, Error> {
    let mut vici = Vici::connect(socket)?;
    let (events, _) = vici.streamed("list-sas", "list-sa")?;
    let mut out = Vec::new();
    for ev in events {
        for (name, sa) in ev.sections() {
            let s = |k: &str| sa.str(k).unwrap_or_default().to_owned();
            let yes = |k: &str| sa.str(k) == Some("yes");
            let children = sa
                .section("child-sas")
                .map(|cs| {
                    cs.sections()
                        .map(|(_, c)| ChildSaInfo {
                            name: c.str("name").unwrap_or_default().to_owned(),
                            uniqueid: c.str("uniqueid").unwrap_or_default().to_owned(),
                            state: c.str("state").unwrap_or_default().to_owned(),
                            spi_in: c.str("spi-in").unwrap_or_default().to_owned(),
                            spi_out: c.str("spi-out").unwrap_or_default().to_owned(),
                            encr_alg: c.str("encr-alg").map(str::to_owned),
                            local_ts: c.list("local-ts"),
                            remote_ts: c.list("remote-ts"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(IkeSaInfo {
                name: name.to_owned(),
                uniqueid: s("uniqueid"),
                state: s("state"),
                local_host: s("local-host"),
                local_port: s("local-port"),
                remote_host: s("remote-host"),
                remote_port: s("remote-port"),
                local_id: s("local-id"),
                remote_id: s("remote-id"),
                initiator_spi: s("initiator-spi"),
                responder_spi: s("responder-spi"),
                initiator: yes("initiator"),
                nat_local: yes("nat-local"),
                nat_remote: yes("nat-remote"),
                local_vips: sa.list("local-vips"),
                remote_vips: sa.list("remote-vips"),
                children,
                raw: sa.clone(),
            });
        }
    }
    Ok(out)
}

/// Collects key/value pairs of a section into a map (for quick lookups in tests).
pub fn flatten(section: &Section) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in &section.0 {
        match v {
            Value::Str(s) => {
                out.insert(k.clone(), s.clone());
            }
            Value::List(l) => {
                out.insert(k.clone(), l.join(" "));
            }
            Value::Section(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_message() {
        let mut m = vec![SECTION_START, 2, b'g', b'w'];
        m.extend([KEY_VALUE, 5]);
        m.extend(b"state");
        m.extend([0, 11]);
        m.extend(b"ESTABLISHED");
        m.extend([LIST_START, 3]);
        m.extend(b"vip");
        m.extend([LIST_ITEM, 0, 8]);
        m.extend(b"10.8.0.1");
        m.push(LIST_END);
        m.push(SECTION_END);
        let msg = parse_message(&m).unwrap();
        let gw = msg.section("gw").unwrap();
        assert_eq!(gw.str("state"), Some("ESTABLISHED"));
        assert_eq!(gw.list("vip"), vec!["10.8.0.1".to_owned()]);
    }

    #[test]
    fn rejects_truncated_and_unbalanced() {
        assert!(parse_message(&[KEY_VALUE, 5, b's']).is_err());
        assert!(parse_message(&[SECTION_END]).is_err());
        assert!(parse_message(&[SECTION_START, 1, b'a']).is_err());
        assert!(parse_message(&[LIST_START, 1, b'a', LIST_ITEM, 0]).is_err());
        assert!(parse_message(&[9]).is_err());
    }
}
