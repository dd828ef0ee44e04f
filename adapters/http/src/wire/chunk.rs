//! The frame sent for every streamed token, an answer's chunk, written straight into its
//! buffer: the general encoder (`outbound.rs`) builds a map for the metadata, a string
//! for the timestamp and walks a struct of mostly absent fields, which is most of the
//! cost of a frame this small. The text is byte for byte what the general encoder
//! writes (the tests compare the two), strings escaped by the same serializer.

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
    let mut out = Vec::with_capacity(length.saturating_add(FIXED));
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"session_id\":");
    string(&mut out, session_id);
    out.extend_from_slice(b",\"content\":");
    string(&mut out, content);
    out.extend_from_slice(b",\"model_id\":");
    string(&mut out, model_id);
    out.extend_from_slice(b",\"timestamp\":\"");
    rfc3339_millis(&mut out, timestamp)?;
    out.extend_from_slice(
        b"\",\"sender\":\"ai\",\"metadata\":{\"done\":\"false\",\"streaming\":\"true\"},\"message_id\":",
    );
    string(&mut out, message_id);
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// A JSON string, quoted and escaped as serde_json escapes it.
fn string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `2027-01-15T08:00:00.123Z`, as chrono writes it with millisecond precision; `None`
/// outside years 0 to 9999 and for a leap second, which chrono writes differently.
fn rfc3339_millis(out: &mut Vec<u8>, at: Timestamp) -> Option<()> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(out, year, 4);
    out.push(b'-');
    digits(out, at.month(), 2);
    out.push(b'-');
    digits(out, at.day(), 2);
    out.push(b'T');
    digits(out, at.hour(), 2);
    out.push(b':');
    digits(out, at.minute(), 2);
    out.push(b':');
    digits(out, at.second(), 2);
    out.push(b'.');
    digits(out, nanos / 1_000_000, 3);
    out.push(b'Z');
    Some(())
}

/// `value` in `width` decimal digits, zero-padded (`value` has no more digits).
fn digits(out: &mut Vec<u8>, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(b'0' + u8::try_from(digit).unwrap_or(0));
    }
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
    fn timestamps_this_writer_does_not_handle_are_left_to_the_general_encoder() {
        let mut out = Vec::new();
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
