//! The frame sent for every streamed token, an answer's chunk, written straight into its
//! buffer: the general encoder (`outbound.rs`) builds a map for the metadata, a string
//! for the timestamp and walks a struct of mostly absent fields, which is most of the
//! cost of a frame this small. The text is byte for byte what the general encoder
//! writes (the tests compare the two), strings escaped by serde_json's rules.

use chatbox_domain::Timestamp;
use chrono::{Datelike, Timelike};

/// `{"type":T,"session_id":S,"content":C,"model_id":M,"timestamp":TS,"sender":"ai",
/// "metadata":{"done":"false","streaming":"true"},"message_id":ID}` (without the line
/// break), or `None` for a timestamp this writer does not handle (then the general
/// encoder writes the frame).
pub(super) fn encode(
    kind: &str,
    session_id: &str,
    content: &str,
    model_id: &str,
    timestamp: Timestamp,
    message_id: &str,
) -> Option<String> {
    /// Field names, punctuation, the fixed values and the timestamp.
    const FIXED: usize = 170;
    let length =
        [kind, session_id, content, model_id, message_id].iter().map(|text| text.len()).sum::<usize>();
    let mut out = String::with_capacity(length.saturating_add(FIXED));
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"session_id\":");
    string(&mut out, session_id);
    out.push_str(",\"content\":");
    string(&mut out, content);
    out.push_str(",\"model_id\":");
    string(&mut out, model_id);
    out.push_str(",\"timestamp\":\"");
    rfc3339_millis(&mut out, timestamp)?;
    out.push_str(
        "\",\"sender\":\"ai\",\"metadata\":{\"done\":\"false\",\"streaming\":\"true\"},\"message_id\":",
    );
    string(&mut out, message_id);
    out.push('}');
    Some(out)
}

/// A JSON string, quoted and escaped as serde_json escapes it: `"` and `\\`, the
/// control characters (by their short escape where JSON has one, else `\u00xx`), and
/// nothing else. Runs without escapes are found a word at a time and copied whole.
fn string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = text.as_bytes();
    let mut copied: usize = 0;
    loop {
        let at = copied.saturating_add(plain_prefix(&bytes[copied..]));
        // `at` is the end or an ASCII byte, so a character boundary.
        out.push_str(&text[copied..at]);
        let Some(&byte) = bytes.get(at) else { break };
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        copied = at.saturating_add(1);
    }
    out.push('"');
}

/// How many bytes from the start need no escape: eight at a time while a word holds
/// none (no byte under 0x20, no `"`, no `\\`), then byte by byte.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // True when a byte of `word` is under `limit` (at most 0x80).
    let has_under = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS != 0;
    let has_byte = |word: u64, byte: u8| has_under(word ^ (ONES * u64::from(byte)), 1);
    let mut plain = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk).map(u64::from_le_bytes) else { break };
        if has_under(word, 0x20) || has_byte(word, b'"') || has_byte(word, b'\\') {
            break;
        }
        plain += 8;
    }
    let rest = &bytes[plain..];
    plain + rest.iter().position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\').unwrap_or(rest.len())
}

/// `2027-01-15T08:00:00.123Z`, as chrono writes it with millisecond precision; `None`
/// outside years 0 to 9999 and for a leap second, which chrono writes differently.
fn rfc3339_millis(out: &mut String, at: Timestamp) -> Option<()> {
    // Read as the naive date and time it holds: each field of a `DateTime` would add its
    // offset (zero) to it first, overflow checks and all.
    let at = at.naive_utc();
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let millis = nanos / 1_000_000;
    for (value, separator) in [
        (year / 100, None),
        (year % 100, Some('-')),
        (at.month(), Some('-')),
        (at.day(), Some('T')),
        (at.hour(), Some(':')),
        (at.minute(), Some(':')),
        (at.second(), Some('.')),
    ] {
        two_digits(out, value);
        out.extend(separator);
    }
    out.push(digit(millis / 100));
    two_digits(out, millis % 100);
    out.push('Z');
    Some(())
}

