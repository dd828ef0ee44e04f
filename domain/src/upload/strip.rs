//! Removing what an image says about where, when and with what it was taken, as its
//! bytes stream past: EXIF (location, camera, time), XMP, IPTC and comments in JPEG;
//! text, EXIF and time chunks in PNG. The picture itself is untouched.
//!
//! Invariants:
//! - **Streaming.** Input may arrive in pieces of any size; the output is the same as
//!   for the whole file at once. Only a segment's or chunk's header is ever held (at most
//!   a few bytes), never a payload or the file.
//! - **Structure or refusal.** A file whose structure is broken (a bad signature, a
//!   length that cannot be, an end in the middle of a segment) is refused, not passed on
//!   half-cleaned.
//! - **Nothing after the end.** Bytes after JPEG's end-of-image marker or PNG's `IEND`
//!   chunk (where data can hide) are dropped.
//! - **What a decoder needs stays**: in JPEG the JFIF header (APP0), the ICC colour
//!   profile (APP2), Adobe's colour transform (APP14) and every non-APP segment; in PNG
//!   every chunk but the ones listed.

use std::fmt;

/// The image formats this module cleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG (JFIF or EXIF).
    Jpeg,
    /// PNG.
    Png,
}

/// The image's structure is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedImage;

impl fmt::Display for MalformedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the image's structure is broken")
    }
}

impl std::error::Error for MalformedImage {}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// PNG chunks that carry text, EXIF or a time, not pixels.
const PNG_DROPPED: [&[u8; 4]; 5] = [b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"];

/// Whether a JPEG segment with `marker` is metadata to drop: APP1 (EXIF, XMP), APP3 to
/// APP13 (vendor data, IPTC), APP15, and comments.
const fn jpeg_drops(marker: u8) -> bool {
    matches!(marker, 0xE1 | 0xE3..=0xED | 0xEF | 0xFE)
}

/// Where the cleaner is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the file's signature.
    Signature,
    /// Reading a JPEG marker (`0xFF` then its code) or a PNG chunk header.
    Header,
    /// Inside a segment's or chunk's payload: this many bytes left, kept or dropped.
    Payload { left: u64, keep: bool },
    /// In JPEG's entropy-coded data, after the start of scan: everything passes up to
    /// the end-of-image marker.
    Scan { after_ff: bool },
    /// After the end: everything is dropped.
    Done,
}

/// Cleans one image as its bytes arrive.
#[derive(Debug, Clone)]
pub struct MetadataStripper {
    format: ImageFormat,
    state: State,
    /// The header bytes read so far (a signature, a marker and length, a chunk header).
    header: Vec<u8>,
    /// Where the payload being read leads: the next header, a JPEG scan, or the end.
    after_payload: State,
}

impl MetadataStripper {
    /// A cleaner for one image of `format`.
    #[must_use]
    pub fn new(format: ImageFormat) -> Self {
        Self { format, state: State::Signature, header: Vec::with_capacity(8), after_payload: State::Header }
    }

