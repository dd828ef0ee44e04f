//! Fields stored only so the catalog can sort and add up in the database: `duration_ms`
//! and the response-time aggregates (`response_count`, `response_sum_ms`,
//! `response_max_ms`). FerretDB 1.24 can neither sort on a computed expression
//! (`$subtract`, `$ifNull` are not implemented) nor take a `$max` in `$group`, so these
//! are kept next to the fields they derive from, by the writes that change those.
//!
//! Invariants (each write sets them from what it read in the same call, see
//! `repository.rs`):
//! - `duration_ms` = `(ended_at or last_activity) − created_at` in whole milliseconds, 0
//!   if negative. While the session is active it only grows, as `last_activity` only
//!   grows (`$max`), so writes raise it with `$max` under a filter on `status: "active"`;
//!   once ended it is `ended_at − created_at` for good, set with `$set`.
//! - the aggregates describe the stored window `response_times_ms` exactly: its length,
//!   its sum (saturating) and its maximum (null when empty). Only appends change the
//!   window, and they set the aggregates whole with it.
//!
//! Documents written before these fields existed lack them; readers treat them as
//! computable (the catalog reads the window instead) and `chatbox migrate` fills them in.

use chatbox_domain::{Session, Timestamp};
use mongodb::bson::{Bson, Document, doc};

use super::{DocumentError, bson_count, date, field, millis, optional_date, string};

const STATUS_ACTIVE: &str = "active";
const STATUS_ENDED: &str = "ended";

/// Milliseconds since the epoch, as BSON dates hold them.
fn stamp(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

/// `until − from` in milliseconds, 0 if negative.
pub(crate) fn span_ms(from: i64, until: i64) -> i64 {
    until.saturating_sub(from).max(0)
}

/// What a session's duration derives from, as read from its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    created_ms: i64,
    last_activity_ms: i64,
    /// `Some` once the session ended.
    ended_ms: Option<i64>,
}

impl Timeline {
    /// The fields a [`Timeline`] is read from.
    pub(crate) fn projection() -> Document {
        doc! { field::CREATED_AT: 1, field::LAST_ACTIVITY: 1, field::STATUS: 1, field::ENDED_AT: 1 }
    }

    pub(crate) fn of_session(session: &Session) -> Self {
        Self {
            created_ms: stamp(session.created_at),
            last_activity_ms: stamp(session.last_activity),
            ended_ms: session.ended_at().map(stamp),
        }
    }

    /// Reads it strictly: an ended session must have its end time.
    pub(crate) fn read(doc: &Document) -> Result<Self, DocumentError> {
        let ended_ms = match string(doc, field::STATUS)? {
            STATUS_ACTIVE => None,
            STATUS_ENDED => Some(stamp(
                optional_date(doc, field::ENDED_AT)?
                    .ok_or_else(|| DocumentError::Missing(field::ENDED_AT.into()))?,
            )),
            _ => return Err(DocumentError::Invalid(field::STATUS.into())),
        };
        Ok(Self {
            created_ms: stamp(date(doc, field::CREATED_AT)?),
            last_activity_ms: stamp(date(doc, field::LAST_ACTIVITY)?),
            ended_ms,
        })
    }

    pub(crate) const fn is_active(&self) -> bool {
        self.ended_ms.is_none()
    }

    /// The stored `status` this was read with, for filters that pin it.
    pub(crate) const fn status(&self) -> &'static str {
        if self.is_active() { STATUS_ACTIVE } else { STATUS_ENDED }
    }

    /// The duration now.
    pub(crate) fn duration_ms(&self) -> i64 {
        span_ms(self.created_ms, self.ended_ms.unwrap_or(self.last_activity_ms))
    }

    /// Adds the duration change of a write that moves `last_activity` to at least `at`
    /// to `update`: a `$max` while active (exact under a filter on `status: "active"`,
    /// and it also repairs a document that lacked the field), a `$set` of the final
    /// value once ended. The caller filters on [`status`](Self::status).
    pub(crate) fn touch(&self, at: Timestamp, update: &mut Document) {
        let (operator, value) = match self.ended_ms {
            None => ("$max", span_ms(self.created_ms, self.last_activity_ms.max(stamp(at)))),
            Some(ended) => ("$set", span_ms(self.created_ms, ended)),
        };
        add(update, operator, field::DURATION_MS, Bson::Int64(value));
    }

    /// Adds ending at `at` to `update` (for an active session; the caller filters on it).
    pub(crate) fn end(&self, at: Timestamp, update: &mut Document) {
        add(update, "$set", field::DURATION_MS, Bson::Int64(span_ms(self.created_ms, stamp(at))));
    }
}

/// Inserts `name: value` into the `operator` part of `update`, creating it if needed.
fn add(update: &mut Document, operator: &str, name: &str, value: Bson) {
    if let Ok(part) = update.get_document_mut(operator) {
        part.insert(name, value);
    } else {
        update.insert(operator, doc! { name: value });
    }
}

/// The response-time aggregates of a stored window (whole milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ResponseTotals {
    pub(crate) count: u64,
    pub(crate) sum_ms: u64,
    /// `None` when the window is empty.
    pub(crate) max_ms: Option<u64>,
}

