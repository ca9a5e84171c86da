//! Encoding of messages, payload chains and payload bodies. Lengths and next-payload
//! chaining are computed here, in one pass (placeholders patched by
//! [`LengthPrefixed`]); whatever the decoded structures say about them is ignored.
//!
//! Reserved fields are written as zero, and the critical bit is cleared on every known
//! payload (RFC 7296 §2.5). So decode→encode reproduces the input octet for octet for
//! any valid message whose reserved fields are zero and whose known payloads do not set
//! the critical bit.

use std::net::IpAddr;

use super::codec::{LengthPrefixed, LengthWidth};
use super::decode::CRITICAL;
use super::error::EncodeError;
use super::payload::*;
use super::registry::*;

/// An output buffer that remembers the first thing that could not be represented, so the
/// lenient encoders still produce octets and the strict ones can report the problem.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub(crate) out: Vec<u8>,
    err: Option<EncodeError>,
}

impl Encoder {
    pub(crate) fn new(out: Vec<u8>) -> Self {
        Self { out, err: None }
    }

    fn fail(&mut self, e: EncodeError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    pub(crate) fn finish(self) -> Result<Vec<u8>, EncodeError> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    fn u8_count(&mut self, n: usize, within: &'static str) -> u8 {
        u8::try_from(n).unwrap_or_else(|_| {
            self.fail(EncodeError::CountTooLarge { within });
            u8::MAX
        })
    }

    fn u16_count(&mut self, n: usize, within: &'static str) -> u16 {
        u16::try_from(n).unwrap_or_else(|_| {
            self.fail(EncodeError::CountTooLarge { within });
            u16::MAX
        })
    }

    fn patch(&mut self, l: LengthPrefixed, payload: PayloadType) {
        if !l.finish(&mut self.out) {
            self.fail(EncodeError::PayloadTooLong { payload });
        }
    }

    /// One payload with its generic header; `next` is the type of the payload after it
    /// (ignored for SK and SKF, whose Next Payload names their first inner payload).
    pub(crate) fn payload(&mut self, p: &Payload, next: PayloadType) {
        let start = self.out.len();
        let (next_field, flags) = match p {
            Payload::Sk(s) => (s.first_inner, 0),
            Payload::Skf(s) => (s.first_inner, 0),
            Payload::Unknown { critical, .. } => (next, if *critical { CRITICAL } else { 0 }),
            _ => (next, 0),
        };
        self.out.extend_from_slice(&[next_field.0, flags]);
        let l = LengthPrefixed::begin(&mut self.out, start, LengthWidth::U16);
        self.body(p);
        self.patch(l, p.payload_type());
    }

    /// A chain: each generic header's Next Payload is the following payload's type.
    pub(crate) fn chain(&mut self, payloads: &[Payload]) -> PayloadType {
        let mut iter = payloads.iter().peekable();
        while let Some(p) = iter.next() {
            let next = iter.peek().map_or(PayloadType::NONE, |n| n.payload_type());
            self.payload(p, next);
        }
        payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type)
    }

