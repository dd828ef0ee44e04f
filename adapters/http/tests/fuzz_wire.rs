//! Property-based fuzzing of the inbound frame decoder (`wire::parse_frame`).
//!
//! Proves that every text a client can send gets its documented answer, never a panic:
//! a valid frame decodes to exactly the command `docs/protocol.md` describes (fields
//! trimmed and bounded, metadata scalars turned into strings, `user` answered as
//! `assistant`), and anything else is refused with the documented code
//! (`INVALID_FORMAT`, or `MISSING_FIELD` for a required field that is absent).
//!
//! The expected answer comes from an oracle written here from the protocol's rules, not
//! from the decoder. Where a frame breaks several rules at once the protocol does not
//! say which one is reported, so the oracle accepts the code of any rule broken.
//!
//! Inputs: arbitrary strings and bytes, arbitrary JSON values, and structured near-valid
//! frames (every field with values of every JSON type, huge and malformed numbers, deep
//! nesting, lengths over the limits in bytes but not in characters and the reverse,
//! metadata with many keys, long or non-scalar values, unknown and aliased types,
//! duplicated keys). Case counts: `tests/support/fuzz.rs`.

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;
#[path = "support/json_oracle.rs"]
mod json_oracle;

use std::collections::{BTreeMap, BTreeSet};

use chatbox_application::commands::{AttachedFile, ClientCommand};
use chatbox_application::events::AnswerStyle;
use chatbox_domain::{MessageKind, Timestamp};
use chatbox_http::wire::{Inbound, WireError, parse_frame};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde::de::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

const INVALID_FORMAT: &str = "INVALID_FORMAT";
const MISSING_FIELD: &str = "MISSING_FIELD";

/// The fields the protocol defines for inbound frames; any other key is ignored.
const KNOWN_FIELDS: [&str; 10] = [
    "type",
    "session_id",
    "content",
    "file_id",
    "file_url",
    "model_id",
    "client_message_id",
    "metadata",
    "timestamp",
    "last_seq",
];
const TEXT_FIELDS: [&str; 8] =
    ["type", "session_id", "content", "file_id", "file_url", "model_id", "client_message_id", "timestamp"];
const TYPES: [&str; 11] = [
    "user_message",
    "user",
    "model_select",
    "help_request",
    "stop",
    "typing_indicator",
    "file_upload",
    "voice_message",
    "ping",
    "resume",
    "teleport",
];

fn now() -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a valid instant")
}

// ---------------------------------------------------------------------------------
// The oracle.
// ---------------------------------------------------------------------------------

/// What the protocol says a text gets.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Decoded into this command (see [`describe`]).
    Decoded(Value),
    /// Refused with one of these codes (one per rule the frame breaks).
    Refused(BTreeSet<&'static str>),
}

fn refused(code: &'static str) -> Expected {
    Expected::Refused(BTreeSet::from([code]))
}

/// The top level of a frame: the values of the protocol's fields in order, duplicates
/// kept; other keys skipped without looking inside (so an ignored field may nest as
/// deep as it likes, as the protocol ignores unknown fields).
struct TopLevel(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        json_oracle::known_fields(deserializer, &KNOWN_FIELDS).map(TopLevel)
    }
}

/// The rules a frame's values break, and what the valid ones mean.
struct Check {
    broken: BTreeSet<&'static str>,
}

impl Check {
    fn fail(&mut self, code: &'static str) {
        self.broken.insert(code);
    }

    /// An optional id: trimmed, blank means absent, at most `max` bytes, no control
    /// characters.
    fn optional_id(&mut self, value: Option<&str>, max: usize) -> Value {
        match value.map(str::trim) {
            None | Some("") => Value::Null,
            Some(id) => self.id(id, max),
        }
    }

    /// A present id: not empty, at most `max` bytes, no control characters.
    fn id(&mut self, id: &str, max: usize) -> Value {
        if id.is_empty() || id.len() > max || id.chars().any(char::is_control) {
            self.fail(INVALID_FORMAT);
        }
        json!(id)
    }

