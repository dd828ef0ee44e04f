//! The name of each MongoDB operation the adapter retries and reports: the label of
//! `chatbox_storage_retries_total` and the word in its error texts. One closed set, so
//! the metric's label values are known (and shown at 0) from start-up and listed in
//! `docs/operations.md`; a test holds the two together.

/// A MongoDB operation of this adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Attaches an uploaded file to a session.
    AttachFile,
    /// Writes the derived fields of a session stored before they existed (migration).
    BackfillSession,
    /// Replaces an earlier service's session document by the current layout (migration).
    ConvertSession,
    /// Counts a stored message in its session document.
    CountMessage,
    /// Counts the sessions matching an admin listing.
    CountSessions,
    /// Adds up a user's recent uploads (quota).
    CountUploads,
    /// Creates an index at start-up.
    CreateIndex,
    /// Inserts a new session.
    CreateSession,
    /// Forgets a stored file's record.
    DeleteFile,
    /// Looks for session documents of the earlier service at start-up.
    DetectLegacy,
    /// Looks for session documents without derived fields at start-up.
    DetectUnderived,
    /// Marks a session ended.
    EndSession,
    /// Lists the files due for deletion.
    ExpiredFiles,
    /// Reads a stored file's record.
    FindFile,
    /// Reads a message back to confirm an idempotent write.
    FindMessage,
    /// Reads a session document's fields for a write.
    FindSession,
    /// Reads the session a share link names.
    FindShared,
    /// Records a new stored file.
    InsertFile,
    /// Inserts one message.
    InsertMessage,
    /// Inserts the messages of a converted session (migration).
    InsertMessages,
    /// Lists the ids of the earlier service's session documents (migration).
    ListLegacy,
    /// Reads a page of an admin listing.
    ListSessions,
    /// Lists the ids of sessions without derived fields (migration).
    ListUnderived,
    /// Reads a session document of the earlier service.
    LoadLegacy,
    /// Reads a session.
    LoadSession,
    /// Reads a session without derived fields (migration).
    LoadUnderived,
    /// Reads the messages after a sequence number (resume).
    MessagesAfter,
    /// Asks the server whether it answers (readiness).
    Ping,
    /// Reads the activity windows of listed sessions.
    ReadWindows,
    /// Reads the latest messages of a session (history for a prompt).
    RecentMessages,
    /// Copies a session's end time onto its files.
    RecordFileEnd,
    /// Aggregates the analytics of a time range.
    SessionStats,
    /// Reads one session's summary for the admin API.
    SessionSummary,
    /// Records a takeover or a hand-back.
    SetHandoff,
    /// Records the model a session uses.
    SetModel,
    /// Grants or revokes a share link.
    SetShare,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 36] = [
        Self::AttachFile,
        Self::BackfillSession,
        Self::ConvertSession,
        Self::CountMessage,
        Self::CountSessions,
        Self::CountUploads,
        Self::CreateIndex,
        Self::CreateSession,
        Self::DeleteFile,
        Self::DetectLegacy,
        Self::DetectUnderived,
        Self::EndSession,
        Self::ExpiredFiles,
        Self::FindFile,
        Self::FindMessage,
        Self::FindSession,
        Self::FindShared,
        Self::InsertFile,
        Self::InsertMessage,
        Self::InsertMessages,
        Self::ListLegacy,
        Self::ListSessions,
        Self::ListUnderived,
        Self::LoadLegacy,
        Self::LoadSession,
        Self::LoadUnderived,
        Self::MessagesAfter,
        Self::Ping,
        Self::ReadWindows,
        Self::RecentMessages,
        Self::RecordFileEnd,
        Self::SessionStats,
        Self::SessionSummary,
        Self::SetHandoff,
        Self::SetModel,
        Self::SetShare,
    ];

    /// Every operation's name, in [`ALL`](Self::ALL) order.
    pub const NAMES: [&'static str; Self::ALL.len()] = {
        let mut names = [""; Self::ALL.len()];
        let mut index = 0;
        while index < names.len() {
            names[index] = Self::ALL[index].as_str();
            index += 1;
        }
        names
    };

    /// The name (the label value).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AttachFile => "attach_file",
            Self::BackfillSession => "backfill_session",
            Self::ConvertSession => "convert_session",
            Self::CountMessage => "count_message",
            Self::CountSessions => "count_sessions",
            Self::CountUploads => "count_uploads",
            Self::CreateIndex => "create_index",
            Self::CreateSession => "create_session",
            Self::DeleteFile => "delete_file",
            Self::DetectLegacy => "detect_legacy",
            Self::DetectUnderived => "detect_underived",
            Self::EndSession => "end_session",
            Self::ExpiredFiles => "expired_files",
            Self::FindFile => "find_file",
            Self::FindMessage => "find_message",
            Self::FindSession => "find_session",
            Self::FindShared => "find_shared",
            Self::InsertFile => "insert_file",
            Self::InsertMessage => "insert_message",
            Self::InsertMessages => "insert_messages",
            Self::ListLegacy => "list_legacy",
            Self::ListSessions => "list_sessions",
            Self::ListUnderived => "list_underived",
            Self::LoadLegacy => "load_legacy",
            Self::LoadSession => "load_session",
            Self::LoadUnderived => "load_underived",
            Self::MessagesAfter => "messages_after",
            Self::Ping => "ping",
            Self::ReadWindows => "read_windows",
            Self::RecentMessages => "recent_messages",
            Self::RecordFileEnd => "record_file_end",
            Self::SessionStats => "session_stats",
            Self::SessionSummary => "session_summary",
            Self::SetHandoff => "set_handoff",
            Self::SetModel => "set_model",
            Self::SetShare => "set_share",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    /// `chatbox_storage_retries_total` lists exactly these names in the operations guide.
    #[test]
    fn the_guide_lists_exactly_the_retried_operations() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let guide = std::fs::read_to_string(path).expect("docs/operations.md");
        let row = guide
            .lines()
            .find(|line| line.starts_with("| `chatbox_storage_retries_total`"))
            .expect("docs/operations.md has a row for chatbox_storage_retries_total");
        let description = row.rsplit('|').nth(1).expect("a description cell");
        let documented: std::collections::BTreeSet<&str> = description
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|word| !word.contains(|c: char| c.is_ascii_uppercase()))
            .collect();
        let code: std::collections::BTreeSet<&str> = Operation::NAMES.into_iter().collect();
        assert_eq!(documented, code);
        assert_eq!(code.len(), Operation::ALL.len(), "names are distinct");
    }
}
