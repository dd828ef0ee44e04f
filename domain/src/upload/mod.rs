//! The rules for files users upload into conversations: which kinds are taken, how
//! large one may be, how many and how much a user may upload a day, and what of a
//! client's file name is kept.
//!
//! Invariants:
//! - **The content decides the type.** A file's media type is the one its first bytes
//!   show (sniffed by the caller, e.g. with a magic-number table), never the name or the
//!   `Content-Type` the client sent: a script named `.png` is refused. Only the types of
//!   [`ACCEPTED`] are taken.
//! - **Limits are checked as bytes arrive**, not after: [`UploadLimits::check_size`] is
//!   asked with the running total, so an oversized upload is cut off at the first byte
//!   over the limit, never stored whole first.
//! - **A day is a UTC day**, given by the caller as a day number; a new day starts a
//!   new budget. Arithmetic on sizes saturates: no count from outside can overflow.
//! - **Images lose their metadata when stored** ([`MetadataStripper`], as the bytes
//!   stream): only formats it cleans are taken.
//! - **A kept file name is plain text**: no directory part, no control or bidi-override
//!   characters, at most [`FILE_NAME_MAX_BYTES`], never empty.

use std::fmt;
use std::sync::Arc;

use crate::Timestamp;
use crate::error::ErrorCode;
use crate::ids::lower_hex;
use crate::validation::InvalidValue;

mod range;
mod record;
mod strip;

pub use range::{ByteRange, Unsatisfiable};
pub use record::{ExpiryReason, StoredFile};
pub use strip::{ImageFormat, MalformedImage, MetadataStripper};

/// An uploaded file's id: 32 lowercase hexadecimal digits (128 random bits, drawn by the
/// caller), so it can neither be guessed nor carry a path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(Arc<str>);

impl FileId {
    /// The id of 16 random bytes.
    #[must_use]
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(Arc::from(lower_hex(&bytes)))
    }

    /// Accepts exactly 32 lowercase hexadecimal digits.
    ///
    /// # Errors
    /// [`InvalidValue::Malformed`] for anything else.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let hex =
            value.len() == 32 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex { Ok(Self(Arc::from(value))) } else { Err(InvalidValue::Malformed { field: "file_id" }) }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({})", &*self.0)
    }
}

/// What kind of thing a file is, for how it is shown and whether a model may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A picture: shown inline, sent to models that see images.
    Image,
    /// A recording (voice messages).
    Audio,
    /// Anything else taken: downloaded as an attachment, named to the model.
    Document,
}

/// A media type this service takes, with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaType {
    essence: &'static str,
    kind: FileKind,
}

impl MediaType {
    /// As in `Content-Type`, e.g. `image/png`.
    #[must_use]
    pub const fn essence(self) -> &'static str {
        self.essence
    }

    /// Its kind.
    #[must_use]
    pub const fn kind(self) -> FileKind {
        self.kind
    }

    /// The image format whose metadata is stripped when it is stored, for an image.
    #[must_use]
    pub fn image_format(self) -> Option<ImageFormat> {
        match self.essence {
            "image/png" => Some(ImageFormat::Png),
            "image/jpeg" => Some(ImageFormat::Jpeg),
            _ => None,
        }
    }
}

const fn media(essence: &'static str, kind: FileKind) -> MediaType {
    MediaType { essence, kind }
}

/// Every media type taken. Each can be recognised from its first bytes; text formats
/// (which cannot) and anything a browser would run or render as a page (HTML, SVG) are
/// not taken. Images are taken only in the formats whose metadata is stripped
/// ([`MetadataStripper`]): PNG and JPEG (GIF and WebP wait for theirs).
pub const ACCEPTED: [MediaType; 10] = [
    media("image/png", FileKind::Image),
    media("image/jpeg", FileKind::Image),
    media("audio/webm", FileKind::Audio),
    media("audio/ogg", FileKind::Audio),
    media("audio/mpeg", FileKind::Audio),
    media("audio/mp4", FileKind::Audio),
    media("audio/x-wav", FileKind::Audio),
    media("application/pdf", FileKind::Document),
    media("application/zip", FileKind::Document),
    media("application/vnd.openxmlformats-officedocument.wordprocessingml.document", FileKind::Document),
];

