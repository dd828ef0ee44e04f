//! Secrets: the domain's wrapper that never prints its value, and the strength rule for
//! `JWT_SECRET` (the deployment's secret-creation script applies the same rule).

use std::collections::BTreeSet;

use rand::Rng;

/// Substrings that make a `JWT_SECRET` weak (any case). The deployment's secret script
/// applies the same list; a test checks they agree.
pub const WEAK_PATTERNS: &[&str] = &[
    "secret",
    "password",
    "changeme",
    "change-me",
    "change_me",
    "default",
    "example",
    "placeholder",
    "replace_with",
    "your-",
    "test123",
    "12345",
    "qwerty",
    "admin",
];
const MIN_SECRET_BYTES: usize = 32;
const MIN_SECRET_DISTINCT_CHARS: usize = 8;

pub use chatbox_domain::Secret;

/// Why a JWT secret is refused. Never carries the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretProblem {
    /// Shorter than 32 bytes.
    TooShort,
    /// Contains a well-known weak pattern.
    WeakPattern(&'static str),
    /// Fewer than 8 distinct characters.
    TooFewDistinctCharacters,
}

impl std::fmt::Display for SecretProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(f, "must be at least {MIN_SECRET_BYTES} bytes"),
            Self::WeakPattern(pattern) => write!(f, "contains the weak pattern \"{pattern}\""),
            Self::TooFewDistinctCharacters => {
                write!(f, "must contain at least {MIN_SECRET_DISTINCT_CHARS} distinct characters")
            }
        }
    }
}

/// The first reason `secret` is too weak, if any.
#[must_use]
pub fn weak_secret_reason(secret: &str) -> Option<SecretProblem> {
    if secret.len() < MIN_SECRET_BYTES {
        return Some(SecretProblem::TooShort);
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(pattern) = WEAK_PATTERNS.iter().find(|p| lower.contains(*p)) {
        return Some(SecretProblem::WeakPattern(pattern));
    }
    if secret.chars().collect::<BTreeSet<_>>().len() < MIN_SECRET_DISTINCT_CHARS {
        return Some(SecretProblem::TooFewDistinctCharacters);
    }
    None
}

/// A strong random secret for `--dev` runs that were given none.
pub(super) fn generated_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..48).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_named_by_their_reason() {
        assert_eq!(weak_secret_reason("short"), Some(SecretProblem::TooShort));
        assert_eq!(
            weak_secret_reason("my-super-secret-key-that-is-long-enough"),
            Some(SecretProblem::WeakPattern("secret"))
        );
        assert_eq!(
            weak_secret_reason("abababababababababababababababababab"),
            Some(SecretProblem::TooFewDistinctCharacters)
        );
        assert_eq!(weak_secret_reason(&generated_secret()), None);
        assert_eq!(format!("{:?}", Secret::new("k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA")), "***");
    }
}
