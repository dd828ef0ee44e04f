//! The conversation a model sees: the most recent stored messages that fit in
//! `LLM_CONTEXT_MAX_CHARS`, oldest first, the question always included.
//!
//! An attachment is named in the text of its turn, never by a URL: an upload by its
//! name, type and size (as the server recorded them), a link as a link that was not
//! opened (a client's URL is never fetched nor passed on). An uploaded picture is also
//! listed in [`Context::pictures`], for a provider that sees images.

use chatbox_domain::upload::FileId;
use chatbox_domain::{MessageKind, Sender, StoredMessage};

use crate::ports::{ChatTurn, Role};

/// The turns for the model, and which of them show an uploaded picture.
#[derive(Debug, Default)]
pub(super) struct Context {
    /// Oldest first; the last is the question.
    pub turns: Vec<ChatTurn>,
    /// (index in `turns`, the picture's file), oldest first.
    pub pictures: Vec<(usize, FileId)>,
}

/// The turns the model sees: the most recent messages that fit in `max_chars`, oldest
/// first. The newest message (the question) is always kept.
pub(super) fn context_window(recent: &[StoredMessage], max_chars: usize) -> Context {
    let mut kept = Vec::with_capacity(recent.len());
    let mut used = 0usize;
    for message in recent.iter().rev() {
        let role = match message.sender {
            Sender::User | Sender::Admin => Role::User,
            Sender::Ai => Role::Assistant,
            Sender::System => continue,
        };
        let (content, picture) = match message.kind {
            MessageKind::Text => (message.content.clone(), None),
            _ => attachment_text(message),
        };
        if content.is_empty() {
            continue;
        }
        let chars = content.chars().count();
        if !kept.is_empty() && used + chars > max_chars {
            break;
        }
        used += chars;
        kept.push((ChatTurn::text(role, content), picture));
    }
    kept.reverse();
    let mut context = Context { turns: Vec::with_capacity(kept.len()), pictures: Vec::new() };
    for (index, (turn, picture)) in kept.into_iter().enumerate() {
        if let Some(file) = picture {
            context.pictures.push((index, file));
        }
        context.turns.push(turn);
    }
    context
}

/// The text that stands for an attachment (after its caption), and its file when it is
/// an uploaded picture.
fn attachment_text(message: &StoredMessage) -> (String, Option<FileId>) {
    let meta = |key: &str| message.metadata.get(key).map(String::as_str);
    let name = meta("filename").filter(|name| !name.trim().is_empty()).unwrap_or("a file");
    let upload = message.file_id.as_deref().and_then(|id| FileId::parse(id).ok());
    let (note, picture) = match upload {
        Some(file) => {
            let media_type = meta("type").unwrap_or("unknown type");
            let size = meta("size").unwrap_or("?");
            let picture = media_type.starts_with("image/").then_some(file);
            (format!("[attachment: {name} ({media_type}, {size} bytes)]"), picture)
        }
        None => (format!("[attachment: {name}, shared as a link that was not opened]"), None),
    };
    let text = if message.content.is_empty() { note } else { format!("{} {note}", message.content) };
    (text, picture)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_domain::{MessageId, Seq, Timestamp};

    fn message(seq: u64, sender: Sender, content: &str) -> StoredMessage {
        StoredMessage::text(
            MessageId::parse(&format!("m{seq}")).expect("id"),
            Seq(seq),
            sender,
            content.to_owned(),
            Timestamp::default(),
        )
    }

    #[test]
    fn context_keeps_the_newest_turns_that_fit_and_always_the_question() {
        let recent = vec![
            message(1, Sender::User, "aaaa"),
            message(2, Sender::Ai, "bbbb"),
            message(3, Sender::System, "ignored"),
            message(4, Sender::User, "cc"),
        ];
        let turns = context_window(&recent, 6).turns;
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0], ChatTurn::text(Role::Assistant, "bbbb"));
        assert_eq!(turns[1], ChatTurn::text(Role::User, "cc"));
        let only_question = context_window(&[message(1, Sender::User, &"x".repeat(50))], 10);
        assert_eq!(only_question.turns.len(), 1);
    }

    #[test]
    fn an_attachment_is_named_to_the_model_never_by_its_url() {
        let upload = "0123456789abcdef0123456789abcdef";
        let attachment = |seq: u64, kind: MessageKind, caption: &str, file_id: &str, media_type: &str| {
            let mut message = message(seq, Sender::User, caption);
            message.kind = kind;
            message.file_id = Some(file_id.to_owned());
            message.file_url = Some(format!("https://files.example/{seq}"));
            message.metadata.insert("filename".into(), format!("f{seq}"));
            message.metadata.insert("type".into(), media_type.to_owned());
            message.metadata.insert("size".into(), "42".into());
            message
        };
        let recent = vec![
            attachment(1, MessageKind::File, "", upload, "image/png"),
            attachment(2, MessageKind::Voice, "listen", "client-id", "audio/webm"),
            attachment(3, MessageKind::File, "", upload, "application/pdf"),
            message(4, Sender::User, "what do you think?"),
        ];
        let context = context_window(&recent, 1_000);
        let contents: Vec<&str> = context.turns.iter().map(|turn| turn.content.as_str()).collect();
        assert_eq!(
            contents,
            [
                "[attachment: f1 (image/png, 42 bytes)]",
                "listen [attachment: f2, shared as a link that was not opened]",
                "[attachment: f3 (application/pdf, 42 bytes)]",
                "what do you think?"
            ]
        );
        assert!(contents.iter().all(|text| !text.contains("files.example")), "no URL reaches a model");
        assert_eq!(context.pictures, [(0, FileId::parse(upload).expect("id"))], "only the uploaded image");
    }
}
