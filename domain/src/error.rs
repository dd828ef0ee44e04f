//! The one table of error codes. Every code has its wire name, whether a client can
//! recover from it on the same socket, and the HTTP status it maps to when it is the
//! answer to an HTTP request. Adapters never invent codes of their own.

use std::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $wire:literal, recoverable: $rec:literal, http: $status:literal; )*) => {
        /// An error code of the wire contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire spelling, e.g. `INVALID_FORMAT`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire,)* }
            }

            /// Whether the client may keep using the socket after this error.
            #[must_use]
            pub const fn recoverable(self) -> bool {
                match self { $(Self::$variant => $rec,)* }
            }

            /// The HTTP status for this code when it answers an HTTP request.
            #[must_use]
            pub const fn http_status(self) -> u16 {
                match self { $(Self::$variant => $status,)* }
            }
        }
    };
}

error_codes! {
    /// Malformed JSON, unknown type, a field over its limit, an unknown model.
    InvalidFormat => "INVALID_FORMAT", recoverable: true, http: 400;
    /// A required field is absent.
    MissingField => "MISSING_FIELD", recoverable: true, http: 400;
    /// The request is not allowed for this caller (e.g. a session that is not theirs),
    /// or no token was presented to an HTTP route.
    Unauthorized => "UNAUTHORIZED", recoverable: true, http: 401;
    /// The token is malformed, badly signed, of a refused algorithm, expired, or lacks a
    /// required claim.
    InvalidToken => "INVALID_TOKEN", recoverable: false, http: 401;
    /// The caller lacks the role, or the Origin is not allowed.
    Forbidden => "FORBIDDEN", recoverable: false, http: 403;
    /// The thing asked for does not exist (or is not the caller's).
    NotFound => "NOT_FOUND", recoverable: true, http: 404;
    /// Another party already holds the resource (e.g. another admin assists).
    Conflict => "CONFLICT", recoverable: true, http: 409;
    /// The caller sent too much too fast; `retry_after` says when to try again.
    TooManyRequests => "TOO_MANY_REQUESTS", recoverable: true, http: 429;
    /// The caller holds too many sockets, or the server holds too many in total.
    ConnectionLimitExceeded => "CONNECTION_LIMIT_EXCEEDED", recoverable: false, http: 429;
    /// The model provider could not be reached or failed.
    LlmUnavailable => "LLM_UNAVAILABLE", recoverable: true, http: 502;
    /// The model provider was silent too long or the answer took too long.
    LlmTimeout => "LLM_TIMEOUT", recoverable: true, http: 504;
    /// Storage failed.
    DatabaseError => "DATABASE_ERROR", recoverable: true, http: 503;
    /// The server could not do it now (busy queue, internal failure).
    ServiceError => "SERVICE_ERROR", recoverable: true, http: 500;
    /// The session has ended and takes no new messages.
    SessionEnded => "SESSION_ENDED", recoverable: true, http: 409;
    /// The socket's token expired while connected; the socket is closed after this.
    TokenExpired => "TOKEN_EXPIRED", recoverable: false, http: 401;
    /// The server is draining for shutdown.
    ServiceUnavailable => "SERVICE_UNAVAILABLE", recoverable: false, http: 503;
    /// State the replicas share (limits, socket counts) cannot be reached just now; the
    /// same request passes once it answers again.
    SharedStateUnavailable => "SHARED_STATE_UNAVAILABLE", recoverable: true, http: 503;
    /// A request body or parameter is wrong (HTTP only).
    BadRequest => "BAD_REQUEST", recoverable: true, http: 400;
    /// The route exists but not with this HTTP method (HTTP only).
    MethodNotAllowed => "METHOD_NOT_ALLOWED", recoverable: true, http: 405;
    /// An upload is larger than the service takes.
    FileTooLarge => "FILE_TOO_LARGE", recoverable: false, http: 413;
    /// An upload's content is of a kind the service does not take.
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", recoverable: false, http: 415;
    /// The user's uploads for the day reached their count or bytes; tomorrow (UTC) they
    /// may upload again.
    UploadLimitReached => "UPLOAD_LIMIT_REACHED", recoverable: true, http: 429;
    /// An upload did not finish within the time allowed (it stalled or crawled); nothing
    /// was kept.
    UploadTimeout => "UPLOAD_TIMEOUT", recoverable: true, http: 408;
    /// A download asked for a byte range the file does not have.
    RangeNotSatisfiable => "RANGE_NOT_SATISFIABLE", recoverable: false, http: 416;
    /// The object storage holding uploaded files failed or could not be reached.
    FileStorageUnavailable => "FILE_STORAGE_UNAVAILABLE", recoverable: true, http: 503;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_upper_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(name.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{name}");
        }
    }

    #[test]
    fn token_expiry_is_the_only_socket_level_fatal_chat_error() {
        assert!(!ErrorCode::TokenExpired.recoverable());
        assert!(ErrorCode::TooManyRequests.recoverable());
        assert_eq!(ErrorCode::ConnectionLimitExceeded.http_status(), 429);
        assert_eq!(ErrorCode::InvalidToken.http_status(), 401);
    }

    #[test]
    fn an_error_code_displays_as_its_wire_name() {
        let expected = [
            (ErrorCode::InvalidFormat, "INVALID_FORMAT"),
            (ErrorCode::MissingField, "MISSING_FIELD"),
            (ErrorCode::Unauthorized, "UNAUTHORIZED"),
            (ErrorCode::InvalidToken, "INVALID_TOKEN"),
            (ErrorCode::Forbidden, "FORBIDDEN"),
            (ErrorCode::NotFound, "NOT_FOUND"),
            (ErrorCode::Conflict, "CONFLICT"),
            (ErrorCode::TooManyRequests, "TOO_MANY_REQUESTS"),
            (ErrorCode::ConnectionLimitExceeded, "CONNECTION_LIMIT_EXCEEDED"),
            (ErrorCode::LlmUnavailable, "LLM_UNAVAILABLE"),
            (ErrorCode::LlmTimeout, "LLM_TIMEOUT"),
            (ErrorCode::DatabaseError, "DATABASE_ERROR"),
            (ErrorCode::ServiceError, "SERVICE_ERROR"),
            (ErrorCode::SessionEnded, "SESSION_ENDED"),
            (ErrorCode::TokenExpired, "TOKEN_EXPIRED"),
            (ErrorCode::ServiceUnavailable, "SERVICE_UNAVAILABLE"),
            (ErrorCode::SharedStateUnavailable, "SHARED_STATE_UNAVAILABLE"),
            (ErrorCode::BadRequest, "BAD_REQUEST"),
            (ErrorCode::MethodNotAllowed, "METHOD_NOT_ALLOWED"),
            (ErrorCode::FileTooLarge, "FILE_TOO_LARGE"),
            (ErrorCode::UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
            (ErrorCode::UploadLimitReached, "UPLOAD_LIMIT_REACHED"),
            (ErrorCode::UploadTimeout, "UPLOAD_TIMEOUT"),
            (ErrorCode::RangeNotSatisfiable, "RANGE_NOT_SATISFIABLE"),
            (ErrorCode::FileStorageUnavailable, "FILE_STORAGE_UNAVAILABLE"),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, name) in expected {
            assert_eq!(code.to_string(), name);
        }
    }
}
