//! Encryption at rest: AES-256-GCM for message content, session names and file URLs.
//!
//! A sealed value is stored as BSON binary (never as a string, so a plaintext can never be
//! mistaken for a ciphertext or the other way round) whose bytes are
//!
//! ```text
//! enc:v1:<key_id>:  ‖  nonce (12 bytes)  ‖  ciphertext ‖ tag (16 bytes)
//! ```
//!
//! The header names the key, so a key can be rotated: new values are sealed with the
//! current key (`ENCRYPTION_KEY` / `ENCRYPTION_KEY_ID`) and values sealed with an older one
//! open as long as it is listed in `ENCRYPTION_OLD_KEYS`. The header is also the
//! associated data of the seal: changing the key id of a stored value breaks its tag.
//!
//! Invariants:
//! - a value that does not open (unknown key, wrong key, tampered bytes, not UTF-8) is an
//!   error, never returned as text;
//! - no key material appears in any `Debug` or `Display` output, and no error carries the
//!   content it failed on;
//! - every seal uses a fresh random 96-bit nonce from the operating system.
//!
//! The earlier Go service's format (`base64(nonce ‖ ciphertext ‖ tag)`, no key id, the raw
//! bytes of a 32-character string as the key) is opened by [`KeyRing::open_legacy`].

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use thiserror::Error;

/// The fixed start of every sealed value.
const MAGIC: &[u8] = b"enc:v1:";
/// AES-GCM's standard nonce length.
const NONCE_LEN: usize = 12;
/// AES-GCM's tag length.
const TAG_LEN: usize = 16;

type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;
/// Longest key id: it is repeated in every sealed value.
const KEY_ID_MAX_LEN: usize = 32;

/// A configuration problem with a key or key id. Names the rule broken, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The key is not 32 bytes in any accepted form.
    #[error("must be 32 bytes: 64 hex characters, base64 of 32 bytes, or exactly 32 characters")]
    BadKey,
    /// The key id breaks its rule.
    #[error("a key id is 1 to 32 characters among A-Z a-z 0-9 . _ -")]
    BadKeyId,
    /// An entry of `ENCRYPTION_OLD_KEYS` is not `id:key`.
    #[error("old keys are a comma-separated list of id:key")]
    BadOldKeys,
    /// Two keys share an id, so a stored value could not say which one sealed it.
    #[error("key id {0:?} is used twice")]
    DuplicateKeyId(String),
}

/// A stored value that does not open. Carries no content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The bytes are not a sealed value of a known version.
    #[error("encrypted value is malformed")]
    Malformed,
    /// Sealed with a key that is not configured (add it to `ENCRYPTION_OLD_KEYS`).
    #[error("encrypted with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The tag does not match: wrong key material or tampered bytes.
    #[error("encrypted value failed authentication (wrong key or altered data)")]
    Authentication,
    /// It opened, but the plaintext is not UTF-8 text.
    #[error("decrypted value is not text")]
    NotText,
    /// The operating system's random source failed.
    #[error("no randomness for a nonce")]
    Randomness,
    /// An encrypted value was found but no key is configured.
    #[error("encrypted value found but ENCRYPTION_KEY is not set")]
    NoKey,
}

/// How a key was written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// 64 hexadecimal characters.
    Hex,
    /// Base64 (standard alphabet, with or without padding) of 32 bytes.
    Base64,
    /// Exactly 32 bytes of text used as they are: the earlier service's form. Such keys
    /// usually carry far less than 256 bits of entropy, so configuration warns about them.
    Raw,
}

