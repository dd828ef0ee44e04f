//! The file document: one per uploaded file, in `<collection>_files`, `_id` the file id.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `_id` | string | the file id (32 hex digits; also its key in object storage) |
//! | `owner` | string | who uploaded it |
//! | `session` | string or null | the session it is attached to; null until attached |
//! | `name` | string or binary | the name to show; user text, so **encrypted** like message content |
//! | `media_type` | string | the sniffed media type's essence |
//! | `size` | int64 | bytes as stored |
//! | `sha256` | string | lowercase hex digest of the stored bytes |
//! | `created_at` | date | when the upload finished |
//! | `attached_at` | date or null | when a message attached it |
//! | `session_ended_at` | date, absent until set | its session's end time, copied by the session's `end` (storage only, so that expired files are one indexed query) |

use chatbox_domain::upload::{FileId, MediaType, StoredFile};
use chatbox_domain::{SessionId, UserId};
use mongodb::bson::{Bson, Document, doc};

use super::{
    Codec, DocumentError, bson_count_value, bson_date, count, date, field, optional_date, optional_string,
    parsed, required, string,
};

/// Field names of the file document (besides the shared `_id`, `name`, `created_at`).
pub(crate) mod file_field {
    pub(crate) const OWNER: &str = "owner";
    pub(crate) const SESSION: &str = "session";
    pub(crate) const MEDIA_TYPE: &str = "media_type";
    pub(crate) const SIZE: &str = "size";
    pub(crate) const SHA256: &str = "sha256";
    pub(crate) const ATTACHED_AT: &str = "attached_at";
    pub(crate) const SESSION_ENDED_AT: &str = "session_ended_at";
}

use file_field::{ATTACHED_AT, MEDIA_TYPE, OWNER, SESSION, SHA256, SIZE};

/// The stored form of `file` (without `session_ended_at`, which only `end` sets).
pub(crate) fn file_document(file: &StoredFile, codec: &Codec) -> Result<Document, DocumentError> {
    Ok(doc! {
        field::ID: file.id.as_str(),
        OWNER: file.owner.as_str(),
        SESSION: file.session.as_ref().map_or(Bson::Null, |session| Bson::String(session.as_str().to_owned())),
        field::NAME: codec.seal(field::NAME, &file.name)?,
        MEDIA_TYPE: file.media_type.essence(),
        SIZE: bson_count_value(file.size),
        SHA256: file.sha256.as_str(),
        field::CREATED_AT: bson_date(file.created_at),
        ATTACHED_AT: file.attached_at.map_or(Bson::Null, bson_date),
    })
}

/// Reads a file document strictly.
pub(crate) fn file_from_document(doc: &Document, codec: &Codec) -> Result<StoredFile, DocumentError> {
    let essence = string(doc, MEDIA_TYPE)?;
    Ok(StoredFile {
        id: parsed(FileId::parse(string(doc, field::ID)?), field::ID)?,
        owner: parsed(UserId::parse(string(doc, OWNER)?), OWNER)?,
        session: optional_string(doc, SESSION)?
            .map(|id| parsed(SessionId::parse(id), SESSION))
            .transpose()?,
        name: codec.open(field::NAME, required(doc, field::NAME)?)?.into(),
        media_type: MediaType::from_essence(essence)
            .ok_or_else(|| DocumentError::Invalid(MEDIA_TYPE.into()))?,
        size: count(doc, SIZE)?,
        sha256: string(doc, SHA256)?.to_owned(),
        created_at: date(doc, field::CREATED_AT)?,
        attached_at: optional_date(doc, ATTACHED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::documents::test_support::{at, codec_with};

    fn file() -> StoredFile {
        StoredFile {
            id: FileId::from_random([9; 16]),
            owner: UserId::parse("alice").expect("user"),
            session: Some(SessionId::parse("s-1").expect("session")),
            name: Arc::from("holiday photo.png"),
            media_type: MediaType::from_essence("image/png").expect("png"),
            size: 1234,
            sha256: "ab".repeat(32),
            created_at: at(100),
            attached_at: Some(at(200)),
        }
    }

    #[test]
    fn a_file_round_trips_with_its_name_sealed() {
        let codec = codec_with(5);
        let doc = file_document(&file(), &codec).expect("document");
        assert!(matches!(doc.get(field::NAME), Some(Bson::Binary(_))), "the name is encrypted");
        assert_eq!(file_from_document(&doc, &codec).expect("read"), file());
        let plain = file_document(&file(), &Codec::default()).expect("document");
        assert_eq!(plain.get_str(field::NAME), Ok("holiday photo.png"));
        assert_eq!(file_from_document(&plain, &Codec::default()).expect("read"), file());
    }

    #[test]
    fn an_unknown_media_type_or_a_bad_id_is_refused() {
        let codec = Codec::default();
        let mut doc = file_document(&file(), &codec).expect("document");
        doc.insert(MEDIA_TYPE, "text/html");
        assert_eq!(file_from_document(&doc, &codec), Err(DocumentError::Invalid(MEDIA_TYPE.into())));
        let mut doc = file_document(&file(), &codec).expect("document");
        doc.insert(field::ID, "../etc/passwd");
        assert_eq!(file_from_document(&doc, &codec), Err(DocumentError::Invalid(field::ID.into())));
    }
}