    /// Message text: NUL removed, not blank, at most `max_chars` characters.
    fn content(&mut self, text: &str, max_chars: usize) -> Value {
        let cleaned: String = text.chars().filter(|&c| c != '\0').collect();
        if cleaned.trim().is_empty() || cleaned.chars().count() > max_chars {
            self.fail(INVALID_FORMAT);
        }
        json!(cleaned)
    }

    /// A caption: may be empty or blank (then it is empty), else like content.
    fn caption(&mut self, text: &str, max_chars: usize) -> Value {
        let cleaned: String = text.chars().filter(|&c| c != '\0').collect();
        if cleaned.trim().is_empty() {
            return json!("");
        }
        if cleaned.chars().count() > max_chars {
            self.fail(INVALID_FORMAT);
        }
        json!(cleaned)
    }

    /// Metadata: strings kept, numbers and booleans turned into strings, nulls dropped,
    /// nested values refused; at most 32 keys of 1 to 64 bytes, values of at most 1000
    /// bytes.
    fn metadata(&mut self, raw: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
        let mut metadata = BTreeMap::new();
        for (key, value) in raw.into_iter().flatten() {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => continue,
                Value::Array(_) | Value::Object(_) => {
                    self.fail(INVALID_FORMAT);
                    continue;
                }
            };
            metadata.insert(key.clone(), text);
        }
        if metadata.len() > 32 || metadata.iter().any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 1000)
        {
            self.fail(INVALID_FORMAT);
        }
        metadata
    }

    /// A required field that is absent.
    fn required<'a>(&mut self, value: Option<&'a str>) -> &'a str {
        value.unwrap_or_else(|| {
            self.fail(MISSING_FIELD);
            ""
        })
    }
}

/// An `https` URL of at most 2048 bytes whose host is not internal.
fn url_rules(check: &mut Check, url: &str) -> Value {
    let url = url.trim();
    let https = url.get(..8).is_some_and(|head| head.eq_ignore_ascii_case("https://"));
    if url.is_empty() || url.len() > 2048 || !https {
        check.fail(INVALID_FORMAT);
    } else if chatbox_domain::validation::parse_file_url(url).is_err() {
        // The host rules (no private, loopback or link-local host, no user info) are
        // the domain's, with their own tests; here they only decide valid or not.
        check.fail(INVALID_FORMAT);
    }
    json!(url)
}

