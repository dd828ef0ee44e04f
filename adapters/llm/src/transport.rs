//! The HTTP side shared by every provider: one request that answers with a server-sent
//! event stream, failures classified by kind (never by matching error text), and the
//! driver that turns the response body into answer events.
//!
//! Provider error bodies can hold prompts, account details or echoed keys: they are
//! logged truncated and at debug level only, and never leave this module in an error.
//! Every provider text this module logs or puts into an error passes through
//! [`redact`] first (the configured key and anything shaped like a credential), and
//! only then is truncated.
//! Dropping the returned stream before the answer ended drops the response, which closes
//! the connection: that is how `stop`, timeouts and shutdown abort a provider request. An
//! answer that ended gives its connection back for the next (see [`crate::client`]).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use chatbox_application::ports::{AnswerStream, ProviderError, StreamEvent};
use chatbox_domain::Secret;
use futures::StreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use tracing::debug;

use crate::client::{Client, ClientError, Exchange};
use crate::redact::redact;
use crate::sse::{SseDecoder, SseEvent};

/// The largest event (or line) accepted from a provider.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// How much of an error body is read, and how much of it is logged.
const ERROR_BODY_READ_BYTES: usize = 8 * 1024;
const ERROR_BODY_LOG_CHARS: usize = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns one provider's events into answer events. The driver owns the end of the
/// answer: once a decoder emits `Finished`, nothing more is read or decoded.
pub trait EventDecoder: Send + 'static {
    /// Handles one event, appending what it means to `out`.
    ///
    /// # Errors
    /// When the event reports a failure.
    fn decode(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// The stream ended before any `Finished`: appends what that means to `out`, or
    /// says why the answer is incomplete.
    ///
    /// # Errors
    /// When the answer is incomplete (the default: providers always say when they end).
    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::Stream("the stream ended before the answer was complete".into()))
    }
}

/// An HTTP client for one provider.
#[derive(Debug, Clone)]
pub struct Transport {
    client: Client,
    provider: &'static str,
    /// Only to redact it from what the provider answers; `Debug` prints `***`.
    api_key: Option<Secret>,
}

impl Transport {
    /// A client for the provider named `provider` (used in logs), whose `api_key` is
    /// redacted from every provider text logged or put into an error.
    ///
    /// # Errors
    /// When the TLS stack cannot be set up.
    pub fn new(provider: &'static str, api_key: Option<Secret>) -> Result<Self, ClientError> {
        Ok(Self { client: Client::new(CONNECT_TIMEOUT, Vec::new())?, provider, api_key })
    }

    /// Posts a JSON body and returns the answer stream decoded by `decoder`.
    ///
    /// # Errors
    /// A classified [`ProviderError`] when the request fails or is refused.
    pub async fn stream(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
        decoder: impl EventDecoder,
    ) -> Result<AnswerStream, ProviderError> {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        let (status, response_headers, body) =
            self.client.post(url, headers, body).await.map_err(|error| {
                let error = self.redact(&error.to_string());
                debug!(provider = self.provider, %error, "provider request failed");
                ProviderError::Connect(error)
            })?;
        if !status.is_success() {
            let retry_after = retry_after(&response_headers);
            let body = self.redact(&read_bounded(body).await);
            debug!(provider = self.provider, status = status.as_u16(), body = %truncate(&body), "provider refused the request");
            return Err(classify_status(status.as_u16(), retry_after));
        }
        let is_json = response_headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            let body = self.redact(&read_bounded(body).await);
            debug!(provider = self.provider, body = %truncate(&body), "provider answered JSON, not an event stream");
            return Err(ProviderError::Stream(
                "the provider answered JSON instead of an event stream".into(),
            ));
        }
        Ok(events(body, decoder, self.provider, self.api_key.clone()))
    }

    fn redact(&self, text: &str) -> String {
        redact(text, self.api_key.as_ref().map(Secret::expose))
    }
}

/// The error for a non-success HTTP status.
#[must_use]
pub const fn classify_status(status: u16, retry_after: Option<Duration>) -> ProviderError {
    match status {
        429 => ProviderError::RateLimited { retry_after },
        529 => ProviderError::Overloaded,
        500..=599 => ProviderError::Server { status },
        _ => ProviderError::Rejected { status },
    }
}

/// The longest `Retry-After` honoured: a provider's number meets our clock, so it is
/// bounded before any arithmetic.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or as an HTTP date, at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(at.timestamp()).ok()?))?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default().min(MAX_RETRY_AFTER))
}

async fn read_bounded(mut chunks: Exchange) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_READ_BYTES - body.len())]);
            if body.len() >= ERROR_BODY_READ_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    String::from_utf8_lossy(&body).into_owned()
}

fn truncate(body: &str) -> String {
    let mut cut: String = body.chars().take(ERROR_BODY_LOG_CHARS).collect();
    if body.chars().count() > ERROR_BODY_LOG_CHARS {
        cut.push('…');
    }
    cut
}

struct Driver<D> {
    /// The response, until the answer ended (then given back: see [`Exchange::release`]).
    body: Option<Exchange>,
    sse: SseDecoder,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    scratch_events: Vec<SseEvent>,
    scratch_out: Vec<StreamEvent>,
    /// A failure to report once the events decoded before it were delivered.
    failure: Option<ProviderError>,
    /// The decoder emitted `Finished`: the answer is complete.
    finished: bool,
    ended: bool,
    provider: &'static str,
    api_key: Option<Secret>,
}