impl ResponseTotals {
    /// Of a window as stored (`response_times_ms`).
    pub(crate) fn of_window(window: &[Bson]) -> Result<Self, DocumentError> {
        window.iter().try_fold(Self::default(), |totals, item| {
            Ok(totals.with(bson_count(item, field::RESPONSE_TIMES_MS)?))
        })
    }

    pub(crate) fn of_session(session: &Session) -> Self {
        session
            .response_times
            .iter()
            .fold(Self::default(), |totals, d| totals.with(u64::try_from(millis(d)).unwrap_or(0)))
    }

    fn with(self, ms: u64) -> Self {
        Self {
            count: self.count.saturating_add(1),
            sum_ms: self.sum_ms.saturating_add(ms),
            max_ms: Some(self.max_ms.map_or(ms, |max| max.max(ms))),
        }
    }

    /// The mean, rounded down.
    pub(crate) fn average_ms(&self) -> Option<u64> {
        self.sum_ms.checked_div(self.count)
    }

    /// The `$set` fields that store them.
    pub(crate) fn fields(&self) -> Document {
        doc! {
            field::RESPONSE_COUNT: super::bson_count_value(self.count),
            field::RESPONSE_SUM_MS: super::bson_count_value(self.sum_ms),
            field::RESPONSE_MAX_MS: self.max_ms.map_or(Bson::Null, super::bson_count_value),
        }
    }

    /// Reads the stored aggregates; `None` when the document predates them.
    pub(crate) fn read(doc: &Document) -> Result<Option<Self>, DocumentError> {
        let Some(count) = doc.get(field::RESPONSE_COUNT) else {
            return Ok(None);
        };
        let count = bson_count(count, field::RESPONSE_COUNT)?;
        let sum_ms = bson_count(super::required(doc, field::RESPONSE_SUM_MS)?, field::RESPONSE_SUM_MS)?;
        let max_ms = match super::required(doc, field::RESPONSE_MAX_MS)? {
            Bson::Null => None,
            value => Some(bson_count(value, field::RESPONSE_MAX_MS)?),
        };
        if (count == 0) != max_ms.is_none() {
            return Err(DocumentError::Invalid(field::RESPONSE_MAX_MS.into()));
        }
        Ok(Some(Self { count, sum_ms, max_ms }))
    }

    /// Reads the stored aggregates, or computes them from the stored window when the
    /// document predates them (the window must then be in `doc`).
    pub(crate) fn read_or_compute(doc: &Document) -> Result<Self, DocumentError> {
        if let Some(totals) = Self::read(doc)? {
            return Ok(totals);
        }
        match super::required(doc, field::RESPONSE_TIMES_MS)? {
            Bson::Array(window) => Self::of_window(window),
            _ => Err(DocumentError::WrongType(field::RESPONSE_TIMES_MS.into())),
        }
    }
}

/// The derived fields of a whole session (its document at creation, or a conversion).
pub(crate) fn session_fields(session: &Session) -> Document {
    let mut fields = ResponseTotals::of_session(session).fields();
    fields.insert(field::DURATION_MS, Bson::Int64(Timeline::of_session(session).duration_ms()));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::test_support::at;

    fn timeline(created: i64, last: i64, ended: Option<i64>) -> Timeline {
        Timeline {
            created_ms: created * 1000,
            last_activity_ms: last * 1000,
            ended_ms: ended.map(|e| e * 1000),
        }
    }

    #[test]
    fn duration_follows_activity_while_active_and_freezes_at_the_end() {
        let mut update = doc! {};
        timeline(10, 20, None).touch(at(15), &mut update);
        assert_eq!(update, doc! { "$max": { field::DURATION_MS: 10_000_i64 } }, "never below last_activity");
        let mut update = doc! { "$max": { field::LAST_ACTIVITY: 1 } };
        timeline(10, 20, None).touch(at(30), &mut update);
        assert_eq!(update, doc! { "$max": { field::LAST_ACTIVITY: 1, field::DURATION_MS: 20_000_i64 } });
        let mut update = doc! {};
        timeline(10, 50, Some(40)).touch(at(60), &mut update);
        assert_eq!(update, doc! { "$set": { field::DURATION_MS: 30_000_i64 } }, "ended: from ended_at");
        assert_eq!(timeline(10, 5, None).duration_ms(), 0, "never negative");
    }

    #[test]
    fn aggregates_describe_the_window() {
        let totals =
            ResponseTotals::of_window(&[Bson::Int64(10), Bson::Int32(30), Bson::Int64(5)]).expect("ok");
        assert_eq!(totals, ResponseTotals { count: 3, sum_ms: 45, max_ms: Some(30) });
        assert_eq!(totals.average_ms(), Some(15));
        assert_eq!(ResponseTotals::read(&totals.fields()).expect("read"), Some(totals));
        let empty = ResponseTotals::default();
        assert_eq!(empty.average_ms(), None);
        assert_eq!(ResponseTotals::read(&empty.fields()).expect("read"), Some(empty));
        assert_eq!(ResponseTotals::read(&doc! {}).expect("read"), None, "predates the fields");
        let broken = doc! { field::RESPONSE_COUNT: 2_i64, field::RESPONSE_SUM_MS: 3_i64, field::RESPONSE_MAX_MS: Bson::Null };
        assert!(ResponseTotals::read(&broken).is_err());
    }
}
