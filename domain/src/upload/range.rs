//! Which bytes of a file a download asks for (`Range: bytes=…`, one range), read against
//! the file's size.
//!
//! Invariants: a resolved range is never empty and never reaches past the file's end;
//! arithmetic on the client's numbers never overflows (they are parsed as `u64` and
//! compared, never added).

use std::ops::Range;

/// One byte range as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, both inclusive.
    FromTo(u64, u64),
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-count`: the last `count` bytes.
    Last(u64),
}

/// A range that asks for no byte of the file (HTTP 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

impl ByteRange {
    /// Reads the value of a `Range` header. `None` for anything but one `bytes` range
    /// (several ranges, another unit, a malformed one): such a header is ignored and
    /// the whole file is sent, as HTTP allows.
    #[must_use]
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |text: &str| -> Option<u64> {
            let text = text.trim();
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => number(last).map(Self::Last),
            (false, true) => number(first).map(Self::From),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(Self::FromTo(first, last))
            }
            (true, true) => None,
        }
    }

    /// The bytes of a file of `size` bytes this range asks for, as a half-open range.
    ///
    /// # Errors
    /// [`Unsatisfiable`] when it asks for none (it starts at or past the end, or asks
    /// for the last 0 bytes, or the file is empty).
    pub fn resolve(self, size: u64) -> Result<Range<u64>, Unsatisfiable> {
        let range = match self {
            Self::FromTo(first, last) => first..last.saturating_add(1).min(size),
            Self::From(first) => first..size,
            Self::Last(count) => size.saturating_sub(count)..size,
        };
        if range.start < range.end { Ok(range) } else { Err(Unsatisfiable) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_bytes_range_is_read_and_anything_else_is_ignored() {
        assert_eq!(ByteRange::parse_header("bytes=0-99"), Some(ByteRange::FromTo(0, 99)));
        assert_eq!(ByteRange::parse_header(" bytes=5- "), Some(ByteRange::From(5)));
        assert_eq!(ByteRange::parse_header("bytes=-20"), Some(ByteRange::Last(20)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=9-3",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=99999999999999999999-",
            "0-1",
        ] {
            assert_eq!(ByteRange::parse_header(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn ranges_are_cut_at_the_end_of_the_file() {
        assert_eq!(ByteRange::FromTo(0, 0).resolve(10), Ok(0..1));
        assert_eq!(ByteRange::FromTo(2, 4).resolve(10), Ok(2..5));
        assert_eq!(ByteRange::FromTo(8, 100).resolve(10), Ok(8..10));
        assert_eq!(ByteRange::FromTo(9, u64::MAX).resolve(10), Ok(9..10));
        assert_eq!(ByteRange::From(9).resolve(10), Ok(9..10));
        assert_eq!(ByteRange::Last(3).resolve(10), Ok(7..10));
        assert_eq!(ByteRange::Last(30).resolve(10), Ok(0..10), "more than the file: all of it");
    }

    #[test]
    fn a_range_that_asks_for_no_byte_is_unsatisfiable() {
        assert_eq!(ByteRange::FromTo(10, 12).resolve(10), Err(Unsatisfiable));
        assert_eq!(ByteRange::From(10).resolve(10), Err(Unsatisfiable));
        assert_eq!(ByteRange::Last(0).resolve(10), Err(Unsatisfiable));
        assert_eq!(ByteRange::From(0).resolve(0), Err(Unsatisfiable));
    }

    proptest! {
        #[test]
        fn a_resolved_range_is_inside_the_file_and_not_empty(
            first in 0u64..200, last in 0u64..200, count in 0u64..200, size in 0u64..150,
        ) {
            for range in [ByteRange::FromTo(first, first.max(last)), ByteRange::From(first), ByteRange::Last(count)] {
                if let Ok(bytes) = range.resolve(size) {
                    prop_assert!(bytes.start < bytes.end && bytes.end <= size, "{range:?} {size} {bytes:?}");
                }
            }
        }
    }
}