/// 32 bytes of key material.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl EncryptionKey {
    /// Reads a key written as 64 hex characters, as base64 of 32 bytes, or as exactly 32
    /// bytes of text (in that order of preference; the three forms have different lengths,
    /// so none is ambiguous).
    ///
    /// # Errors
    /// [`KeyError::BadKey`].
    pub fn parse(text: &str) -> Result<(Self, KeyFormat), KeyError> {
        let mut bytes = [0u8; 32];
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (slot, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                *slot = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
            }
            return Ok((Self(bytes), KeyFormat::Hex));
        }
        if text.len() == 32 {
            bytes.copy_from_slice(text.as_bytes());
            return Ok((Self(bytes), KeyFormat::Raw));
        }
        let decoded =
            STANDARD.decode(text).or_else(|_| STANDARD_NO_PAD.decode(text)).map_err(|_| KeyError::BadKey)?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| KeyError::BadKey)?;
        Ok((Self(bytes), KeyFormat::Base64))
    }

    /// A key from its raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }
}

const fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        // Only called on ASCII hex digits.
        _ => digit - b'A' + 10,
    }
}

/// The name of a key, written into every value it seals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Accepts 1 to 32 characters among `A-Z a-z 0-9 . _ -` (no `:`, the header's
    /// separator).
    ///
    /// # Errors
    /// [`KeyError::BadKeyId`].
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let valid = !text.is_empty()
            && text.len() <= KEY_ID_MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid { Ok(Self(text.to_owned())) } else { Err(KeyError::BadKeyId) }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads `ENCRYPTION_OLD_KEYS`: `id:key,id:key,…` (spaces around entries ignored).
///
/// # Errors
/// [`KeyError::BadOldKeys`], or the error of a bad id or key.
pub fn parse_old_keys(text: &str) -> Result<Vec<(KeyId, EncryptionKey)>, KeyError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (id, key) = entry.split_once(':').ok_or(KeyError::BadOldKeys)?;
            Ok((KeyId::parse(id.trim())?, EncryptionKey::parse(key.trim())?.0))
        })
        .collect()
}

/// The configured keys: the current one seals, every one opens.
#[derive(Clone)]
pub struct KeyRing {
    /// The current key first, then the old ones in configuration order.
    keys: Vec<(KeyId, Aes256Gcm)>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring sealing with `current` and opening with it and every old key.
    ///
    /// # Errors
    /// [`KeyError::DuplicateKeyId`] when two keys share an id.
    pub fn new(
        current_id: KeyId,
        current: &EncryptionKey,
        old: &[(KeyId, EncryptionKey)],
    ) -> Result<Self, KeyError> {
        let mut keys = vec![(current_id, current.cipher())];
        for (id, key) in old {
            if keys.iter().any(|(known, _)| known == id) {
                return Err(KeyError::DuplicateKeyId(id.as_str().to_owned()));
            }
            keys.push((id.clone(), key.cipher()));
        }
        Ok(Self { keys })
    }

    /// The id of the key new values are sealed with.
    #[must_use]
    pub fn current_key_id(&self) -> &KeyId {
        &self.keys[0].0
    }

    /// Seals `plaintext` with the current key.
    ///
    /// # Errors
    /// [`CryptoError::Randomness`] if the operating system gives no random nonce.
    pub fn seal(&self, plaintext: &str) -> Result<Vec<u8>, CryptoError> {
        let (id, cipher) = &self.keys[0];
        let header = header(id);
        let nonce = Nonce::try_generate().map_err(|_| CryptoError::Randomness)?;
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: &header })
            // Encryption only fails for inputs beyond GCM's 64 GiB limit.
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = header;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value made by [`seal`](Self::seal) with any configured key.
    ///
    /// # Errors
    /// A [`CryptoError`] when it is malformed, its key is not configured, or it does not
    /// authenticate.
    pub fn open(&self, sealed: &[u8]) -> Result<String, CryptoError> {
        let rest = sealed.strip_prefix(MAGIC).ok_or(CryptoError::Malformed)?;
        let colon = rest.iter().position(|&b| b == b':').ok_or(CryptoError::Malformed)?;
        let id = std::str::from_utf8(&rest[..colon]).map_err(|_| CryptoError::Malformed)?;
        let body = &rest[colon + 1..];
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(known, _)| known.as_str() == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.chars().take(KEY_ID_MAX_LEN).collect()))?;
        let header_len = MAGIC.len() + colon + 1;
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let plain = cipher
            .decrypt(&nonce, Payload { msg: ciphertext, aad: &sealed[..header_len] })
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plain).map_err(|_| CryptoError::NotText)
    }

    /// Opens a value of the earlier Go service: `base64(nonce ‖ ciphertext ‖ tag)`, no
    /// associated data, no key id, so every configured key is tried.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] when it is not such a value,
    /// [`CryptoError::Authentication`] when no configured key opens it.
    pub fn open_legacy(&self, text: &str) -> Result<String, CryptoError> {
        let bytes = legacy_ciphertext_bytes(text).ok_or(CryptoError::Malformed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let plain = self
            .keys
            .iter()
            .find_map(|(_, cipher)| cipher.decrypt(&nonce, ciphertext).ok())
            .ok_or(CryptoError::Authentication)?;
        String::from_utf8(plain).map_err(|_| CryptoError::NotText)
    }

    /// Seals like the earlier Go service did (for tests of the migration path).
    ///
    /// # Errors
    /// [`CryptoError::Randomness`].
    pub fn seal_legacy(key: &EncryptionKey, plaintext: &str) -> Result<String, CryptoError> {
        let nonce = Nonce::try_generate().map_err(|_| CryptoError::Randomness)?;
        let sealed =
            key.cipher().encrypt(&nonce, plaintext.as_bytes()).map_err(|_| CryptoError::Malformed)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }
}

