//! Retries of storage operations: which driver failures are worth another attempt, and
//! how long to wait before it.
//!
//! Failures are classified from the driver's error kind, server error code and error
//! labels, never from message text. Only transient failures are retried: the network,
//! timeouts, server selection (no reachable server), a cleared connection pool, a host
//! name that did not resolve (DNS is often briefly unavailable), the
//! `RetryableWriteError` label, and the server codes that mean "not primary now" or "shutting
//! down". Every write of this adapter is idempotent, so a retry after a lost
//! acknowledgement changes nothing more.
//!
//! The wait before retry `n` (1-based) is `delay · 2^(n-1)`, capped at `max_delay`, with
//! "equal jitter": half of it fixed, half random, so many clients that failed together do
//! not retry together, and no retry fires at once.
//!
//! Each retry logs one line containing `retry`, the operation name and the attempt. It
//! names the failure class, never the driver's text (which may name hosts or values).

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use chatbox_application::ports::{Metrics, NoMetrics};

use crate::operation::Operation;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use tracing::warn;

/// `MONGO_RETRY_ATTEMPTS`, `MONGO_RETRY_DELAY`, `MONGO_RETRY_MAX_DELAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1).
    pub attempts: u32,
    /// The wait before the first retry.
    pub delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 = the second attempt), given a random
    /// number `unit` in [0, 1).
    #[must_use]
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let base = self.delay.saturating_mul(1u32 << exponent).min(self.max_delay);
        let half = base / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// What the classifier looks at in a driver error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signals {
    pub(crate) class: FailureClass,
    /// The server's error code, if the server answered.
    pub(crate) code: Option<i32>,
    /// The driver's error labels.
    pub(crate) labels: Vec<String>,
}

/// The kind of failure, from the driver's error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// The connection broke or could not be made.
    Network,
    /// A network read or write timed out.
    Timeout,
    /// No suitable server was found in time.
    ServerSelection,
    /// The connection pool was cleared under the operation.
    PoolCleared,
    /// The server answered with an error.
    Server,
    /// The server refused the credentials.
    Authentication,
    /// A host name of the connection string did not resolve.
    Dns,
    /// Anything else (bad arguments, unparsable replies, authentication…).
    Other,
}

impl FailureClass {
    /// A short name for logs.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Network => "network error",
            Self::Timeout => "network timeout",
            Self::ServerSelection => "no reachable server",
            Self::PoolCleared => "connection pool cleared",
            Self::Server => "server error",
            Self::Authentication => "authentication failed",
            Self::Dns => "host name did not resolve",
            Self::Other => "driver error",
        }
    }
}

/// Server codes that mean "try again, elsewhere or later": not primary, node recovering or
/// shutting down, and network trouble seen by the server itself.
const TRANSIENT_CODES: [i32; 14] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10058, // LegacyNotPrimary
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Labels the driver or server put on errors that are safe and useful to retry.
const TRANSIENT_LABELS: [&str; 2] = [mongodb::error::RETRYABLE_WRITE_ERROR, mongodb::error::RETRYABLE_ERROR];

/// The server's duplicate-key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

impl Signals {
    /// Reads the classifier's inputs from a driver error.
    pub(crate) fn of(error: &Error) -> Self {
        let (class, code) = match error.kind.as_ref() {
            ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => (FailureClass::Timeout, None),
            ErrorKind::Io(_) => (FailureClass::Network, None),
            ErrorKind::ServerSelection { .. } => (FailureClass::ServerSelection, None),
            ErrorKind::ConnectionPoolCleared { .. } => (FailureClass::PoolCleared, None),
            ErrorKind::Authentication { .. } => (FailureClass::Authentication, None),
            ErrorKind::DnsResolve { .. } => (FailureClass::Dns, None),
            ErrorKind::Command(command) => (FailureClass::Server, Some(command.code)),
            ErrorKind::Write(WriteFailure::WriteError(write)) => (FailureClass::Server, Some(write.code)),
            ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => {
                (FailureClass::Server, Some(concern.code))
            }
            ErrorKind::InsertMany(many) => {
                let code =
                    many.write_concern_error.as_ref().map(|concern| concern.code).or_else(|| {
                        many.write_errors.as_ref().and_then(|errors| errors.first()).map(|e| e.code)
                    });
                (FailureClass::Server, code)
            }
            _ => (FailureClass::Other, None),
        };
        let mut labels: Vec<String> = error.labels().iter().cloned().collect();
        labels.extend(TRANSIENT_LABELS.iter().filter(|l| error.contains_label(l)).map(|l| (*l).to_owned()));
        labels.sort();
        labels.dedup();
        Self { class, code, labels }
    }