/// `value` (under 100) in two decimal digits.
fn two_digits(out: &mut String, value: u32) {
    out.push(digit(value / 10));
    out.push(digit(value));
}

/// The last decimal digit of `value`.
fn digit(value: u32) -> char {
    char::from_digit(value % 10, 10).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chatbox_application::events::{AnswerStyle, Frame, ServerEvent};
    use chatbox_domain::{MessageId, ModelId, SessionId};

    use super::super::outbound::{encode as encode_frame, encode_fields};

    fn chunk(delta: &str, style: AnswerStyle, at: chatbox_domain::Timestamp) -> Arc<Frame> {
        Frame::new(
            ServerEvent::AnswerChunk {
                session_id: SessionId::parse("0f8c5e2a4b7d4c1e9a3b6d8f0e2c4a6b").expect("id"),
                message_id: MessageId::parse("2b4d6f8a-0c1e-4a3b-8d5f-7e9a1c3b5d7f").expect("id"),
                model_id: ModelId::parse("gpt-4o-mini").expect("id"),
                delta: Arc::from(delta),
                style,
            },
            at,
        )
    }

    fn at(seconds: i64, nanos: u32) -> chatbox_domain::Timestamp {
        chrono::DateTime::from_timestamp(seconds, nanos).expect("time")
    }

    #[test]
    fn a_chunk_is_written_byte_for_byte_as_the_general_encoder_writes_it() {
        let deltas = [
            "",
            "Hello",
            " world, déjà vu 🦀",
            "quote \" backslash \\ slash /",
            "line\nbreak\ttab\r\u{8}\u{c}",
            "\u{0}\u{1}\u{1f}\u{7f}\u{2028}\u{2029}",
            "</script><!--",
        ];
        let times = [
            at(0, 0),
            at(1_800_000_000, 0),
            at(1_800_000_000, 123_456_789),
            at(1_800_000_000, 999_999_999),
            at(253_402_300_799, 1_000_000), // 9999-12-31T23:59:59.001
            at(-62_135_596_800, 0),         // year 1
            at(-62_167_219_200, 0),         // year 0
        ];
        for delta in deltas {
            for time in times {
                for style in [AnswerStyle::AiResponse, AnswerStyle::Assistant] {
                    let frame = chunk(delta, style, time);
                    let fast = encode_frame(&frame);
                    assert_eq!(fast, encode_fields(&frame), "{delta:?} at {time}");
                    let escapes = delta.chars().any(|c| c == '"' || c == '\\' || c.is_control());
                    assert!(
                        escapes || fast.capacity() - fast.len() <= 64,
                        "one buffer of about its length: {fast}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        every_ascii.push_str("é🦀\u{2028}");
        let mut samples = vec![String::new(), "plain".to_owned(), every_ascii, "\"\\\u{0}".repeat(3)];
        // Each escape at every place in and across the eight-byte words.
        for escape in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
            for at in 0..20 {
                let mut sample = "abcdefghijklmnopqrst".to_owned();
                sample.insert(at, escape);
                samples.push(sample);
            }
        }
        for sample in samples {
            let mut ours = String::new();
            super::string(&mut ours, &sample);
            assert_eq!(ours, serde_json::to_string(&sample).expect("a string"), "{sample:?}");
        }
    }

    #[test]
    fn timestamps_this_writer_does_not_handle_are_left_to_the_general_encoder() {
        let mut out = String::new();
        assert!(super::rfc3339_millis(&mut out, at(253_402_300_800, 0)).is_none(), "year 10000");
        assert!(super::rfc3339_millis(&mut out, at(-62_167_219_201, 0)).is_none(), "before year 0");
        let leap = at(1_800_000_059, 1_500_000_000);
        assert!(super::rfc3339_millis(&mut out, leap).is_none(), "a leap second");
        for time in [at(253_402_300_800, 0), leap] {
            let frame = chunk("x", AnswerStyle::AiResponse, time);
            assert_eq!(encode_frame(&frame), encode_fields(&frame));
        }
    }
}
