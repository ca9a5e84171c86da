//! The byte-level codec: a bounded, borrowing [`Reader`] for decoding and a
//! length-patching [`LengthPrefixed`] writer for encoding (the rustls `Codec`/`Reader`
//! pattern).
//!
//! Every structure of an IKE message that carries its own length (message, generic
//! payload, proposal, transform, TLV attribute, traffic selector, CP attribute) is decoded
//! through a sub-reader of exactly that length, so a lying length can never make one
//! structure read another's octets, and every overrun is an error instead of a panic.

#![deny(clippy::indexing_slicing)]

use super::error::DecodeError;

/// A borrowing cursor over untrusted octets. Every read is bounds-checked and fails with
/// [`DecodeError::Truncated`] naming the structure being read.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
    within: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, reporting overruns as being `within` the named structure.
    pub fn new(buf: &'a [u8], within: &'static str) -> Self {
        Self {
            buf,
            offset: 0,
            within,
        }
    }

    /// The name of the structure this reader reads (for error messages).
    pub fn within(&self) -> &'static str {
        self.within
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            within: self.within,
        }
    }

    /// Takes the next `n` octets.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.offset.checked_add(n).ok_or_else(|| self.truncated())?;
        let out = self
            .buf
            .get(self.offset..end)
            .ok_or_else(|| self.truncated())?;
        self.offset = end;
        Ok(out)
    }

    /// Takes the next `N` octets as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| self.truncated())
    }

    /// Reads one octet.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array::<1>()?))
    }

    /// Reads a network-order u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }

    /// Reads a network-order u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    /// Reads a network-order u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    /// Skips `n` octets (reserved fields, which RFC 7296 says to ignore on receipt).
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    /// A sub-reader over the next `len` octets, named `within`; this reader moves past them.
    pub fn sub(&mut self, len: usize, within: &'static str) -> Result<Self, DecodeError> {
        let buf = self.take(len)?;
        Ok(Self::new(buf, within))
    }

    /// All remaining octets; the reader is then empty.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.offset..).unwrap_or_default();
        self.offset = self.buf.len();
        out
    }

    /// The remaining octets without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.offset..).unwrap_or_default()
    }

    /// Number of octets left.
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.offset)
    }

    /// Whether every octet has been read.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// Octets read so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Fails with [`DecodeError::TrailingData`] unless every octet has been read.
    pub fn expect_empty(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingData {
                within: self.within,
                extra: self.left(),
            })
        }
    }
}

/// Width of a length field patched by [`LengthPrefixed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthWidth {
    /// Two octets (payloads, proposals, transforms, selectors, attributes).
    U16,
    /// Four octets (the IKE header's message length).
    U32,
}

/// Records where a length field was written so it can be patched once the structure is
/// complete: encoders write a placeholder, append the body, then call
/// [`LengthPrefixed::finish`]. The length counts from `start` (the beginning of the
/// structure, which for IKE includes its own header) to the end of the buffer.
#[derive(Clone, Copy, Debug)]
#[must_use = "call finish() to patch the length"]
pub struct LengthPrefixed {
    start: usize,
    field: usize,
    width: LengthWidth,
}

impl LengthPrefixed {
    /// Marks `start` as the structure's first octet and appends a zero placeholder of
    /// `width` for the length field at the current end of `out`.
    pub fn begin(out: &mut Vec<u8>, start: usize, width: LengthWidth) -> Self {
        let field = out.len();
        match width {
            LengthWidth::U16 => out.extend_from_slice(&[0; 2]),
            LengthWidth::U32 => out.extend_from_slice(&[0; 4]),
        }
        Self {
            start,
            field,
            width,
        }
    }

    /// Patches the length field with `out.len() - start`. Returns `false` (and writes the
    /// saturated maximum) if the length does not fit the field.
    pub fn finish(self, out: &mut [u8]) -> bool {
        let len = out.len().saturating_sub(self.start);
        match self.width {
            LengthWidth::U16 => {
                let v = u16::try_from(len);
                let fits = v.is_ok();
                let v = v.unwrap_or(u16::MAX);
                if let Some(dst) = out.get_mut(self.field..self.field + 2) {
                    dst.copy_from_slice(&v.to_be_bytes());
                }
                fits
            }
            LengthWidth::U32 => {
                let v = u32::try_from(len);
                let fits = v.is_ok();
                let v = v.unwrap_or(u32::MAX);
                if let Some(dst) = out.get_mut(self.field..self.field + 4) {
                    dst.copy_from_slice(&v.to_be_bytes());
                }
                fits
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_fails_on_overrun_and_names_the_structure() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(
            r.u16().unwrap_err(),
            DecodeError::Truncated { within: "test" }
        );
        // A failed read consumes nothing.
        assert_eq!(r.u8().unwrap(), 3);
        assert!(r.is_empty());
        assert!(r.take(usize::MAX).is_err());
    }

    #[test]
    fn sub_reader_is_bounded() {
        let mut r = Reader::new(&[0, 0, 0, 9, 9], "outer");
        let mut s = r.sub(3, "inner").unwrap();
        assert_eq!(r.left(), 2);
        assert_eq!(s.take(3).unwrap(), &[0, 0, 0]);
        assert_eq!(
            s.u8().unwrap_err(),
            DecodeError::Truncated { within: "inner" }
        );
        assert!(r.sub(3, "x").is_err());
        assert_eq!(r.rest(), &[9, 9]);
        assert!(r.expect_empty().is_ok());
    }

    #[test]
    fn length_prefixed_patches_in_one_pass() {
        let mut out = vec![0xaa];
        let l = LengthPrefixed::begin(&mut out, 0, LengthWidth::U16);
        out.extend_from_slice(&[1, 2, 3]);
        assert!(l.finish(&mut out));
        assert_eq!(out, [0xaa, 0, 6, 1, 2, 3]);

        let mut big = Vec::new();
        let l = LengthPrefixed::begin(&mut big, 0, LengthWidth::U16);
        big.resize(70_000, 0);
        assert!(!l.finish(&mut big));
        assert_eq!(&big[..2], &[0xff, 0xff]);
    }
}