    fn body(&mut self, p: &Payload) {
        match p {
            Payload::Sa(sa) => self.sa(sa),
            Payload::Ke(ke) => {
                self.out.extend_from_slice(&ke.group.0.to_be_bytes());
                self.out.extend_from_slice(&[0, 0]);
                self.out.extend_from_slice(&ke.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => {
                self.out.extend_from_slice(&[id.id_type.0, 0, 0, 0]);
                self.out.extend_from_slice(&id.data);
            }
            Payload::Cert(c) => {
                self.out.push(c.encoding.0);
                self.out.extend_from_slice(&c.data);
            }
            Payload::CertReq(c) => {
                self.out.push(c.encoding.0);
                self.out.extend_from_slice(&c.data);
            }
            Payload::Auth(a) => {
                self.out.extend_from_slice(&[a.method.0, 0, 0, 0]);
                self.out.extend_from_slice(&a.data);
            }
            Payload::Nonce(n) => {
                if !(16..=256).contains(&n.data.len()) {
                    self.fail(EncodeError::Invalid {
                        within: "nonce",
                        reason: "length outside 16..=256",
                    });
                }
                self.out.extend_from_slice(&n.data);
            }
            Payload::Notify(n) => {
                let spi_size = self.u8_count(n.spi.len(), "notify SPI size");
                self.out.extend_from_slice(&[n.protocol.0, spi_size]);
                self.out.extend_from_slice(&n.notify_type.0.to_be_bytes());
                self.out.extend_from_slice(&n.spi);
                self.out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                let count = self.u16_count(d.spis.len(), "delete SPI count");
                if d.spis.iter().any(|s| s.len() != usize::from(d.spi_size)) {
                    self.fail(EncodeError::Invalid {
                        within: "delete payload",
                        reason: "an SPI differs from the SPI size",
                    });
                }
                self.out.extend_from_slice(&[d.protocol.0, d.spi_size]);
                self.out.extend_from_slice(&count.to_be_bytes());
                for spi in &d.spis {
                    self.out.extend_from_slice(spi);
                }
            }
            Payload::VendorId(v) => self.out.extend_from_slice(&v.data),
            Payload::TsI(ts) | Payload::TsR(ts) => self.ts(ts),
            Payload::Sk(sk) => self.out.extend_from_slice(&sk.data),
            Payload::Skf(f) => {
                self.out.extend_from_slice(&f.fragment_number.to_be_bytes());
                self.out.extend_from_slice(&f.total_fragments.to_be_bytes());
                self.out.extend_from_slice(&f.data);
            }
            Payload::Cp(cp) => {
                self.out.extend_from_slice(&[cp.cfg_type.0, 0, 0, 0]);
                for a in &cp.attributes {
                    self.out
                        .extend_from_slice(&(a.attr_type.0 & 0x7fff).to_be_bytes());
                    let len = self.u16_count(a.value.len(), "configuration attribute");
                    self.out.extend_from_slice(&len.to_be_bytes());
                    self.out.extend_from_slice(&a.value);
                }
            }
            Payload::Eap(e) => self.out.extend_from_slice(&e.data),
            Payload::Unknown { body, .. } => self.out.extend_from_slice(body),
        }
    }

    fn sa(&mut self, sa: &SaPayload) {
        let n = sa.proposals.len();
        for (i, p) in sa.proposals.iter().enumerate() {
            let start = self.out.len();
            let last = if i + 1 == n { 0 } else { 2 };
            self.out.extend_from_slice(&[last, 0]);
            let l = LengthPrefixed::begin(&mut self.out, start, LengthWidth::U16);
            let spi_size = self.u8_count(p.spi.len(), "proposal SPI size");
            let count = self.u8_count(p.transforms.len(), "proposal transforms");
            self.out
                .extend_from_slice(&[p.number, p.protocol.0, spi_size, count]);
            self.out.extend_from_slice(&p.spi);
            let nt = p.transforms.len();
            for (j, t) in p.transforms.iter().enumerate() {
                let tstart = self.out.len();
                let tlast = if j + 1 == nt { 0 } else { 3 };
                self.out.extend_from_slice(&[tlast, 0]);
                let tl = LengthPrefixed::begin(&mut self.out, tstart, LengthWidth::U16);
                self.out.extend_from_slice(&[t.transform_type.0, 0]);
                self.out.extend_from_slice(&t.id.to_be_bytes());
                for a in &t.attributes {
                    let ty = a.attr_type.0 & 0x7fff;
                    match &a.value {
                        AttributeValue::Tv(v) => {
                            self.out.extend_from_slice(&(ty | 0x8000).to_be_bytes());
                            self.out.extend_from_slice(&v.to_be_bytes());
                        }
                        AttributeValue::Tlv(v) => {
                            self.out.extend_from_slice(&ty.to_be_bytes());
                            let len = self.u16_count(v.len(), "transform attribute");
                            self.out.extend_from_slice(&len.to_be_bytes());
                            self.out.extend_from_slice(v);
                        }
                    }
                }
                self.patch(tl, PayloadType::SA);
            }
            self.patch(l, PayloadType::SA);
        }
    }

    fn ts(&mut self, ts: &TsPayload) {
        let count = self.u8_count(ts.selectors.len(), "TS payload");
        self.out.extend_from_slice(&[count, 0, 0, 0]);
        for s in &ts.selectors {
            let start = self.out.len();
            match s {
                TrafficSelector::Ip(ip) => {
                    let ts_type = match ip.start_addr {
                        IpAddr::V4(_) => TsType::IPV4_ADDR_RANGE,
                        IpAddr::V6(_) => TsType::IPV6_ADDR_RANGE,
                    };
                    if ip.start_addr.is_ipv4() != ip.end_addr.is_ipv4() {
                        self.fail(EncodeError::Invalid {
                            within: "traffic selector",
                            reason: "start and end addresses of different families",
                        });
                    }
                    self.out.extend_from_slice(&[ts_type.0, ip.ip_protocol]);
                    let l = LengthPrefixed::begin(&mut self.out, start, LengthWidth::U16);
                    self.out.extend_from_slice(&ip.start_port.to_be_bytes());
                    self.out.extend_from_slice(&ip.end_port.to_be_bytes());
                    for a in [ip.start_addr, ip.end_addr] {
                        match a {
                            IpAddr::V4(v4) => self.out.extend_from_slice(&v4.octets()),
                            IpAddr::V6(v6) => self.out.extend_from_slice(&v6.octets()),
                        }
                    }
                    self.patch(l, PayloadType::TSI);
                }
                TrafficSelector::Unknown { ts_type, data } => {
                    self.out.extend_from_slice(&[ts_type.0, 0]);
                    let l = LengthPrefixed::begin(&mut self.out, start, LengthWidth::U16);
                    self.out.extend_from_slice(data);
                    self.patch(l, PayloadType::TSI);
                }
            }
        }
    }
}

impl Payload {
    /// The payload body (everything after the 4-octet generic header), as it would be
    /// encoded.
    pub fn encode_body(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.body(self);
        e.out
    }
}

/// Encodes a chain of payloads; returns the first payload's type (for the header's or
/// the SK payload's Next Payload field) and the octets. Lengths and chaining are
/// recomputed. Lenient: values that do not fit their fields are saturated; use
/// [`try_encode_chain`] to have them reported.
pub fn encode_chain(payloads: &[Payload]) -> (PayloadType, Vec<u8>) {
    let mut e = Encoder::default();
    let first = e.chain(payloads);
    (first, e.out)
}

/// Like [`encode_chain`], but fails if anything does not fit its field or an SK/SKF
/// payload appears (this is for the plaintext of an SK payload, where they may not).
pub fn try_encode_chain(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    if payloads
        .iter()
        .any(|p| matches!(p, Payload::Sk(_) | Payload::Skf(_)))
    {
        return Err(EncodeError::MisplacedEncryptedPayload);
    }
    let mut e = Encoder::default();
    let first = e.chain(payloads);
    Ok((first, e.finish()?))
}

impl Message {
    /// Encodes the message: the header's Next Payload and Length are recomputed.
    /// Lenient like [`encode_chain`]; see [`Message::try_encode`].
    pub fn encode(&self) -> Vec<u8> {
        self.encode_inner().out
    }

    /// Encodes the message, failing if a value does not fit its field, if an SK payload
    /// is not last, or if an SKF payload is not alone.
    pub fn try_encode(&self) -> Result<Vec<u8>, EncodeError> {
        let n = self.payloads.len();
        for (i, p) in self.payloads.iter().enumerate() {
            match p {
                Payload::Sk(_) if i + 1 != n => return Err(EncodeError::MisplacedEncryptedPayload),
                Payload::Skf(_) if n != 1 => return Err(EncodeError::MisplacedEncryptedPayload),
                _ => {}
            }
        }
        self.encode_inner().finish()
    }

    fn encode_inner(&self) -> Encoder {
        let mut e = Encoder::new(Vec::with_capacity(Header::LEN + 256));
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type);
        self.header.encode_with(first, 0, &mut e.out);
        e.chain(&self.payloads);
        let len = u32::try_from(e.out.len()).unwrap_or_else(|_| {
            e.fail(EncodeError::MessageTooLong);
            u32::MAX
        });
        if let Some(dst) = e.out.get_mut(24..28) {
            dst.copy_from_slice(&len.to_be_bytes());
        }
        e
    }
}
