//! What is kept about a stored file, beside its bytes: who uploaded it, where it is
//! attached, what it is. The bytes live in object storage under the file's id; this
//! record lives in the session store.
//!
//! Invariants:
//! - **A file is attached to at most one session, once**: an upload starts unattached
//!   ([`StoredFile::session`] is `None`) and a chat message in one session attaches it;
//!   it never moves to another session.
//! - **The media type, size and digest are the server's**, measured on the bytes as
//!   stored (after metadata was stripped), never taken from the client.

use std::fmt;
use std::sync::Arc;

use super::{ACCEPTED, FileId, FileKind, MediaType};
use crate::{SessionId, Timestamp, UserId};

/// A stored file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its id (also its key in object storage).
    pub id: FileId,
    /// Who uploaded it.
    pub owner: UserId,
    /// The session it is attached to, once a message attached it.
    pub session: Option<SessionId>,
    /// The name to show and to download it as ([`super::file_name`] of the client's).
    pub name: Arc<str>,
    /// Its type, sniffed from its content.
    pub media_type: MediaType,
    /// Its size as stored, in bytes.
    pub size: u64,
    /// The SHA-256 of the stored bytes, lowercase hexadecimal.
    pub sha256: String,
    /// When the upload finished.
    pub created_at: Timestamp,
    /// When a message attached it.
    pub attached_at: Option<Timestamp>,
}

impl StoredFile {
    /// Its kind.
    #[must_use]
    pub const fn kind(&self) -> FileKind {
        self.media_type.kind()
    }

    /// Whether a message of `owner` in `session` may attach it: it is theirs and not
    /// attached elsewhere (attaching it again in the same session is allowed: a resent
    /// message is one message).
    #[must_use]
    pub fn attachable_by(&self, owner: &UserId, session: &SessionId) -> bool {
        self.owner == *owner && self.session.as_ref().is_none_or(|attached| attached == session)
    }
}

impl StoredFile {
    /// The `Content-Disposition` it is served with: `inline` for an image (shown in the
    /// page), `attachment` for anything else (saved, never rendered by the browser), with
    /// its name twice: an ASCII fallback (`filename`, quotes and backslashes and anything
    /// not printable ASCII replaced by `_`) and the exact name (`filename*`, RFC 8187).
    #[must_use]
    pub fn content_disposition(&self) -> String {
        use fmt::Write as _;
        let disposition = if self.kind() == FileKind::Image { "inline" } else { "attachment" };
        let fallback: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
            .collect();
        let mut value = format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''");
        for byte in self.name.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                value.push(char::from(byte));
            } else {
                let _ = write!(value, "%{byte:02X}");
            }
        }
        value
    }
}

impl MediaType {
    /// The accepted media type of this essence (as stored), if it is one.
    #[must_use]
    pub fn from_essence(essence: &str) -> Option<Self> {
        ACCEPTED.iter().copied().find(|media| media.essence().eq_ignore_ascii_case(essence))
    }
}

/// Why a stored file is due for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryReason {
    /// Uploaded and never attached for longer than the orphan age.
    Orphan,
    /// Its session ended longer ago than the retention.
    Retention,
}

impl ExpiryReason {
    /// Its name in metrics and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::Retention => "retention",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(owner: &str, session: Option<&str>) -> StoredFile {
        StoredFile {
            id: FileId::from_random([7; 16]),
            owner: UserId::parse(owner).expect("user"),
            session: session.map(|id| SessionId::parse(id).expect("session")),
            name: Arc::from("a.png"),
            media_type: MediaType::from_essence("image/png").expect("png"),
            size: 3,
            sha256: String::new(),
            created_at: Timestamp::default(),
            attached_at: None,
        }
    }

    #[test]
    fn only_its_owner_attaches_a_file_and_only_in_one_session() {
        let alice = UserId::parse("alice").expect("user");
        let bob = UserId::parse("bob").expect("user");
        let one = SessionId::parse("one").expect("session");
        let two = SessionId::parse("two").expect("session");
        assert!(file("alice", None).attachable_by(&alice, &one));
        assert!(!file("alice", None).attachable_by(&bob, &one), "not bob's");
        assert!(file("alice", Some("one")).attachable_by(&alice, &one), "again in the same session");
        assert!(!file("alice", Some("one")).attachable_by(&alice, &two), "never moved");
    }

    #[test]
    fn an_image_is_shown_inline_anything_else_is_saved_and_the_name_is_kept_safely() {
        let mut image = file("alice", None);
        image.name = Arc::from("cat \"1\".png");
        assert_eq!(
            image.content_disposition(),
            "inline; filename=\"cat _1_.png\"; filename*=UTF-8''cat%20%221%22.png"
        );
        let mut document = file("alice", None);
        document.media_type = MediaType::from_essence("application/pdf").expect("pdf");
        document.name = Arc::from("résumé\\x.pdf");
        assert_eq!(
            document.content_disposition(),
            "attachment; filename=\"r_sum__x.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%5Cx.pdf"
        );
    }

    #[test]
    fn every_accepted_type_is_read_back_from_its_essence_and_nothing_else_is() {
        for media in ACCEPTED {
            assert_eq!(MediaType::from_essence(media.essence()), Some(media));
            assert_eq!(MediaType::from_essence(&media.essence().to_ascii_uppercase()), Some(media));
        }
        assert_eq!(MediaType::from_essence("text/html"), None);
        assert_eq!(MediaType::from_essence(""), None);
        assert_eq!(ExpiryReason::Orphan.as_str(), "orphan");
        assert_eq!(ExpiryReason::Retention.as_str(), "retention");
    }
}