/// What the protocol says `text` gets, with a content limit of `max_chars`.
fn oracle(text: &str, max_chars: usize) -> Expected {
    // One JSON object per frame; the protocol's fields with the right JSON types.
    let Ok(TopLevel(pairs)) = serde_json::from_str::<TopLevel>(text) else {
        return refused(INVALID_FORMAT);
    };
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in pairs {
        if fields.insert(key, value).is_some() {
            // A field given twice is ambiguous: refused, never resolved silently.
            return refused(INVALID_FORMAT);
        }
    }
    let mut texts: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for name in TEXT_FIELDS {
        let value = match fields.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return refused(INVALID_FORMAT),
        };
        texts.insert(name, value);
    }
    let text_of = |name: &str| texts.get(name).cloned().flatten();
    let metadata = match fields.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => return refused(INVALID_FORMAT),
    };
    let last_seq = match fields.get("last_seq") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(seq) => Some(seq),
            None => return refused(INVALID_FORMAT),
        },
    };

    // A type is required and must be known.
    let kind = text_of("type");
    let Some(kind) = kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) else {
        return refused(INVALID_FORMAT);
    };
    let mut check = Check { broken: BTreeSet::new() };
    if !TYPES[..10].contains(&kind) {
        check.fail(INVALID_FORMAT);
    }
    // The rules of the fields every frame may carry.
    if let Some(timestamp) = text_of("timestamp") {
        match chrono::DateTime::parse_from_rfc3339(&timestamp) {
            Ok(at) if at.with_timezone(&chrono::Utc) - now() > chrono::TimeDelta::seconds(60) => {
                check.fail(INVALID_FORMAT);
            }
            Ok(_) => {}
            Err(_) => check.fail(INVALID_FORMAT),
        }
    }
    let session_id = check.optional_id(text_of("session_id").as_deref(), 128);
    let metadata = check.metadata(metadata.as_ref());
    let client_message_id = check.optional_id(text_of("client_message_id").as_deref(), 64);

    let decoded = match kind {
        "ping" => json!({"kind": "ping"}),
        "user_message" | "user" => {
            let content = text_of("content");
            let content = check.required(content.as_deref());
            let content = check.content(content, max_chars);
            let model_id = check.optional_id(text_of("model_id").as_deref(), 100);
            json!({"kind": "send", "session_id": session_id, "content": content, "model_id": model_id,
                   "client_message_id": client_message_id, "metadata": metadata,
                   "style": if kind == "user" { "assistant" } else { "ai_response" }})
        }
        "model_select" => {
            // Not trimmed: the id is matched as given against the configured models.
            let model_id = text_of("model_id");
            let model_id = check.required(model_id.as_deref());
            let model_id = check.id(model_id, 100);
            json!({"kind": "select_model", "session_id": session_id, "model_id": model_id})
        }
        "stop" => json!({"kind": "stop", "session_id": session_id}),
        "help_request" => json!({"kind": "help_request", "session_id": session_id}),
        "typing_indicator" => json!({"kind": "typing", "session_id": session_id,
                                     "typing": metadata.get("typing").is_some_and(|t| t == "true")}),
        "file_upload" | "voice_message" => {
            let file_id = text_of("file_id");
            let file_id = check.required(file_id.as_deref());
            // Like the ids above: not blank, ≤255 bytes, no control characters.
            let file_id = file_id.trim();
            if file_id.is_empty() || file_id.len() > 255 || file_id.chars().any(char::is_control) {
                check.fail(INVALID_FORMAT);
            }
            // An id of this service's uploads (32 lowercase hex digits) needs no URL: the
            // server has its own.
            let upload = file_id.len() == 32
                && file_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let file_id = json!(file_id);
            let file_url = if upload {
                Value::Null
            } else {
                let file_url = text_of("file_url");
                let file_url = check.required(file_url.as_deref());
                url_rules(&mut check, file_url)
            };
            let caption = check.caption(&text_of("content").unwrap_or_default(), max_chars);
            json!({"kind": if kind == "file_upload" { "file" } else { "voice" }, "session_id": session_id,
                   "file_id": file_id, "file_url": file_url, "content": caption, "metadata": metadata,
                   "client_message_id": client_message_id})
        }
        "resume" => {
            if session_id.is_null() {
                check.fail(MISSING_FIELD);
            }
            if last_seq.is_none() {
                check.fail(MISSING_FIELD);
            }
            json!({"kind": "resume", "session_id": session_id, "last_seq": last_seq})
        }
        _ => Value::Null,
    };
    if check.broken.is_empty() { Expected::Decoded(decoded) } else { Expected::Refused(check.broken) }
}

/// The decoder's answer in the oracle's terms.
fn actual(text: &str, max_chars: usize) -> Expected {
    match parse_frame(text, max_chars, now()) {
        Ok(inbound) => Expected::Decoded(describe(&inbound)),
        Err(error) => Expected::Refused(BTreeSet::from([code_of(&error)])),
    }
}

fn code_of(error: &WireError) -> &'static str {
    error.code().as_str()
}

