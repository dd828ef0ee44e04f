//! Session summaries: the listing form of a session document, read from a projection
//! that leaves out the response-time window (up to 100 numbers) and everything the
//! listing does not show, so a page of 1000 stays small.
//!
//! Reading is as strict as for whole sessions: the name must open (a name that fails to
//! decrypt is an error, never shown as ciphertext), counters must be non-negative, an
//! ended session must have its end time. The duration is computed from the times read
//! (the stored `duration_ms` is only a sort key); the response aggregates are read, or
//! computed from the window for documents that predate them (the caller then adds the
//! window to the document, see [`needs_window`]).

use chatbox_application::ports::SessionSummary;
use chatbox_domain::{ModelId, SessionId, UserId};
use mongodb::bson::{Bson, Document, doc};

use super::derived::{ResponseTotals, Timeline};
use super::{
    Codec, DocumentError, boolean, count, date, field, optional_date, optional_string, parsed, string,
};

/// The fields a summary is read from.
pub(crate) fn summary_projection() -> Document {
    doc! {
        field::ID: 1, field::SCHEMA: 1, field::USER_ID: 1, field::NAME: 1, field::MODEL_ID: 1,
        field::STATUS: 1, field::ENDED_AT: 1, field::HELP_REQUESTED: 1, field::ADMIN_ASSISTED: 1,
        field::ASSISTING_ADMIN_NAME: 1, field::CREATED_AT: 1, field::LAST_ACTIVITY: 1,
        field::MESSAGE_COUNT: 1, field::TOTAL_TOKENS: 1, field::RESPONSE_COUNT: 1,
        field::RESPONSE_SUM_MS: 1, field::RESPONSE_MAX_MS: 1,
    }
}

/// True when `doc` predates the response aggregates: its summary needs the window.
pub(crate) fn needs_window(doc: &Document) -> bool {
    !doc.contains_key(field::RESPONSE_COUNT) && !doc.contains_key(field::RESPONSE_TIMES_MS)
}

/// The summary of a (projected) session document of the current layout.
pub(crate) fn summary_from_document(doc: &Document, codec: &Codec) -> Result<SessionSummary, DocumentError> {
    let timeline = Timeline::read(doc)?;
    let responses = ResponseTotals::read_or_compute(doc)?;
    Ok(SessionSummary {
        id: parsed(SessionId::parse(string(doc, field::ID)?), field::ID)?,
        owner: parsed(UserId::parse(string(doc, field::USER_ID)?), field::USER_ID)?,
        name: codec.open_optional(doc, field::NAME)?,
        model_id: parsed(ModelId::parse(string(doc, field::MODEL_ID)?), field::MODEL_ID)?,
        message_count: count(doc, field::MESSAGE_COUNT)?,
        created_at: date(doc, field::CREATED_AT)?,
        last_activity: date(doc, field::LAST_ACTIVITY)?,
        ended_at: if timeline.is_active() { None } else { optional_date(doc, field::ENDED_AT)? },
        duration_ms: u64::try_from(timeline.duration_ms()).unwrap_or(0),
        total_tokens: count(doc, field::TOTAL_TOKENS)?,
        avg_response_ms: responses.average_ms(),
        max_response_ms: responses.max_ms,
        help_requested: boolean(doc, field::HELP_REQUESTED)?,
        admin_assisted: boolean(doc, field::ADMIN_ASSISTED)?,
        assisting_admin_name: optional_string(doc, field::ASSISTING_ADMIN_NAME)?.map(str::to_owned),
    })
}

/// Adds a window fetched separately to a document that predates the aggregates.
pub(crate) fn with_window(mut doc: Document, window: Option<&Bson>) -> Document {
    if let Some(window) = window {
        doc.insert(field::RESPONSE_TIMES_MS, window.clone());
    }
    doc
}

#[cfg(test)]
mod tests {
    use chatbox_domain::{HandoffState, MessageEffects, Seq, Session};

    use super::*;
    use crate::documents::session_document;
    use crate::documents::test_support::{at, codec_with};

    fn session() -> Session {
        let mut session = Session::new(
            SessionId::parse("s1").expect("id"),
            UserId::parse("u1").expect("id"),
            ModelId::parse("demo").expect("id"),
            at(1_000),
        );
        let answer = MessageEffects {
            name: Some("Secret name".into()),
            response_time: Some(std::time::Duration::from_millis(300)),
            tokens: 9,
            ..MessageEffects::default()
        };
        session.record(Seq(1), at(1_005), &answer);
        session.handoff = HandoffState::HelpRequested;
        session
    }

    fn projected(document: &Document) -> Document {
        let projection = summary_projection();
        document
            .iter()
            .filter(|(k, _)| projection.contains_key(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn a_summary_opens_the_name_and_computes_the_duration() {
        let codec = codec_with(4);
        let document = projected(&session_document(&session(), &codec).expect("document"));
        assert!(matches!(document.get(field::NAME), Some(Bson::Binary(_))));
        let summary = summary_from_document(&document, &codec).expect("summary");
        assert_eq!(summary.name.as_deref(), Some("Secret name"));
        assert_eq!((summary.duration_ms, summary.message_count, summary.total_tokens), (5_000, 1, 9));
        assert_eq!((summary.avg_response_ms, summary.max_response_ms), (Some(300), Some(300)));
        assert!(summary.help_requested && !summary.admin_assisted);
        assert!(summary.ended_at.is_none());
        let error = summary_from_document(&document, &codec_with(5)).expect_err("another key");
        assert!(matches!(error, DocumentError::Crypto { .. }), "never shown as ciphertext: {error}");
    }

    #[test]
    fn a_document_without_aggregates_needs_its_window() {
        let codec = Codec::default();
        let full = session_document(&session(), &codec).expect("document");
        let mut old = projected(&full);
        for name in [field::RESPONSE_COUNT, field::RESPONSE_SUM_MS, field::RESPONSE_MAX_MS] {
            old.remove(name);
        }
        assert!(needs_window(&old));
        assert!(summary_from_document(&old, &codec).is_err(), "no silent default");
        let old = with_window(old, full.get(field::RESPONSE_TIMES_MS));
        assert!(!needs_window(&old));
        assert_eq!(summary_from_document(&old, &codec).expect("summary").max_response_ms, Some(300));
    }
}