    /// Cleans the next piece of the file, appending what is kept to `out`.
    ///
    /// # Errors
    /// [`MalformedImage`] when the structure is broken; the cleaner should then be
    /// dropped with the upload.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), MalformedImage> {
        while !input.is_empty() {
            input = match self.state {
                State::Done => &[],
                State::Payload { left, keep } => {
                    let take = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
                    let (now, rest) = input.split_at(take);
                    if keep {
                        out.extend_from_slice(now);
                    }
                    let left = left - take as u64;
                    self.state = if left == 0 { self.after_payload } else { State::Payload { left, keep } };
                    rest
                }
                State::Scan { after_ff } => self.scan(input, after_ff, out),
                State::Signature | State::Header => {
                    let (&byte, rest) = input.split_first().ok_or(MalformedImage)?;
                    self.header.push(byte);
                    self.header_byte(out)?;
                    rest
                }
            };
        }
        Ok(())
    }

    /// Ends the file: it must have reached its end marker or chunk.
    ///
    /// # Errors
    /// [`MalformedImage`] when the file stopped before its end.
    pub fn finish(self) -> Result<(), MalformedImage> {
        if self.state == State::Done { Ok(()) } else { Err(MalformedImage) }
    }

    /// Reads a payload of `left` bytes (kept or not), then goes on to `next`.
    fn payload(&mut self, left: u64, keep: bool, next: State) {
        self.after_payload = next;
        self.state = if left == 0 { next } else { State::Payload { left, keep } };
    }

    /// Takes the header byte just read, once enough are there.
    fn header_byte(&mut self, out: &mut Vec<u8>) -> Result<(), MalformedImage> {
        match (self.format, self.state) {
            (ImageFormat::Jpeg, State::Signature) => {
                if self.header.len() == 2 {
                    if self.header != [0xFF, 0xD8] {
                        return Err(MalformedImage);
                    }
                    out.extend_from_slice(&self.header);
                    self.header.clear();
                    self.state = State::Header;
                }
                Ok(())
            }
            (ImageFormat::Png, State::Signature) => {
                if self.header.len() == PNG_SIGNATURE.len() {
                    if self.header != PNG_SIGNATURE {
                        return Err(MalformedImage);
                    }
                    out.extend_from_slice(&self.header);
                    self.header.clear();
                    self.state = State::Header;
                }
                Ok(())
            }
            (ImageFormat::Jpeg, _) => self.jpeg_header(out),
            (ImageFormat::Png, _) => self.png_header(out),
        }
    }

    /// A JPEG marker: `0xFF`, fill bytes (`0xFF`), its code, and for a segment its
    /// two-byte length (counting itself).
    fn jpeg_header(&mut self, out: &mut Vec<u8>) -> Result<(), MalformedImage> {
        match self.header.as_slice() {
            [first] if *first != 0xFF => Err(MalformedImage),
            [0xFF] | [0xFF, 0xFF] => {
                // A fill byte: one 0xFF is kept as the marker's start.
                self.header.truncate(1);
                Ok(())
            }
            [0xFF, marker] => {
                let marker = *marker;
                if matches!(marker, 0x01 | 0xD0..=0xD7) {
                    out.extend_from_slice(&self.header);
                    self.header.clear();
                } else if marker == 0xD9 {
                    out.extend_from_slice(&self.header);
                    self.header.clear();
                    self.state = State::Done;
                } else if marker == 0x00 || marker == 0xD8 {
                    return Err(MalformedImage);
                }
                Ok(())
            }
            [0xFF, marker, high, low] => {
                let marker = *marker;
                let length = u16::from_be_bytes([*high, *low]);
                if length < 2 {
                    return Err(MalformedImage);
                }
                let keep = !jpeg_drops(marker);
                if keep {
                    out.extend_from_slice(&self.header);
                }
                self.header.clear();
                // After the start-of-scan header comes the entropy-coded data.
                let next = if marker == 0xDA { State::Scan { after_ff: false } } else { State::Header };
                self.payload(u64::from(length - 2), keep, next);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// In entropy-coded data: everything passes. A `0xFF` is held until the next byte
    /// says what it is: with `0x00` or a restart marker it is data; before anything else
    /// (fill bytes included) it starts a marker (the end of the image,
    /// or a progressive JPEG's next table or scan), read as a header again.
    fn scan<'a>(&mut self, input: &'a [u8], mut after_ff: bool, out: &mut Vec<u8>) -> &'a [u8] {
        for (index, &byte) in input.iter().enumerate() {
            if after_ff {
                match byte {
                    0x00 | 0xD0..=0xD7 => {
                        out.extend_from_slice(&[0xFF, byte]);
                        after_ff = false;
                    }
                    // Another 0xFF is fill before a marker: the header reader drops it.
                    _ => {
                        self.header.clear();
                        self.header.push(0xFF);
                        self.state = State::Header;
                        return &input[index..];
                    }
                }
            } else if byte == 0xFF {
                after_ff = true;
            } else {
                out.push(byte);
            }
        }
        self.state = State::Scan { after_ff };
        &[]
    }

    /// A PNG chunk header: length (4 bytes, at most 2^31 − 1) and type (4 bytes).
    fn png_header(&mut self, out: &mut Vec<u8>) -> Result<(), MalformedImage> {
        if self.header.len() < 8 {
            return Ok(());
        }
        let length = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
        if length > 0x7FFF_FFFF {
            return Err(MalformedImage);
        }
        let kind = [self.header[4], self.header[5], self.header[6], self.header[7]];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(MalformedImage);
        }
        let keep = !PNG_DROPPED.contains(&&kind);
        if keep {
            out.extend_from_slice(&self.header);
        }
        self.header.clear();
        // The data and its CRC; nothing after the last chunk.
        let next = if &kind == b"IEND" { State::Done } else { State::Header };
        self.payload(u64::from(length) + 4, keep, next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A JPEG segment: marker and payload, with its length.
    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len() + 2).expect("short");
        let mut bytes = vec![0xFF, marker];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// A JPEG with every kind of segment, and the same JPEG as it must come out.
    fn jpeg() -> (Vec<u8>, Vec<u8>) {
        let jfif = segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let exif = segment(0xE1, b"Exif\0\0GPS 48.8584 N 2.2945 E Canon");
        let xmp_after_exif = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>");
        let icc = segment(0xE2, b"ICC_PROFILE\0\x01\x01profile");
        let iptc = segment(0xED, b"Photoshop 3.0\0by-line: someone");
        let adobe = segment(0xEE, b"Adobe\0d\0\0\0\0\x01");
        let comment = segment(0xFE, b"taken at home");
        // Fill bytes before a marker are dropped.
        let tables = [&[0xFF, 0xFF][..], &segment(0xDB, &[0u8; 65])].concat();
        let tables_kept = segment(0xDB, &[0u8; 65]);
        let frame = segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        let huffman = segment(0xC4, &[0u8; 20]);
        let scan_header = segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]);
        // Entropy-coded data with stuffed 0xFF 0x00, a restart marker and fill bytes.
        let scan = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        let second_tables = segment(0xC4, &[1u8; 10]);
        let late_comment = segment(0xFE, b"a comment between scans");
        let second_scan = [0x78, 0xFF, 0xFF, 0xFF];
        let end = [0xD9];
        let trailer = b"hidden after the end";

        let mut input = vec![0xFF, 0xD8];
        let mut kept = vec![0xFF, 0xD8];
        for (part, keep) in [
            (&jfif, true),
            (&exif, false),
            (&xmp_after_exif, false),
            (&icc, true),
            (&iptc, false),
            (&adobe, true),
            (&comment, false),
            (&frame, true),
            (&huffman, true),
            (&scan_header, true),
        ] {
            input.extend_from_slice(part);
            if keep {
                kept.extend_from_slice(part);
            }
            if part == &comment {
                input.extend_from_slice(&tables);
                kept.extend_from_slice(&tables_kept);
            }
        }
        input.extend_from_slice(&scan);
        kept.extend_from_slice(&scan);
        input.extend_from_slice(&second_tables);
        kept.extend_from_slice(&second_tables);
        input.extend_from_slice(&late_comment);
        input.extend_from_slice(&scan_header);
        kept.extend_from_slice(&scan_header);
        input.extend_from_slice(&second_scan);
        kept.push(0x78);
        input.extend_from_slice(&end);
        kept.extend_from_slice(&[0xFF, 0xD9]);
        input.extend_from_slice(trailer);
        (input, kept)
    }

    /// A PNG chunk with a (not checked) CRC.
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(data.len()).expect("short").to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]);
        bytes
    }

    fn png() -> (Vec<u8>, Vec<u8>) {
        let mut input = PNG_SIGNATURE.to_vec();
        let mut kept = PNG_SIGNATURE.to_vec();
        for (part, keep) in [
            (chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]), true),
            (chunk(b"tEXt", b"Location\0Paris"), false),
            (chunk(b"iCCP", b"icc\0\0profile"), true),
            (chunk(b"zTXt", b"Author\0\0compressed"), false),
            (chunk(b"eXIf", b"MM\0*GPS"), false),
            (chunk(b"IDAT", &[0x78, 0x9C, 1, 2, 3]), true),
            (chunk(b"tIME", &[7, 0xEA, 12, 7, 8, 0, 0]), false),
            (chunk(b"iTXt", b"Comment\0\0\0\0hello"), false),
            (chunk(b"IEND", b""), true),
        ] {
            input.extend_from_slice(&part);
            if keep {
                kept.extend_from_slice(&part);
            }
        }
        input.extend_from_slice(b"appended zip archive");
        (input, kept)
    }

    fn clean(format: ImageFormat, pieces: &[&[u8]]) -> Result<Vec<u8>, MalformedImage> {
        let mut stripper = MetadataStripper::new(format);
        let mut out = Vec::new();
        for piece in pieces {
            stripper.push(piece, &mut out)?;
        }
        stripper.finish()?;
        Ok(out)
    }

    #[test]
    fn a_jpeg_loses_its_metadata_and_keeps_its_picture() {
        let (input, kept) = jpeg();
        assert_eq!(clean(ImageFormat::Jpeg, &[&input]), Ok(kept));
    }

    #[test]
    fn a_png_loses_its_text_exif_and_time_and_keeps_its_picture() {
        let (input, kept) = png();
        assert_eq!(clean(ImageFormat::Png, &[&input]), Ok(kept));
    }

    #[test]
    fn broken_structure_is_refused() {
        let (jpeg, _) = jpeg();
        let (png, _) = png();
        let cases: [(ImageFormat, Vec<u8>); 8] = [
            (ImageFormat::Jpeg, b"GIF89a".to_vec()),
            (ImageFormat::Jpeg, vec![0xFF, 0xD8, 0x12]),
            (ImageFormat::Jpeg, vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]),
            (ImageFormat::Jpeg, vec![0xFF, 0xD8, 0xFF, 0x00]),
            (ImageFormat::Jpeg, jpeg[..jpeg.len() / 2].to_vec()),
            (ImageFormat::Png, b"\x89PNG\r\n\x1a\r".to_vec()),
            (ImageFormat::Png, [PNG_SIGNATURE.as_slice(), &[0x80, 0, 0, 0], b"IDAT"].concat()),
            (ImageFormat::Png, png[..png.len() - 40].to_vec()),
        ];
        for (format, bytes) in cases {
            assert_eq!(clean(format, &[&bytes]), Err(MalformedImage), "{format:?} {bytes:x?}");
        }
        assert_eq!(
            clean(ImageFormat::Png, &[&[PNG_SIGNATURE.as_slice(), &[0, 0, 0, 0], b"ID1T"].concat()]),
            Err(MalformedImage),
            "a chunk type is letters"
        );
        assert_eq!(MalformedImage.to_string(), "the image's structure is broken");
    }

    /// Whether `bytes` are refused as soon as they are pushed (the upload is cut off
    /// there, not read to its end).
    fn refused_at_once(format: ImageFormat, bytes: &[u8]) -> bool {
        MetadataStripper::new(format).push(bytes, &mut Vec::new()) == Err(MalformedImage)
    }

    #[test]
    fn broken_structure_is_refused_at_the_first_wrong_byte() {
        let signature = PNG_SIGNATURE.as_slice();
        for (format, bytes) in [
            (ImageFormat::Jpeg, &[0xFF, 0xD8, 0x12][..]),
            (ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0x00]),
            (ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xD8]),
            (ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x01]),
            (ImageFormat::Jpeg, &[0xFF, 0xD9]),
        ] {
            assert!(refused_at_once(format, bytes), "{bytes:x?}");
        }
        let too_long = [signature, &[0x80, 0, 0, 0], b"IDAT"].concat();
        assert!(refused_at_once(ImageFormat::Png, &too_long), "a length over 2^31 - 1");
        let longest = [signature, &[0x7F, 0xFF, 0xFF, 0xFF], b"IDAT"].concat();
        assert!(!refused_at_once(ImageFormat::Png, &longest), "2^31 - 1 is a length");
        assert!(
            !refused_at_once(ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xFF, 0xFF, 0xDB, 0x00]),
            "fill bytes"
        );
    }

    #[test]
    fn zero_length_segments_and_chunks_pass() {
        let input = [vec![0xFF, 0xD8], segment(0xE0, b""), segment(0xFE, b""), vec![0xFF, 0xD9]].concat();
        let kept = [vec![0xFF, 0xD8], segment(0xE0, b""), vec![0xFF, 0xD9]].concat();
        assert_eq!(clean(ImageFormat::Jpeg, &[&input]), Ok(kept));
    }

    proptest! {
        /// However the bytes are cut into pieces, the output is the same.
        #[test]
        fn pieces_of_any_size_clean_alike(cuts in proptest::collection::vec(0usize..400, 0..12), png_file: bool) {
            let (format, (input, kept)) =
                if png_file { (ImageFormat::Png, png()) } else { (ImageFormat::Jpeg, jpeg()) };
            let mut points: Vec<usize> = cuts.into_iter().map(|cut| cut % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for point in points {
                pieces.push(&input[start..point]);
                start = point;
            }
            pieces.push(&input[start..]);
            prop_assert_eq!(clean(format, &pieces), Ok(kept));
        }
    }
}
