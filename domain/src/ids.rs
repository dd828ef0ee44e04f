//! Identifier newtypes. Each is parsed once at the edge ("parse, don't validate") so the
//! rest of the code never re-checks a length or an empty string.

use std::fmt;
use std::sync::Arc;

use crate::validation::{InvalidValue, limits};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Accepts a non-empty value of at most the field's byte limit without
            /// control characters.
            ///
            /// # Errors
            /// [`InvalidValue`] naming the field when the value breaks a rule.
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                if value.is_empty() {
                    return Err(InvalidValue::Empty { field: $field });
                }
                if value.len() > $max {
                    return Err(InvalidValue::TooLong { field: $field, max: $max });
                }
                if value.chars().any(char::is_control) {
                    return Err(InvalidValue::Malformed { field: $field });
                }
                Ok(Self(Arc::from(value)))
            }

            /// The value as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A conversation's id (≤128 bytes).
    SessionId, "session_id", limits::SESSION_ID_MAX_BYTES
);
string_id!(
    /// The authenticated user's id, from the token's `user_id` (or `sub`) claim.
    UserId, "user_id", limits::USER_ID_MAX_BYTES
);
string_id!(
    /// A stored message's id; the chunks of one answer all carry it.
    MessageId, "message_id", limits::MESSAGE_ID_MAX_BYTES
);
string_id!(
    /// A configured model (provider) id.
    ModelId, "model_id", limits::MODEL_ID_MAX_BYTES
);
string_id!(
    /// The client's idempotency key for a message (≤64 bytes).
    ClientMessageId, "client_message_id", limits::CLIENT_MESSAGE_ID_MAX_BYTES
);

/// `bytes` as lowercase hexadecimal, two digits a byte (ids and digests written as text).
#[must_use]
pub fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_overlong_and_control_characters() {
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse(&"a".repeat(129)).is_err());
        assert!(SessionId::parse(&"a".repeat(128)).is_ok());
        assert!(ClientMessageId::parse(&"x".repeat(65)).is_err());
        assert!(UserId::parse("bad\nid").is_err());
        assert_eq!(ModelId::parse("demo").map(|m| m.to_string()).as_deref(), Ok("demo"));
    }

    #[test]
    fn bytes_are_written_as_two_lowercase_digits_each() {
        assert_eq!(lower_hex(&[]), "");
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