    /// True when another attempt may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self.class,
            FailureClass::Network
                | FailureClass::Timeout
                | FailureClass::ServerSelection
                | FailureClass::PoolCleared
                | FailureClass::Dns
        ) || self.code.is_some_and(|code| TRANSIENT_CODES.contains(&code))
            || self.labels.iter().any(|label| TRANSIENT_LABELS.contains(&label.as_str()))
    }

    /// A description for logs and errors: the class and the server's code, no text.
    pub(crate) fn describe(&self) -> String {
        match self.code {
            Some(code) => format!("{} (code {code})", self.class.name()),
            None => self.class.name().to_owned(),
        }
    }
}

/// True when the driver error is transient (see the module documentation).
#[must_use]
pub fn is_transient(error: &Error) -> bool {
    Signals::of(error).is_transient()
}

/// True when the driver error is a duplicate key (a unique index refused a write).
pub(crate) fn is_duplicate_key(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// What a retry loop needs: the policy, and where each retry is counted.
pub(crate) trait RetryContext {
    /// The policy.
    fn policy(&self) -> &RetryPolicy;
    /// Called once per retry of `operation`.
    fn retried(&self, _operation: Operation) {}
}

impl RetryContext for RetryPolicy {
    fn policy(&self) -> &RetryPolicy {
        self
    }
}

/// A policy and the metrics its retries are counted in (`storage_retry`).
#[derive(Clone)]
pub(crate) struct Retry {
    pub(crate) policy: RetryPolicy,
    pub(crate) metrics: Arc<dyn Metrics>,
}

impl Retry {
    /// `policy`, counted nowhere.
    pub(crate) fn uncounted(policy: RetryPolicy) -> Self {
        Self { policy, metrics: Arc::new(NoMetrics) }
    }
}

impl std::fmt::Debug for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.policy.fmt(f)
    }
}

impl RetryContext for Retry {
    fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn retried(&self, operation: Operation) {
        self.metrics.storage_retry(operation.as_str());
    }
}