/// Why an upload is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRefusal {
    /// No bytes at all.
    Empty,
    /// Over the size limit (`max` bytes).
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// Its content is of no accepted type (or of none recognised).
    UnsupportedType,
    /// The user uploaded `max` files today already.
    DailyCountReached {
        /// The limit.
        max: u32,
    },
    /// The user's uploads today would pass `max` bytes.
    DailyBytesReached {
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for UploadRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty"),
            Self::TooLarge { max } => write!(f, "the file is larger than {max} bytes"),
            Self::UnsupportedType => f.write_str(
                "this kind of file is not taken (images, audio, PDF and office documents are; the content decides)",
            ),
            Self::DailyCountReached { max } => write!(f, "no more than {max} uploads a day"),
            Self::DailyBytesReached { max } => write!(f, "no more than {max} bytes of uploads a day"),
        }
    }
}

impl std::error::Error for UploadRefusal {}

impl UploadRefusal {
    /// The error code it is answered with.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Empty => ErrorCode::BadRequest,
            Self::TooLarge { .. } => ErrorCode::FileTooLarge,
            Self::UnsupportedType => ErrorCode::UnsupportedMediaType,
            Self::DailyCountReached { .. } | Self::DailyBytesReached { .. } => ErrorCode::UploadLimitReached,
        }
    }
}

/// The accepted media type whose essence is `sniffed` (what the content's first bytes
/// show, e.g. `image/png`), or why not.
///
/// # Errors
/// [`UploadRefusal::UnsupportedType`] when nothing was recognised or it is not taken.
pub fn accept(sniffed: Option<&str>) -> Result<MediaType, UploadRefusal> {
    sniffed.and_then(MediaType::from_essence).ok_or(UploadRefusal::UnsupportedType)
}

/// A user's uploads on the current UTC day (since [`utc_day_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DailyUsage {
    /// Files uploaded that day.
    pub files: u32,
    /// Bytes uploaded that day.
    pub bytes: u64,
}

/// The start of `now`'s UTC day: uploads since then count against the day's budget.
#[must_use]
pub fn utc_day_start(now: Timestamp) -> Timestamp {
    now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

/// How much one user may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// The largest file, in bytes.
    pub max_bytes: u64,
    /// Files a user may upload per UTC day.
    pub files_per_day: u32,
    /// Bytes a user may upload per UTC day.
    pub bytes_per_day: u64,
}

impl UploadLimits {
    /// Whether a new upload may start, given the user's usage as of today.
    ///
    /// # Errors
    /// The daily limit already reached.
    pub const fn check_start(&self, usage: DailyUsage) -> Result<(), UploadRefusal> {
        if usage.files >= self.files_per_day {
            return Err(UploadRefusal::DailyCountReached { max: self.files_per_day });
        }
        if usage.bytes >= self.bytes_per_day {
            return Err(UploadRefusal::DailyBytesReached { max: self.bytes_per_day });
        }
        Ok(())
    }

    /// Whether an upload may go on now that `received` bytes of it have arrived, given
    /// the user's usage before it: asked as bytes arrive, so the first byte over a limit
    /// ends it.
    ///
    /// # Errors
    /// Over the file limit, or over what is left of the day's bytes.
    pub const fn check_size(&self, usage: DailyUsage, received: u64) -> Result<(), UploadRefusal> {
        if received > self.max_bytes {
            return Err(UploadRefusal::TooLarge { max: self.max_bytes });
        }
        if usage.bytes.saturating_add(received) > self.bytes_per_day {
            return Err(UploadRefusal::DailyBytesReached { max: self.bytes_per_day });
        }
        Ok(())
    }

    /// Whether a finished upload of `received` bytes is taken (the checks as bytes
    /// arrived, plus: not empty).
    ///
    /// # Errors
    /// Empty, or over a limit.
    pub const fn check_finished(&self, usage: DailyUsage, received: u64) -> Result<(), UploadRefusal> {
        if received == 0 {
            return Err(UploadRefusal::Empty);
        }
        self.check_size(usage, received)
    }
}

/// The longest kept file name, in bytes.
pub const FILE_NAME_MAX_BYTES: usize = 255;