/// A decoded frame as plain data, to compare with the oracle's.
fn describe(inbound: &Inbound) -> Value {
    let id = |id: Option<&str>| id.map_or(Value::Null, |id| json!(id));
    let command = match inbound {
        Inbound::Ping => return json!({"kind": "ping"}),
        Inbound::Command(command) => command,
    };
    match command {
        ClientCommand::SendMessage(m) => json!({
            "kind": "send",
            "session_id": id(m.session_id.as_ref().map(|s| s.as_str())),
            "content": m.content.as_str(),
            "model_id": id(m.model_id.as_ref().map(|s| s.as_str())),
            "client_message_id": id(m.client_message_id.as_ref().map(|s| s.as_str())),
            "metadata": m.metadata,
            "style": match m.style { AnswerStyle::Assistant => "assistant", AnswerStyle::AiResponse => "ai_response" },
        }),
        ClientCommand::Attachment(a) => json!({
            "kind": match a.kind { MessageKind::File => "file", MessageKind::Voice => "voice", MessageKind::Text => "text" },
            "session_id": id(a.session_id.as_ref().map(|s| s.as_str())),
            "file_id": match &a.file { AttachedFile::Upload(id) => id.as_str(), AttachedFile::Link { file_id, .. } => file_id },
            "file_url": match &a.file { AttachedFile::Upload(_) => Value::Null, AttachedFile::Link { file_url, .. } => json!(file_url) },
            "content": a.content,
            "metadata": a.metadata,
            "client_message_id": id(a.client_message_id.as_ref().map(|s| s.as_str())),
        }),
        ClientCommand::SelectModel { session_id, model_id } => json!({
            "kind": "select_model",
            "session_id": id(session_id.as_ref().map(|s| s.as_str())),
            "model_id": model_id.as_str(),
        }),
        ClientCommand::Stop { session_id } => {
            json!({"kind": "stop", "session_id": id(session_id.as_ref().map(|s| s.as_str()))})
        }
        ClientCommand::HelpRequest { session_id } => {
            json!({"kind": "help_request", "session_id": id(session_id.as_ref().map(|s| s.as_str()))})
        }
        ClientCommand::Typing { session_id, typing } => json!({
            "kind": "typing",
            "session_id": id(session_id.as_ref().map(|s| s.as_str())),
            "typing": typing,
        }),
        ClientCommand::Resume { session_id, last_seq } => json!({
            "kind": "resume",
            "session_id": session_id.as_str(),
            "last_seq": last_seq.0,
        }),
    }
}

/// The property: no panic, and the documented answer.
fn assert_documented_answer(text: &str, max_chars: usize) -> Result<(), TestCaseError> {
    let expected = oracle(text, max_chars);
    let got = actual(text, max_chars);
    let fine = match (&expected, &got) {
        (Expected::Refused(allowed), Expected::Refused(code)) => code.is_subset(allowed),
        _ => expected == got,
    };
    prop_assert!(fine, "frame {text:?} (max {max_chars} chars)\n expected {expected:?}\n      got {got:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------

fn max_chars() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(5), Just(20), Just(100), Just(10_000)]
}

/// JSON values of every type, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(&TYPES[..]).prop_map(|t| json!(t)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(&KNOWN_FIELDS[..]).prop_map(str::to_owned), "[a-z_]{1,10}"]
}

/// Raw JSON text for a number: in range, out of range, or in a form some parsers
/// reject or turn into floats.
fn raw_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f).to_string()),
        prop::sample::select(vec![
            "0",
            "-0",
            "1.0",
            "1e2",
            "0.5",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775809",
            "1e400",
            "-1e400",
            "123456789012345678901234567890",
            "1e-400",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Raw JSON text nested `depth` levels deep, around a small value.
fn raw_deep() -> impl Strategy<Value = String> {
    (1usize..400, any::<bool>()).prop_map(|(depth, arrays)| {
        if arrays {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
        }
    })
}

/// Any raw JSON value of a wrong or odd type.
fn raw_any() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        2 => raw_number(),
        1 => raw_deep(),
    ]
}

/// Text around a byte limit: ASCII at and over it, and multi-byte text that is within
/// the limit in characters but over it in bytes.
fn text_near(limit: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".repeat(limit)),
        Just("a".repeat(limit + 1)),
        Just("é".repeat(limit / 2 + 1)),
        Just("日".repeat(limit / 3)),
        Just("😀".repeat(limit / 4 + 1)),
    ]
}

