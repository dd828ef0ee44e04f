//! Failure wording shared by the channels. Error texts are for operators' logs: they say
//! what failed (a status or reply code, "connection refused", a timeout) in words built
//! here, never by forwarding a library's or a server's text, which can hold a request
//! URL, an echoed credential or user data.

use std::error::Error;
use std::io;
use std::time::Duration;

/// The kind of the first I/O error in `error`'s source chain ("connection refused",
/// "connection reset", …), if there is one.
#[must_use]
pub fn io_kind(error: &(dyn Error + 'static)) -> Option<io::ErrorKind> {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

/// A duration as operators read it in a log line: `10s`, `250ms`.
#[must_use]
pub fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_io_error_below_a_wrapper() {
        #[derive(Debug)]
        struct Wrapper(io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Wrapper(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(io_kind(&error), Some(io::ErrorKind::ConnectionRefused));
        assert_eq!(io_kind(&std::fmt::Error), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    }
}