/// Runs `call` until it succeeds, fails with a non-transient error, or `policy.attempts`
/// attempts have been made, waiting [`RetryPolicy::backoff`] between attempts.
pub(crate) async fn retrying<T, F, Fut>(
    context: &impl RetryContext,
    operation: Operation,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let policy = context.policy();
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let signals = Signals::of(&error);
                if attempt >= attempts || !signals.is_transient() {
                    return Err(error);
                }
                let wait = policy.backoff(attempt, rand::random::<f64>());
                let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                let failure = signals.describe();
                let name = operation.as_str();
                warn!(
                    operation = name,
                    attempt,
                    attempts,
                    wait_ms,
                    failure,
                    "mongodb {name} failed ({failure}); retry {} of {attempts} in {wait_ms}ms",
                    attempt + 1,
                );
                context.retried(operation);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// The shared log capture of the test binaries.
#[cfg(test)]
#[path = "../../../tests/support/logs.rs"]
mod test_logs;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use mongodb::bson::doc;
    use mongodb::error::CommandError;

    use super::*;

    fn signals(class: FailureClass, code: Option<i32>, labels: &[&str]) -> Signals {
        Signals { class, code, labels: labels.iter().map(|l| (*l).to_owned()).collect() }
    }

    fn command_error(code: i32) -> Error {
        let command: CommandError =
            mongodb::bson::from_document(doc! { "code": code, "codeName": "X", "errmsg": "secret value 42" })
                .expect("command error");
        ErrorKind::Command(command).into()
    }

    #[test]
    fn transient_failures_are_told_by_kind_code_and_label() {
        for class in [
            FailureClass::Network,
            FailureClass::Timeout,
            FailureClass::ServerSelection,
            FailureClass::PoolCleared,
        ] {
            assert!(signals(class, None, &[]).is_transient(), "{class:?}");
        }
        for code in [10107, 13435, 13436, 11600, 11602, 189, 91, 89, 9001] {
            assert!(signals(FailureClass::Server, Some(code), &[]).is_transient(), "code {code}");
        }
        assert!(signals(FailureClass::Server, Some(1), &["RetryableWriteError"]).is_transient());
        for code in [DUPLICATE_KEY, 2, 13, 18, 121] {
            assert!(!signals(FailureClass::Server, Some(code), &[]).is_transient(), "code {code}");
        }
        assert!(!signals(FailureClass::Other, None, &["SomethingElse"]).is_transient());
        assert!(
            !signals(FailureClass::Authentication, None, &[]).is_transient(),
            "wrong credentials stay wrong"
        );
        assert!(signals(FailureClass::Dns, None, &[]).is_transient());
    }

    #[test]
    fn driver_errors_are_read_without_their_text() {
        let refused: Error =
            ErrorKind::Io(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))).into();
        assert_eq!(Signals::of(&refused).class, FailureClass::Network);
        assert!(is_transient(&refused));
        let timed_out: Error =
            ErrorKind::Io(Arc::new(std::io::Error::from(std::io::ErrorKind::TimedOut))).into();
        assert_eq!(Signals::of(&timed_out).class, FailureClass::Timeout);
        let not_primary = command_error(10107);
        assert!(is_transient(&not_primary));
        assert_eq!(Signals::of(&not_primary).describe(), "server error (code 10107)");
        let duplicate = command_error(DUPLICATE_KEY);
        assert!(!is_transient(&duplicate));
        assert!(is_duplicate_key(&duplicate));
        assert!(!Signals::of(&duplicate).describe().contains("secret"), "the server's text is not repeated");
        let shut_down: Error = ErrorKind::Shutdown.into();
        assert!(!is_transient(&shut_down));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy {
            attempts: 10,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let lowest: Vec<_> = (1..=7).map(|retry| policy.backoff(retry, 0.0).as_millis()).collect();
        let highest: Vec<_> = (1..=7).map(|retry| policy.backoff(retry, 0.999_999).as_millis()).collect();
        assert_eq!(lowest, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(highest, [99, 199, 399, 799, 1599, 1999, 1999]);
        assert_eq!(policy.backoff(1000, 1.0), Duration::from_secs(2), "a huge retry count saturates");
        assert_eq!(policy.backoff(1, 5.0), Duration::from_millis(100), "jitter is clamped");
    }

    /// The tests that reach `retrying`'s log line run one at a time: a log line's callsite
    /// caches whether anyone listens when first reached, and a test reaching it on another
    /// thread while the capture is being installed can leave it cached as unheard.
    static LOG_CALLSITE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn each_retry_logs_one_line_with_the_operation_and_attempt_and_no_text() {
        let _alone = LOG_CALLSITE.lock().await;
        let (logs, _guard) = super::test_logs::capture_logs(tracing::Level::INFO);
        let policy =
            RetryPolicy { attempts: 3, delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
        let _: Result<(), Error> =
            retrying(&policy, Operation::InsertMessage, || async { Err(command_error(10107)) }).await;
        let logs = String::from_utf8(logs.lock().expect("logs").clone()).expect("text");
        let lines: Vec<&str> = logs.lines().filter(|line| line.contains("retry")).collect();
        assert_eq!(lines.len(), 2, "one line per retry (3 attempts): {logs}");
        assert!(
            lines[0].contains("mongodb insert_message failed (server error (code 10107)); retry 2 of 3"),
            "{logs}"
        );
        assert!(lines[1].contains("retry 3 of 3"), "{logs}");
        assert!(!logs.contains("secret value"), "the server's text is never logged: {logs}");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_attempts_and_others_never() {
        let _alone = LOG_CALLSITE.lock().await;
        let policy =
            RetryPolicy { attempts: 3, delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) };
        let calls = AtomicU32::new(0);
        let result: Result<(), Error> = retrying(&policy, Operation::Ping, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(command_error(10107)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.swap(0, Ordering::SeqCst), 3, "all attempts used");

        let result: Result<(), Error> = retrying(&policy, Operation::Ping, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(command_error(DUPLICATE_KEY)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1, "a permanent failure is not retried");

        let result = retrying(&policy, Operation::Ping, || {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move { if call == 0 { Err(command_error(91)) } else { Ok(call) } }
        })
        .await;
        assert_eq!(result.expect("second attempt succeeds"), 1);
    }
}