impl<D: EventDecoder> Driver<D> {
    /// Decodes the SSE events in `scratch_events` into `pending`. A failure is kept
    /// for after the events decoded before it, which the client must still see.
    fn decode_pending(&mut self) {
        let mut failure = None;
        for event in self.scratch_events.drain(..) {
            if let Err(error) = self.decoder.decode(event, &mut self.scratch_out) {
                failure = Some(error);
                break;
            }
            if self.scratch_out.iter().any(|e| matches!(e, StreamEvent::Finished(_))) {
                // Whatever the provider sends after the end is not part of the answer.
                self.finished = true;
                self.ended = true;
                break;
            }
        }
        self.scratch_events.clear();
        self.pending.extend(self.scratch_out.drain(..));
        if let Some(error) = failure {
            self.fail(error);
        }
    }

    /// Ends the answer with `error`, whose text (a decoder may quote the provider) is
    /// redacted first.
    fn fail(&mut self, error: ProviderError) {
        self.ended = true;
        let error = match error {
            ProviderError::Stream(text) => ProviderError::Stream(self.redact(&text)),
            ProviderError::Connect(text) => ProviderError::Connect(self.redact(&text)),
            other => other,
        };
        self.failure.get_or_insert(error);
    }

    fn redact(&self, text: &str) -> String {
        redact(text, self.api_key.as_ref().map(Secret::expose))
    }

    async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                if self.finished
                    && let Some(body) = self.body.take()
                {
                    body.release();
                }
                return self.failure.take().map(Err);
            }
            let body = self.body.as_mut()?;
            match body.next().await {
                Some(Ok(bytes)) => match self.sse.feed(&bytes, &mut self.scratch_events) {
                    Ok(()) => self.decode_pending(),
                    Err(error) => {
                        self.decode_pending();
                        self.fail(ProviderError::Stream(error.to_string()));
                    }
                },
                Some(Err(error)) => {
                    let error = self.redact(&error.to_string());
                    debug!(provider = self.provider, %error, "provider stream broke");
                    self.fail(ProviderError::Stream("the provider connection was lost mid-answer".into()));
                }
                None => {
                    self.ended = true;
                    let finished = self.sse.finish(&mut self.scratch_events);
                    self.decode_pending();
                    if let Err(error) = finished {
                        self.fail(ProviderError::Stream(error.to_string()));
                    } else if self.failure.is_none() && !self.finished {
                        match self.decoder.end(&mut self.scratch_out) {
                            Ok(()) => self.pending.extend(self.scratch_out.drain(..)),
                            Err(error) => self.fail(error),
                        }
                    }
                }
            }
        }
    }
}

/// Drives `body` through the SSE decoder and `decoder`. Reads only as fast as the
/// consumer polls: nothing is buffered beyond one network chunk. `api_key` is redacted
/// from the failures reported.
pub fn events(
    body: Exchange,
    decoder: impl EventDecoder,
    provider: &'static str,
    api_key: Option<Secret>,
) -> AnswerStream {
    let driver = Driver {
        body: Some(body),
        sse: SseDecoder::new(MAX_EVENT_BYTES),
        decoder,
        pending: VecDeque::new(),
        scratch_events: Vec::new(),
        scratch_out: Vec::new(),
        failure: None,
        finished: false,
        ended: false,
        provider,
        api_key,
    };
    futures::stream::unfold(
        driver,
        |mut driver| async move { driver.next().await.map(|item| (item, driver)) },
    )
    .boxed()
}

/// Parses an event's JSON data whose kind lives in the field `kind_field`. When the
/// data lacks that field, the SSE `event:` name stands in for it: providers send both,
/// but some proxies and mocks keep only one.
#[must_use]
pub fn parse_typed<T: serde::de::DeserializeOwned>(event: &SseEvent, kind_field: &str) -> Option<T> {
    let mut value: serde_json::Value = serde_json::from_str(&event.data).ok()?;
    if let (Some(object), Some(name)) = (value.as_object_mut(), event.event.as_ref()) {
        object.entry(kind_field).or_insert_with(|| serde_json::Value::String(name.clone()));
    }
    serde_json::from_value(value).ok()
}

/// A header value that `Debug` output never shows (API keys).
///
/// # Errors
/// When the value is not a valid header value.
pub fn secret_header(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ProviderError::Rejected { status: 0 })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_kind() {
        assert!(matches!(classify_status(429, None), ProviderError::RateLimited { retry_after: None }));
        assert!(matches!(classify_status(529, None), ProviderError::Overloaded));
        assert!(matches!(classify_status(503, None), ProviderError::Server { status: 503 }));
        assert!(matches!(classify_status(401, None), ProviderError::Rejected { status: 401 }));
        assert!(classify_status(500, None).is_retryable());
        assert!(!classify_status(400, None).is_retryable());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past means now");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_bodies_are_truncated_for_the_log() {
        assert_eq!(truncate("short"), "short");
        assert_eq!(truncate(&"x".repeat(1000)).chars().count(), ERROR_BODY_LOG_CHARS + 1);
    }
}
