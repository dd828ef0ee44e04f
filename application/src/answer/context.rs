//! The conversation a model sees: the most recent stored messages that fit in
//! `LLM_CONTEXT_MAX_CHARS`, oldest first, the question always included.

use chatbox_domain::{MessageKind, Sender, StoredMessage};

use crate::ports::{ChatTurn, Role};

/// The turns the model sees: the most recent messages that fit in `max_chars`, oldest
/// first. The newest message (the question) is always kept.
pub(super) fn context_window(recent: &[StoredMessage], max_chars: usize) -> Vec<ChatTurn> {
    let mut turns = Vec::with_capacity(recent.len());
    let mut used = 0usize;
    for message in recent.iter().rev() {
        let role = match message.sender {
            Sender::User | Sender::Admin => Role::User,
            Sender::Ai => Role::Assistant,
            Sender::System => continue,
        };
        let content = match (message.kind, message.file_url.as_deref()) {
            (MessageKind::Text, _) => message.content.clone(),
            (_, Some(url)) if message.content.is_empty() => format!("[attachment: {url}]"),
            (_, Some(url)) => format!("{} [attachment: {url}]", message.content),
            (_, None) => message.content.clone(),
        };
        if content.is_empty() {
            continue;
        }
        let chars = content.chars().count();
        if !turns.is_empty() && used + chars > max_chars {
            break;
        }
        used += chars;
        turns.push(ChatTurn::text(role, content));
    }
    turns.reverse();
    turns
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
        let turns = context_window(&recent, 6);
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0], ChatTurn::text(Role::Assistant, "bbbb"));
        assert_eq!(turns[1], ChatTurn::text(Role::User, "cc"));
        let only_question = context_window(&[message(1, Sender::User, &"x".repeat(50))], 10);
        assert_eq!(only_question.len(), 1);
    }

    #[test]
    fn an_attachment_is_shown_to_the_model_by_its_url_after_its_caption() {
        let attachment = |seq: u64, kind: MessageKind, caption: &str| {
            let mut message = message(seq, Sender::User, caption);
            message.kind = kind;
            message.file_url = Some(format!("https://files.example/{seq}"));
            message
        };
        let recent = vec![
            attachment(1, MessageKind::File, ""),
            attachment(2, MessageKind::Voice, "listen"),
            message(3, Sender::User, "what do you think?"),
        ];
        let turns = context_window(&recent, 1_000);
        let contents: Vec<&str> = turns.iter().map(|turn| turn.content.as_str()).collect();
        assert_eq!(
            contents,
            [
                "[attachment: https://files.example/1]",
                "listen [attachment: https://files.example/2]",
                "what do you think?"
            ]
        );
    }
}
