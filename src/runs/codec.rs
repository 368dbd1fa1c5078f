//! Little-endian integers, LEB128 varints and a bounds-checked reader.
//!
//! Decoders return `Err(String)` naming what failed; callers turn it into
//! `Error::Corrupt` with the file and offset of the block or section.

/// What a decoder reports: the check that failed.
pub(super) type DecodeResult<T> = std::result::Result<T, String>;

/// Appends `n` as an unsigned LEB128 varint (1 to 10 bytes).
pub(super) fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Appends `n` as a varint (a `usize` always fits a `u64` here).
pub(super) fn put_varint_usize(buf: &mut Vec<u8>, n: usize) {
    put_varint(buf, n as u64);
}

/// Appends `bytes` preceded by their varint length.
pub(super) fn put_varint_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint_usize(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// Reads checked values from a byte slice; no read goes past its end and no
/// length is trusted before it is compared with a limit and with the bytes
/// that remain.
#[derive(Clone)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to byte `pos` (which the caller has checked is in bounds).
    pub(super) fn set_pos(&mut self, pos: usize) {
        assert!(
            pos <= self.bytes.len(),
            "positions come from checked restart points"
        );
        self.pos = pos;
    }

    /// Whether every byte was consumed.
    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize, what: &str) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("{what} at byte {} runs past the end", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    pub(super) fn u8(&mut self, what: &str) -> DecodeResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub(super) fn u32(&mut self, what: &str) -> DecodeResult<u32> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(a))
    }

    pub(super) fn u64(&mut self, what: &str) -> DecodeResult<u64> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A canonical LEB128 varint: at most 10 bytes, no overflow, no
    /// redundant trailing zero groups (so every value has one encoding).
    #[inline]
    pub(super) fn varint(&mut self, what: &str) -> DecodeResult<u64> {
        // Most varints of a block (lengths, deltas) are one byte.
        if let Some(&b) = self.bytes.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long(what)
    }

    fn varint_long(&mut self, what: &str) -> DecodeResult<u64> {
        // Straight over the remaining bytes: one bounds check per varint.
        let rest = &self.bytes[self.pos..];
        let mut n: u64 = 0;
        for (i, &b) in rest.iter().take(10).enumerate() {
            if i == 9 && b > 1 {
                return Err(format!("{what} varint overflows 64 bits"));
            }
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(format!("{what} varint is not minimal"));
                }
                self.pos += i + 1;
                return Ok(n);
            }
        }
        if rest.len() < 10 {
            Err(format!("{what} at byte {} runs past the end", self.pos))
        } else {
            Err(format!("{what} varint is longer than 10 bytes"))
        }
    }

    /// A varint that must be at most `max`.
    #[inline]
    pub(super) fn varint_max(&mut self, max: u64, what: &str) -> DecodeResult<u64> {
        let n = self.varint(what)?;
        if n > max {
            return Err(format!("{what} {n} exceeds the limit {max}"));
        }
        Ok(n)
    }

    /// A varint length at most `max`, then that many bytes.
    #[inline]
    pub(super) fn varint_bytes(&mut self, max: usize, what: &str) -> DecodeResult<&'a [u8]> {
        let len = self.varint_max(max as u64, what)? as usize;
        self.take(len, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_varint(n: u64, encoded: &[u8]) {
        let mut buf = Vec::new();
        put_varint(&mut buf, n);
        assert_eq!(buf, encoded, "encoding of {n}");
        let mut r = Reader::new(&buf);
        assert_eq!(r.varint("n"), Ok(n));
        assert!(r.is_empty());
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        check_varint(0, &[0]);
        check_varint(1, &[1]);
        check_varint(127, &[0x7f]);
        check_varint(128, &[0x80, 1]);
        check_varint(300, &[0xac, 0x02]);
        check_varint(
            u64::MAX,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
        );
    }

    #[test]
    fn malformed_varints_are_errors() {
        for bad in [
            &[0x80][..],
            &[0x80, 0],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2],
            &[0xff; 11],
        ] {
            assert!(Reader::new(bad).varint("n").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lengths_are_checked_against_the_limit_and_the_bytes_left() {
        let mut buf = Vec::new();
        put_varint_bytes(&mut buf, b"abc");
        assert_eq!(Reader::new(&buf).varint_bytes(3, "k"), Ok(&b"abc"[..]));
        assert!(Reader::new(&buf).varint_bytes(2, "k").is_err());
        assert!(Reader::new(&buf[..3]).varint_bytes(3, "k").is_err());
    }
}
