//! A server-sent events decoder, fed bytes as they arrive.
//!
//! It follows the WHATWG event-stream rules that real providers rely on: lines end in
//! `\r\n`, `\n` or `\r` (a `\r\n` split across two reads is one line end), a leading
//! BOM is skipped, lines starting with `:` are comments, `data:` lines of one event are
//! joined with `\n`, one space after the colon is dropped, and a blank line dispatches
//! the event. Unknown fields are ignored. An event still pending at the end of the
//! stream is dispatched too (some servers omit the final blank line).
//!
//! Memory is bounded: a line or event larger than the limit is an error, not a buffer
//! that grows with whatever the peer sends.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The joined `data:` lines.
    pub data: String,
}

/// The stream broke the event-stream format or the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseError(pub &'static str);

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SseError {}

/// The incremental decoder.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    skip_newline: bool,
    at_start: bool,
    max_event_bytes: usize,
}

impl SseDecoder {
    /// A decoder refusing lines or events over `max_event_bytes`.
    #[must_use]
    pub const fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            skip_newline: false,
            at_start: true,
            max_event_bytes,
        }
    }

    /// Feeds bytes; appends every event they complete to `out`.
    ///
    /// # Errors
    /// When a line or an event exceeds the limit, or a line is not UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.at_start && !bytes.is_empty() {
            self.at_start = false;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        // Line by line, not byte by byte: a line that arrives whole is read in place, and
        // only one split across reads is gathered, in a buffer kept between lines.
        while let Some(&first) = bytes.first() {
            if std::mem::take(&mut self.skip_newline) && first == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            // Searched a word at a time: a provider's lines are a few hundred bytes each.
            let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) else {
                self.gather(bytes)?;
                break;
            };
            self.skip_newline = bytes[end] == b'\r';
            if self.line.is_empty() {
                self.check_line(end)?;
                self.line_end(&bytes[..end], out)?;
            } else {
                self.gather(&bytes[..end])?;
                let mut line = std::mem::take(&mut self.line);
                let ended = self.line_end(&line, out);
                line.clear();
                self.line = line;
                ended?;
            }
            bytes = &bytes[end + 1..];
        }
        Ok(())
    }

    /// Adds the part of a line that arrived to the pending one.
    fn gather(&mut self, part: &[u8]) -> Result<(), SseError> {
        self.check_line(self.line.len().saturating_add(part.len()))?;
        self.line.extend_from_slice(part);
        Ok(())
    }

    const fn check_line(&self, length: usize) -> Result<(), SseError> {
        if length > self.max_event_bytes {
            return Err(SseError("event-stream line too long"));
        }
        Ok(())
    }

    /// The end of the stream: dispatches a pending event, if any.
    ///
    /// # Errors
    /// When the last line is not UTF-8.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_end(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn line_end(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError("event-stream line is not UTF-8"))?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event_bytes {
                    return Err(SseError("event-stream event too large"));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if std::mem::take(&mut self.has_data) {
            out.push(SseEvent { event, data: std::mem::take(&mut self.data) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new(1024);
        let mut events = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            decoder.feed(chunk, &mut events).expect("valid");
        }
        decoder.finish(&mut events).expect("valid");
        events
    }

    #[test]
    fn every_line_ending_comment_and_split_point_gives_the_same_events() {
        let stream = "\u{feff}: keep-alive\r\nevent: delta\r\ndata: {\"a\":1}\r\n\r\ndata:x\rdata: y\r\r\n: c\n\ndata: last\n";
        let expected = vec![
            SseEvent { event: Some("delta".into()), data: "{\"a\":1}".into() },
            SseEvent { event: None, data: "x\ny".into() },
            SseEvent { event: None, data: "last".into() },
        ];
        for piece in 1..stream.len() {
            assert_eq!(decode_in_pieces(stream.as_bytes(), piece), expected, "pieces of {piece} bytes");
        }
    }

    #[test]
    fn events_without_data_are_not_dispatched_and_unknown_fields_are_ignored() {
        let events = decode_in_pieces(b"event: ping\n\nid: 7\nretry: 10\nfoo: bar\ndata\n\n", 3);
        assert_eq!(events, vec![SseEvent { event: None, data: String::new() }]);
    }

    #[test]
    fn oversized_lines_and_events_are_refused() {
        let mut decoder = SseDecoder::new(16);
        let mut events = Vec::new();
        assert!(decoder.feed(&[b'a'; 32], &mut events).is_err());
        let mut decoder = SseDecoder::new(16);
        assert!(decoder.feed(b"data: 0123456789\ndata: 0123456789\n", &mut events).is_err());
    }

    #[test]
    fn a_line_may_fill_the_limit_exactly_whole_or_in_pieces() {
        // "data: " and ten bytes: 16.
        for line in [&b"data: 0123456789"[..], b"data: 01234567890"] {
            let fits = line.len() <= 16;
            for piece in 1..=line.len() + 1 {
                let mut input = line.to_vec();
                input.extend_from_slice(b"\n\n");
                let mut decoder = SseDecoder::new(16);
                let mut events = Vec::new();
                let fed = input.chunks(piece).try_for_each(|chunk| decoder.feed(chunk, &mut events));
                assert_eq!(fed.is_ok(), fits, "{} bytes in pieces of {piece}", line.len());
                if fits {
                    assert_eq!(events, vec![SseEvent { event: None, data: "0123456789".into() }]);
                }
            }
        }
    }
}