/// Strings that are problems for an id: empty, blank, padded, with control characters.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just(" \t padded \n".to_owned()),
        Just("with\u{0}nul".to_owned()),
        Just("line\nbreak".to_owned()),
        Just("del\u{7f}".to_owned()),
        Just("\u{0}".to_owned()),
        Just("é".to_owned()),
        "\\PC{0,16}",
    ]
}

fn raw_string(strategy: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    strategy.prop_map(|s| json!(s).to_string())
}

/// A raw value for an id field with the given byte limit: mostly valid.
fn raw_id(limit: usize) -> BoxedStrategy<String> {
    prop_oneof![
        5 => raw_string("[a-zA-Z0-9_-]{1,24}"),
        2 => raw_string(text_near(limit)),
        2 => raw_string(odd_text()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_content() -> BoxedStrategy<String> {
    prop_oneof![
        5 => raw_string("[a-zA-Z ]{1,18}"),
        2 => raw_string(prop::sample::select(vec![1usize, 5, 20, 100]).prop_flat_map(text_near)),
        2 => raw_string(odd_text()),
        1 => raw_string("\\PC{0,40}"),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_url() -> BoxedStrategy<String> {
    let urls = vec![
        "https://cdn.example.com/a.png".to_owned(),
        "HTTPS://CDN.EXAMPLE.COM/a.png".to_owned(),
        " https://cdn.example.com/padded ".to_owned(),
        "http://cdn.example.com/a.png".to_owned(),
        "https://10.0.0.5/a.png".to_owned(),
        "https://localhost/a".to_owned(),
        "https://[::1]/a".to_owned(),
        "https://[fe80::1]/a".to_owned(),
        "https://user@cdn.example.com/a".to_owned(),
        "https://".to_owned(),
        "https:///path".to_owned(),
        "https://cdn.example.com/a b".to_owned(),
        "ftp://cdn.example.com/a".to_owned(),
        "https://é.example.com/é".to_owned(),
        format!("https://cdn.example.com/{}", "a".repeat(2048 - 24)),
        format!("https://cdn.example.com/{}", "a".repeat(2048 - 23)),
        format!("https://cdn.example.com/{}", "é".repeat(1100)),
    ];
    prop_oneof![
        4 => raw_string(prop::sample::select(urls)),
        2 => raw_string("https://[a-z]{1,8}\\.example\\.com/[a-z0-9/]{0,12}"),
        1 => raw_string(odd_text()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_timestamp() -> BoxedStrategy<String> {
    // Seconds relative to `now()`: the past, within the minute of grace, and beyond.
    let offsets =
        prop_oneof![-1_000_000_000i64..0, 0i64..=60, 61i64..100_000_000, Just(59), Just(60), Just(61),];
    let valid = offsets.prop_map(|offset| {
        let at = now() + chrono::TimeDelta::seconds(offset);
        json!(at.to_rfc3339()).to_string()
    });
    prop_oneof![
        4 => valid,
        1 => raw_string(prop::sample::select(vec![
            "2999-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "2027-01-15T08:00:00",
            "yesterday",
            "",
            "2027-02-30T00:00:00Z",
        ]).prop_map(str::to_owned)),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_metadata() -> BoxedStrategy<String> {
    let value: BoxedStrategy<Value> = prop_oneof![
        4 => "[a-z ]{0,12}".prop_map(|s| json!(s)),
        1 => any::<bool>().prop_map(|b| json!(b)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => Just(Value::Null),
        1 => text_near(1000).prop_map(|s| json!(s)),
        1 => json_value(),
    ]
    .boxed();
    let key: BoxedStrategy<String> = prop_oneof![
        4 => "[a-z]{1,10}",
        1 => Just("typing".to_owned()),
        1 => Just(String::new()),
        1 => text_near(64),
    ]
    .boxed();
    let map = prop_oneof![
        4 => prop::collection::vec((key.clone(), value.clone()), 0..6),
        1 => prop::collection::vec((key, value), 28..40),
    ]
    .prop_map(|pairs| Value::Object(pairs.into_iter().collect()).to_string());
    prop_oneof![
        6 => map,
        1 => Just(r#"{"typing":true}"#.to_owned()),
        1 => Just(r#"{"typing":"true"}"#.to_owned()),
        1 => raw_any(),
    ]
    .boxed()
}

fn raw_last_seq() -> BoxedStrategy<String> {
    prop_oneof![4 => (0u64..1000).prop_map(|n| n.to_string()), 2 => raw_number(), 1 => raw_any()].boxed()
}

fn raw_type() -> BoxedStrategy<String> {
    prop_oneof![
        8 => raw_string(prop::sample::select(&TYPES[..]).prop_map(str::to_owned)),
        1 => raw_string(prop::sample::select(vec![" user_message ", "USER_MESSAGE", "User", "", "  ", "pong", "user message"]).prop_map(str::to_owned)),
        1 => raw_any(),
    ]
    .boxed()
}

/// The raw value strategy for a field.
fn raw_field(name: &str) -> BoxedStrategy<String> {
    match name {
        "type" => raw_type(),
        "session_id" => raw_id(128),
        "client_message_id" => raw_id(64),
        "model_id" => raw_id(100),
        "file_id" => raw_id(255),
        "content" => raw_content(),
        "file_url" => raw_url(),
        "metadata" => raw_metadata(),
        "timestamp" => raw_timestamp(),
        "last_seq" => raw_last_seq(),
        _ => raw_any().boxed(),
    }
}

/// A frame as key/raw-value pairs: usually a type, a random subset of the other
/// fields, sometimes unknown keys (possibly deeply nested) and a repeated key.
fn structured_frame() -> impl Strategy<Value = String> {
    let fields: Vec<BoxedStrategy<Option<(String, String)>>> = KNOWN_FIELDS
        .iter()
        .map(|&name| {
            let weight_absent = if name == "type" { 1 } else { 3 };
            prop_oneof![
                weight_absent => Just(None),
                2 => raw_field(name).prop_map(move |raw| Some((name.to_owned(), raw))),
            ]
            .boxed()
        })
        .collect();
    let unknown = prop::collection::vec(("[a-z]{1,8}", raw_any()), 0..3);
    let repeated = prop::option::weighted(
        0.05,
        prop::sample::select(&KNOWN_FIELDS[..])
            .prop_flat_map(|name| raw_field(name).prop_map(move |raw| (name.to_owned(), raw))),
    );
    (fields, unknown, repeated)
        .prop_map(|(fields, unknown, repeated)| {
            let mut pairs: Vec<(String, String)> = fields.into_iter().flatten().collect();
            pairs.extend(unknown);
            pairs.extend(repeated);
            pairs
        })
        .prop_shuffle()
        .prop_map(|pairs| {
            let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
            format!("{{{}}}", body.join(","))
        })
}

/// A frame built from a valid one of a random type, then (often) with one field
/// replaced by any raw value or dropped: frames one step away from valid.
fn template_frame() -> impl Strategy<Value = String> {
    let valid_id = || "[a-z0-9-]{1,24}".prop_map(|s| json!(s).to_string());
    let optional = (
        prop::option::weighted(0.3, valid_id()),
        prop::option::weighted(0.3, valid_id()),
        prop::option::weighted(0.3, Just(r#"{"typing":"true","n":1,"ok":false,"gone":null}"#.to_owned())),
        prop::option::weighted(0.3, Just(json!(now().to_rfc3339()).to_string())),
    );
    let mutation = prop::option::weighted(
        0.5,
        (prop::sample::select(&KNOWN_FIELDS[..]), any::<bool>())
            .prop_flat_map(|(name, drop)| raw_field(name).prop_map(move |raw| (name, drop, raw))),
    );
    (
        prop::sample::select(&TYPES[..10]),
        "[a-z]{1,3}",
        valid_id(),
        prop::sample::select(vec!["https://cdn.example.com/a.png", "https://files.example.org/x?y=1"]),
        0u64..100,
        optional,
        mutation,
    )
        .prop_map(
            |(kind, content, id, url, seq, (session, client_id, metadata, timestamp), mutation)| {
                let mut pairs: Vec<(String, String)> = vec![("type".into(), json!(kind).to_string())];
                match kind {
                    "user_message" | "user" => pairs.push(("content".into(), json!(content).to_string())),
                    "model_select" => pairs.push(("model_id".into(), id.clone())),
                    "file_upload" | "voice_message" => {
                        pairs.push(("file_id".into(), id.clone()));
                        pairs.push(("file_url".into(), json!(url).to_string()));
                    }
                    "resume" => {
                        pairs.push(("session_id".into(), id.clone()));
                        pairs.push(("last_seq".into(), seq.to_string()));
                    }
                    _ => {}
                }
                for (name, value) in [
                    ("session_id", session),
                    ("client_message_id", client_id),
                    ("metadata", metadata),
                    ("timestamp", timestamp),
                ] {
                    if let Some(value) = value.filter(|_| !pairs.iter().any(|(k, _)| k == name)) {
                        pairs.push((name.into(), value));
                    }
                }
                if let Some((name, drop, raw)) = mutation {
                    pairs.retain(|(k, _)| k != name);
                    if !drop {
                        pairs.push((name.into(), raw));
                    }
                }
                let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
                format!("{{{}}}", body.join(","))
            },
        )
}

// ---------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(fuzz::config(512))]

    #[test]
    fn arbitrary_text_gets_its_documented_answer(text in "\\PC{0,64}|.{0,64}", max in max_chars()) {
        assert_documented_answer(&text, max)?;
    }

    #[test]
    fn arbitrary_bytes_get_their_documented_answer(bytes in prop::collection::vec(any::<u8>(), 0..128), max in max_chars()) {
        assert_documented_answer(&String::from_utf8_lossy(&bytes), max)?;
    }

    #[test]
    fn arbitrary_json_gets_its_documented_answer(value in json_value(), max in max_chars()) {
        assert_documented_answer(&value.to_string(), max)?;
    }

    #[test]
    fn near_valid_frames_get_their_documented_answer(text in structured_frame(), max in max_chars()) {
        assert_documented_answer(&text, max)?;
    }

    /// Arrays of field-shaped values, in the order of the protocol's fields.
    #[test]
    fn json_arrays_get_their_documented_answer(
        values in (0usize..=11).prop_flat_map(|n| KNOWN_FIELDS.iter().cycle().take(n).map(|&f| raw_field(f)).collect::<Vec<_>>()),
        max in max_chars(),
    ) {
        assert_documented_answer(&format!("[{}]", values.join(",")), max)?;
    }

    #[test]
    fn frames_one_step_from_valid_get_their_documented_answer(text in template_frame(), max in max_chars()) {
        assert_documented_answer(&text, max)?;
    }
}

/// The structured frames are not all refused: the harness would prove little if they
/// were. Over a fixed-seed sample, every command is decoded and every refusal code is
/// seen, many times.
#[test]
fn near_valid_frames_reach_every_command_and_every_refusal() {
    let mut runner = TestRunner::deterministic();
    let strategy = (prop_oneof![structured_frame(), template_frame()], max_chars());
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut decoded = 0;
    for _ in 0..4000 {
        let (text, max) = strategy.new_tree(&mut runner).expect("a frame").current();
        let outcome = match actual(&text, max) {
            Expected::Decoded(command) => {
                decoded += 1;
                command["kind"].as_str().expect("kind").to_owned()
            }
            Expected::Refused(codes) => codes.into_iter().collect::<Vec<_>>().join(","),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    for outcome in [
        "send",
        "file",
        "voice",
        "select_model",
        "stop",
        "help_request",
        "typing",
        "resume",
        "ping",
        INVALID_FORMAT,
        MISSING_FIELD,
    ] {
        assert!(
            outcomes.get(outcome).is_some_and(|&n| n >= 5),
            "{outcome} rarely or never reached: {outcomes:?}"
        );
    }
    assert!(decoded >= 400, "at least a tenth of the frames are valid: {outcomes:?}");
}

/// Hand-picked cases: each rule of the protocol once, and the inputs earlier runs
/// shrank failures to.
#[test]
fn regression_and_boundary_cases() {
    let cases: &[(&str, usize)] = &[
        (r#"{"type":"user","content":"Hello","extra":{"deep":[[[[1]]]]}}"#, 10),
        (r#"{"type":" user_message ","content":"hi"}"#, 10),
        (r#"{"type":"user_message","content":"ééééé"}"#, 5),
        (r#"{"type":"user_message","content":"éééééé"}"#, 5),
        (r#"{"type":"user_message","content":"a\u0000b"}"#, 2),
        (r#"{"type":"user_message","content":"\u0000"}"#, 2),
        (r#"{"type":"user_message","content":null}"#, 10),
        (r#"{"type":"user_message","content":"x","content":"y"}"#, 10),
        (r#"{"type":"ping","type":"ping"}"#, 10),
        (r#"{"type":"ping","x":1,"x":2}"#, 10),
        (r#"{"type":"resume","session_id":"s","last_seq":-1}"#, 10),
        (r#"{"type":"resume","session_id":"s","last_seq":1.0}"#, 10),
        (r#"{"type":"resume","session_id":"s","last_seq":18446744073709551616}"#, 10),
        (r#"{"type":"resume","session_id":"s","last_seq":18446744073709551615}"#, 10),
        (r#"{"type":"resume","session_id":"  ","last_seq":1}"#, 10),
        (r#"{"type":"resume","last_seq":1}"#, 10),
        (r#"{"type":"model_select","model_id":""}"#, 10),
        (r#"{"type":"model_select","model_id":" demo "}"#, 10),
        (r#"{"type":"typing_indicator","metadata":{"typing":true}}"#, 10),
        (r#"{"type":"typing_indicator","metadata":{"typing":"yes"}}"#, 10),
        (r#"{"type":"file_upload","file_id":" f ","file_url":" https://cdn.example.com/a "}"#, 10),
        (
            r#"{"type":"voice_message","file_id":"f","file_url":"https://cdn.example.com/a","content":"   "}"#,
            10,
        ),
        (r#"{"type":"ping","metadata":{"n":1e400}}"#, 10),
        (r#"{"type":"ping","metadata":{"n":12345678901234567890123}}"#, 10),
        (r#"{"type":"ping","timestamp":"2027-01-15T08:01:00Z"}"#, 10),
        (r#"{"type":"ping","timestamp":"2027-01-15T08:01:01Z"}"#, 10),
        (r#"["ping"]"#, 10),
        ("", 10),
        ("null", 10),
        (r#""ping""#, 10),
        (r#"{"type":"ping"} trailing"#, 10),
    ];
    for &(text, max) in cases {
        assert_documented_answer(text, max).unwrap_or_else(|e| panic!("{e}"));
    }
    let deep_unknown = format!(r#"{{"type":"ping","x":{}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        actual(&deep_unknown, 10),
        Expected::Decoded(json!({"kind": "ping"})),
        "unknown fields are ignored, however deep"
    );
    let deep_known = format!(r#"{{"type":"ping","metadata":{}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(actual(&deep_known, 10), refused(INVALID_FORMAT));
}

/// "One JSON object per text frame": an array is not a frame, whatever it holds. Found
/// by this harness: the decoder reads a JSON array of exactly ten elements as the
/// frame's fields in declaration order (`type`, `session_id`, `content`, …), because
/// serde's derived struct parsing accepts a sequence too.
#[test]
fn a_json_array_is_never_a_frame() {
    for text in [
        r#"["ping",null,null,null,null,null,null,null,null,null]"#,
        r#"["user_message",null,"hi",null,null,null,null,null,null,null]"#,
        r#"["resume","s1",null,null,null,null,null,null,null,7]"#,
    ] {
        assert_eq!(actual(text, 10), refused(INVALID_FORMAT), "{text}");
    }
}
