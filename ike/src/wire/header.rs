//! A checked view of the fixed IKE header (RFC 7296 §3.1), in smoltcp's `Packet<T>` style:
//! once [`HeaderView::new_checked`] succeeds, no accessor can panic, and the endpoint can
//! route on the SPI pair without decoding (or allocating for) any payload.

#![deny(clippy::indexing_slicing)]

use super::error::DecodeError;
use super::payload::{Flags, Header, IkeSpi};
use super::registry::{ExchangeType, PayloadType};

/// Byte ranges of the header fields.
mod field {
    use core::ops::Range;
    pub(super) const SPI_I: Range<usize> = 0..8;
    pub(super) const SPI_R: Range<usize> = 8..16;
    pub(super) const NEXT_PAYLOAD: usize = 16;
    pub(super) const VERSION: usize = 17;
    pub(super) const EXCHANGE: usize = 18;
    pub(super) const FLAGS: usize = 19;
    pub(super) const MESSAGE_ID: Range<usize> = 20..24;
    pub(super) const LENGTH: Range<usize> = 24..28;
}

/// A view of a datagram as an IKE message header.
///
/// Validation in [`new_checked`](Self::new_checked): at least 28 octets, major version 2
/// (any minor version, RFC 7296 §2.5), and Length equal to the datagram length (exact: see
/// [`DecodeError::LengthMismatch`]). Reserved flag bits are not checked (they "MUST be
/// ignored on receipt", §3.1).
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wraps `buffer` without checking it. Accessors return zero for fields the buffer is
    /// too short to hold; only use this on buffers you built.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`check`](Self::check).
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let v = Self::new_unchecked(buffer);
        v.check()?;
        Ok(v)
    }

    /// Checks length, major version and the Length field.
    pub fn check(&self) -> Result<(), DecodeError> {
        let len = self.buffer.as_ref().len();
        if len < Header::LEN {
            return Err(DecodeError::TruncatedHeader { len });
        }
        let version = self.version();
        if version >> 4 != 2 {
            return Err(DecodeError::UnsupportedMajorVersion { version });
        }
        let header = self.length();
        if usize::try_from(header).ok() != Some(len) {
            return Err(DecodeError::LengthMismatch {
                header,
                datagram: len,
            });
        }
        Ok(())
    }

    fn bytes<const N: usize>(&self, r: core::ops::Range<usize>) -> [u8; N] {
        self.buffer
            .as_ref()
            .get(r)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .unwrap_or([0; N])
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    /// IKE SA Initiator's SPI.
    pub fn spi_i(&self) -> IkeSpi {
        IkeSpi::from_bytes(self.bytes(field::SPI_I))
    }

    /// IKE SA Responder's SPI.
    pub fn spi_r(&self) -> IkeSpi {
        IkeSpi::from_bytes(self.bytes(field::SPI_R))
    }

    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.byte(field::NEXT_PAYLOAD))
    }

    /// The version octet (major in the high nibble).
    pub fn version(&self) -> u8 {
        self.byte(field::VERSION)
    }

    /// Exchange type.
    pub fn exchange(&self) -> ExchangeType {
        ExchangeType(self.byte(field::EXCHANGE))
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.byte(field::FLAGS))
    }

    /// Message ID.
    pub fn message_id(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::MESSAGE_ID))
    }

    /// Length field.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::LENGTH))
    }

    /// The decoded header.
    pub fn header(&self) -> Header {
        Header {
            spi_i: self.spi_i(),
            spi_r: self.spi_r(),
            next_payload: self.next_payload(),
            version: self.version(),
            exchange: self.exchange(),
            flags: self.flags(),
            message_id: self.message_id(),
            length: self.length(),
        }
    }

    /// The octets after the fixed header (the payload chain).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(Header::LEN..).unwrap_or_default()
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl Header {
    /// Appends the 28 header octets, with `next_payload` and `length` as given (the
    /// encoders patch `length` once the message is complete).
    pub fn encode_with(&self, next_payload: PayloadType, length: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_bytes());
        out.extend_from_slice(&self.spi_r.to_bytes());
        out.extend_from_slice(&[next_payload.0, self.version, self.exchange.0, self.flags.0]);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
    }

    /// Decodes and checks the header of a whole datagram (see [`HeaderView::check`]).
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        Ok(HeaderView::new_checked(datagram)?.header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let h = Header {
            spi_i: IkeSpi(0x0102030405060708),
            spi_r: IkeSpi::ZERO,
            next_payload: PayloadType::SA,
            version: Header::VERSION_2_0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::INITIATOR),
            message_id: 7,
            length: 28,
        };
        let mut out = Vec::new();
        h.encode_with(h.next_payload, 28, &mut out);
        out
    }

    #[test]
    fn checked_view_reads_fields() {
        let b = sample();
        let v = HeaderView::new_checked(&b[..]).unwrap();
        assert_eq!(v.spi_i(), IkeSpi(0x0102030405060708));
        assert_eq!(v.spi_r(), IkeSpi::ZERO);
        assert_eq!(v.next_payload(), PayloadType::SA);
        assert_eq!(v.exchange(), ExchangeType::IKE_SA_INIT);
        assert!(v.flags().initiator());
        assert_eq!(v.message_id(), 7);
        assert_eq!(v.length(), 28);
        assert!(v.payload().is_empty());
    }

    #[test]
    fn checked_view_rejects_bad_headers() {
        let b = sample();
        assert_eq!(
            HeaderView::new_checked(&b[..27]).unwrap_err(),
            DecodeError::TruncatedHeader { len: 27 }
        );
        let mut v1 = b.clone();
        v1[17] = 0x10;
        assert_eq!(
            HeaderView::new_checked(&v1[..]).unwrap_err(),
            DecodeError::UnsupportedMajorVersion { version: 0x10 }
        );
        // Minor versions are accepted.
        let mut minor = b.clone();
        minor[17] = 0x21;
        assert!(HeaderView::new_checked(&minor[..]).is_ok());
        let mut trailing = b.clone();
        trailing.push(0);
        assert_eq!(
            HeaderView::new_checked(&trailing[..]).unwrap_err(),
            DecodeError::LengthMismatch {
                header: 28,
                datagram: 29
            }
        );
    }

    #[test]
    fn unchecked_view_of_short_buffer_does_not_panic() {
        let v = HeaderView::new_unchecked(&[1u8, 2, 3][..]);
        assert_eq!(v.length(), 0);
        assert_eq!(v.spi_r(), IkeSpi::ZERO);
        assert!(v.payload().is_empty());
    }
}