/// The name shown for a file whose client gave none that survives [`file_name`].
pub const DEFAULT_FILE_NAME: &str = "file";

/// What is kept of a client's file name: its last path component (after `/` or `\`),
/// without control characters and bidirectional overrides, trimmed, cut at a character
/// boundary to [`FILE_NAME_MAX_BYTES`]; [`DEFAULT_FILE_NAME`] when nothing is left (or
/// only dots, which would name a directory).
#[must_use]
pub fn file_name(client: &str) -> Arc<str> {
    let last = client.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).collect();
    let trimmed = cleaned.trim();
    let kept = trimmed[..trimmed.floor_char_boundary(FILE_NAME_MAX_BYTES)].trim_end();
    if kept.is_empty() || kept.chars().all(|c| c == '.') {
        Arc::from(DEFAULT_FILE_NAME)
    } else {
        Arc::from(kept)
    }
}

/// Characters that reorder how text is displayed (a name `gpj.exe` shown as `exe.jpg`).
const fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: UploadLimits = UploadLimits { max_bytes: 100, files_per_day: 3, bytes_per_day: 250 };

    #[test]
    fn a_file_id_is_32_lowercase_hex_digits() {
        let id = FileId::from_random([0xab; 16]);
        assert_eq!(id.as_str(), "ab".repeat(16));
        assert_eq!(FileId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(
            FileId::from_random([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]).to_string(),
            "000102030405060708090a0b0c0d0eff"
        );
        assert_eq!(format!("{id:?}"), format!("FileId({})", "ab".repeat(16)));
        for bad in [
            "",
            "AB".repeat(16).as_str(),
            &"a".repeat(31),
            &"a".repeat(33),
            "../../../../etc/passwd0000000000",
            &"g".repeat(32),
            &"/".repeat(32),
        ] {
            assert_eq!(FileId::parse(bad), Err(InvalidValue::Malformed { field: "file_id" }), "{bad:?}");
        }
        assert!(FileId::parse(&"0123456789abcdef".repeat(2)).is_ok());
    }

    #[test]
    fn every_accepted_image_is_stripped_when_stored() {
        for media in ACCEPTED {
            assert_eq!(media.kind() == FileKind::Image, media.image_format().is_some(), "{media:?}");
        }
        assert_eq!(accept(Some("image/png")).map(MediaType::image_format), Ok(Some(ImageFormat::Png)));
        assert_eq!(accept(Some("image/jpeg")).map(MediaType::image_format), Ok(Some(ImageFormat::Jpeg)));
        assert_eq!(
            accept(Some("image/webp")),
            Err(UploadRefusal::UnsupportedType),
            "not until it is stripped"
        );
    }

    #[test]
    fn only_accepted_types_pass_whatever_the_case() {
        assert_eq!(accept(Some("image/png")).map(MediaType::kind), Ok(FileKind::Image));
        assert_eq!(accept(Some("IMAGE/JPEG")).map(MediaType::essence), Ok("image/jpeg"));
        assert_eq!(accept(Some("audio/webm")).map(MediaType::kind), Ok(FileKind::Audio));
        assert_eq!(accept(Some("application/pdf")).map(MediaType::kind), Ok(FileKind::Document));
        for refused in [Some("text/html"), Some("image/svg+xml"), Some("application/x-executable"), None] {
            assert_eq!(accept(refused), Err(UploadRefusal::UnsupportedType), "{refused:?}");
        }
    }

    #[test]
    fn a_day_starts_at_utc_midnight() {
        let at = |text: &str| text.parse::<Timestamp>().expect("time");
        assert_eq!(utc_day_start(at("2026-12-07T13:41:16.5Z")), at("2026-12-07T00:00:00Z"));
        assert_eq!(utc_day_start(at("2026-12-07T00:00:00Z")), at("2026-12-07T00:00:00Z"));
        assert_eq!(utc_day_start(at("2026-12-06T23:59:59.999Z")), at("2026-12-06T00:00:00Z"));
    }

    #[test]
    fn an_upload_starts_only_while_the_day_has_room() {
        assert_eq!(LIMITS.check_start(DailyUsage { files: 2, bytes: 249 }), Ok(()));
        assert_eq!(
            LIMITS.check_start(DailyUsage { files: 3, bytes: 0 }),
            Err(UploadRefusal::DailyCountReached { max: 3 })
        );
        assert_eq!(
            LIMITS.check_start(DailyUsage { files: 0, bytes: 250 }),
            Err(UploadRefusal::DailyBytesReached { max: 250 })
        );
    }

    #[test]
    fn the_first_byte_over_a_limit_ends_an_upload() {
        let fresh = DailyUsage::default();
        assert_eq!(LIMITS.check_size(fresh, 100), Ok(()), "the limit itself is allowed");
        assert_eq!(LIMITS.check_size(fresh, 101), Err(UploadRefusal::TooLarge { max: 100 }));
        let used = DailyUsage { files: 1, bytes: 200 };
        assert_eq!(LIMITS.check_size(used, 50), Ok(()), "up to the day's bytes");
        assert_eq!(LIMITS.check_size(used, 51), Err(UploadRefusal::DailyBytesReached { max: 250 }));
        let huge = DailyUsage { files: 1, bytes: u64::MAX };
        assert_eq!(
            LIMITS.check_size(huge, 1),
            Err(UploadRefusal::DailyBytesReached { max: 250 }),
            "no overflow"
        );
    }

    #[test]
    fn a_finished_upload_must_hold_something() {
        let fresh = DailyUsage::default();
        assert_eq!(LIMITS.check_finished(fresh, 0), Err(UploadRefusal::Empty));
        assert_eq!(LIMITS.check_finished(fresh, 1), Ok(()));
        assert_eq!(LIMITS.check_finished(fresh, 101), Err(UploadRefusal::TooLarge { max: 100 }));
    }

    #[test]
    fn a_kept_name_is_one_plain_component() {
        assert_eq!(&*file_name("report.pdf"), "report.pdf");
        assert_eq!(&*file_name("../../etc/passwd"), "passwd");
        assert_eq!(&*file_name(r"C:\Users\me\photo.JPG"), "photo.JPG");
        assert_eq!(&*file_name("  spaced name.png  "), "spaced name.png");
        assert_eq!(&*file_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(&*file_name("invoice\u{202E}gpj.exe"), "invoicegpj.exe", "no display reordering");
        for nothing in ["", "   ", "dir/", "..", ".", "\u{202E}"] {
            assert_eq!(&*file_name(nothing), DEFAULT_FILE_NAME, "{nothing:?}");
        }
        let long = "é".repeat(200);
        let kept = file_name(&long);
        assert!(kept.len() <= FILE_NAME_MAX_BYTES && kept.len() >= FILE_NAME_MAX_BYTES - 1, "{}", kept.len());
        assert!(kept.chars().all(|c| c == 'é'), "cut at a character boundary");
    }

    #[test]
    fn each_refusal_has_its_code_and_status() {
        let answers = [
            (UploadRefusal::Empty, "BAD_REQUEST", 400),
            (UploadRefusal::TooLarge { max: 1 }, "FILE_TOO_LARGE", 413),
            (UploadRefusal::UnsupportedType, "UNSUPPORTED_MEDIA_TYPE", 415),
            (UploadRefusal::DailyCountReached { max: 1 }, "UPLOAD_LIMIT_REACHED", 429),
            (UploadRefusal::DailyBytesReached { max: 1 }, "UPLOAD_LIMIT_REACHED", 429),
        ];
        for (refusal, name, status) in answers {
            assert_eq!(
                (refusal.code().as_str(), refusal.code().http_status()),
                (name, status),
                "{refusal:?}"
            );
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert_eq!(UploadRefusal::TooLarge { max: 10 }.to_string(), "the file is larger than 10 bytes");
        assert!(UploadRefusal::UnsupportedType.to_string().contains("the content decides"));
        assert_eq!(UploadRefusal::DailyCountReached { max: 3 }.to_string(), "no more than 3 uploads a day");
        assert_eq!(
            UploadRefusal::DailyBytesReached { max: 9 }.to_string(),
            "no more than 9 bytes of uploads a day"
        );
        assert_eq!(UploadRefusal::Empty.to_string(), "the file is empty");
    }
}