/// The bytes of a legacy ciphertext if `text` can be one: standard base64 of at least a
/// nonce and a tag. Legacy plaintext (written while the Go service had no key) is told
/// apart by this shape; see `legacy.rs`.
#[must_use]
pub fn legacy_ciphertext_bytes(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    (bytes.len() >= NONCE_LEN + TAG_LEN).then_some(bytes)
}

fn header(id: &KeyId) -> Vec<u8> {
    let mut header = Vec::with_capacity(MAGIC.len() + id.0.len() + 1);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(id.0.as_bytes());
    header.push(b':');
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes([byte; 32])
    }

    fn ring(id: &str, byte: u8) -> KeyRing {
        KeyRing::new(KeyId::parse(id).expect("id"), &key(byte), &[]).expect("ring")
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_text() {
        let ring = ring("k1", 7);
        for text in ["", "hello", "日本語のテキスト", &"x".repeat(10_000)] {
            let sealed = ring.seal(text).expect("seal");
            assert!(sealed.starts_with(b"enc:v1:k1:"));
            if !text.is_empty() {
                assert!(!sealed.windows(text.len()).any(|w| w == text.as_bytes()), "plaintext visible");
            }
            assert_eq!(ring.open(&sealed).expect("open"), text);
        }
        assert_ne!(
            ring.seal("same").expect("seal"),
            ring.seal("same").expect("seal"),
            "fresh nonce per seal"
        );
    }

    #[test]
    fn a_wrong_key_does_not_open() {
        let sealed = ring("k1", 1).seal("secret").expect("seal");
        assert_eq!(ring("k1", 2).open(&sealed), Err(CryptoError::Authentication));
        assert_eq!(ring("k2", 1).open(&sealed), Err(CryptoError::UnknownKey("k1".into())));
    }

    #[test]
    fn tampered_bytes_or_key_id_do_not_open() {
        let ring_12 = KeyRing::new(
            KeyId::parse("a").expect("id"),
            &key(1),
            &[(KeyId::parse("b").expect("id"), key(1))],
        )
        .expect("ring");
        let sealed = ring_12.seal("secret").expect("seal");
        for position in [sealed.len() - 1, sealed.len() - 20, 12] {
            let mut tampered = sealed.clone();
            tampered[position] ^= 1;
            assert!(ring_12.open(&tampered).is_err(), "a flipped bit at {position} must not open");
        }
        // Same key material under another id: the header is authenticated.
        let mut renamed = sealed.clone();
        renamed[7] = b'b';
        assert_eq!(ring_12.open(&renamed), Err(CryptoError::Authentication));
        assert_eq!(ring_12.open(&sealed[..20]), Err(CryptoError::Malformed));
        assert_eq!(ring_12.open(b"plain text"), Err(CryptoError::Malformed));
    }

    #[test]
    fn rotation_seals_with_the_new_key_and_still_opens_old_values() {
        let old_sealed = ring("2024", 1).seal("old message").expect("seal");
        let rotated = KeyRing::new(
            KeyId::parse("2025").expect("id"),
            &key(2),
            &[(KeyId::parse("2024").expect("id"), key(1))],
        )
        .expect("ring");
        assert_eq!(rotated.open(&old_sealed).expect("old key still opens"), "old message");
        let new_sealed = rotated.seal("new message").expect("seal");
        assert!(new_sealed.starts_with(b"enc:v1:2025:"));
        assert_eq!(ring("2024", 1).open(&new_sealed), Err(CryptoError::UnknownKey("2025".into())));
        let duplicate = KeyRing::new(
            KeyId::parse("x").expect("id"),
            &key(1),
            &[(KeyId::parse("x").expect("id"), key(2))],
        );
        assert!(matches!(duplicate, Err(KeyError::DuplicateKeyId(_))));
    }

    #[test]
    fn keys_parse_in_their_three_forms_and_nothing_else() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let (from_hex, format) = EncryptionKey::parse(hex).expect("hex");
        assert_eq!(format, KeyFormat::Hex);
        assert_eq!(from_hex.0[..4], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(from_hex.0[31], 0xff);
        let b64 = STANDARD.encode([9u8; 32]);
        assert_eq!(EncryptionKey::parse(&b64).expect("base64").1, KeyFormat::Base64);
        assert_eq!(EncryptionKey::parse(b64.trim_end_matches('=')).expect("unpadded").0.0, [9u8; 32]);
        let (raw, format) = EncryptionKey::parse("0123456789abcdef0123456789abcdef").expect("raw");
        assert_eq!((format, raw.0[0]), (KeyFormat::Raw, b'0'));
        for bad in ["", "short", &"a".repeat(33), &"g".repeat(64), &STANDARD.encode([1u8; 31])] {
            assert_eq!(EncryptionKey::parse(bad).map(|_| ()), Err(KeyError::BadKey), "{bad:?}");
        }
        assert_eq!(format!("{:?}", raw), "EncryptionKey(<redacted>)");
    }

    #[test]
    fn old_keys_and_key_ids_are_checked() {
        let hex = "ab".repeat(32);
        let parsed = parse_old_keys(&format!("a:{hex}, b:0123456789abcdef0123456789abcdef")).expect("list");
        assert_eq!(parsed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(parse_old_keys("").expect("empty").is_empty());
        assert_eq!(parse_old_keys(&hex).map(|_| ()), Err(KeyError::BadOldKeys));
        assert_eq!(parse_old_keys("a:short").map(|_| ()), Err(KeyError::BadKey));
        for bad in ["", "a:b", "has space", &"x".repeat(33)] {
            assert_eq!(KeyId::parse(bad), Err(KeyError::BadKeyId), "{bad:?}");
        }
        let ring = ring("visible-id", 3);
        let debug = format!("{ring:?}");
        assert!(debug.contains("visible-id") && !debug.contains("[3"), "{debug}");
    }

    #[test]
    fn legacy_values_open_with_any_configured_key() {
        let legacy_key = EncryptionKey::parse("0123456789abcdef0123456789abcdef").expect("raw").0;
        let sealed = KeyRing::seal_legacy(&legacy_key, "from the Go service").expect("seal");
        let ring = KeyRing::new(
            KeyId::parse("new").expect("id"),
            &key(5),
            &[(KeyId::parse("go").expect("id"), legacy_key)],
        )
        .expect("ring");
        assert_eq!(ring.open_legacy(&sealed).expect("opens"), "from the Go service");
        assert_eq!(super::tests::ring("other", 6).open_legacy(&sealed), Err(CryptoError::Authentication));
        assert_eq!(ring.open_legacy("plain text"), Err(CryptoError::Malformed));
    }
}
