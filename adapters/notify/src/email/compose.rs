//! The alert email: headers through lettre's builder (which encodes them, so no user text
//! can end a header line or start a new one), a plain-text UTF-8 body, one message to all
//! admins. The session name is the user's text: it goes only into the body, on one line
//! and cut to a bounded length, so it can neither add a header nor fake a line of the
//! body such as the link.

use chatbox_application::ports::HelpAlert;
use chrono::SecondsFormat;
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;

use crate::text::{one_line, prefix_chars, truncate_chars};

/// How much of a session name an email shows.
const NAME_MAX_CHARS: usize = 200;
/// How much of the session id the subject shows.
const SUBJECT_ID_CHARS: usize = 8;

/// `Chatbox: help requested in session <first 8 characters of the id>`.
#[must_use]
pub(crate) fn subject(alert: &HelpAlert) -> String {
    let id = one_line(alert.session_id.as_str());
    format!("Chatbox: help requested in session {}", prefix_chars(&id, SUBJECT_ID_CHARS))
}

/// The plain-text body: one labelled line per fact.
#[must_use]
pub(crate) fn body(alert: &HelpAlert) -> String {
    let name = alert.session_name.as_deref().map(one_line);
    let name = match name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => format!("\"{}\"", truncate_chars(name, NAME_MAX_CHARS)),
        _ => "(none)".to_owned(),
    };
    let link = match alert.link.as_deref() {
        Some(link) => one_line(link),
        None => "(open the admin panel and look for the session)".to_owned(),
    };
    format!(
        "A user asked for a human in Chatbox.\r\n\
         \r\n\
         Session:   {session}\r\n\
         User:      {user}\r\n\
         Name:      {name}\r\n\
         Requested: {at}\r\n\
         Open:      {link}\r\n",
        session = one_line(alert.session_id.as_str()),
        user = one_line(alert.user_id.as_str()),
        at = alert.requested_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The whole message, from `from` to every admin in `to`, with a Message-ID in the
/// sender's domain (`message_id`, unique per alert).
///
/// # Errors
/// When lettre refuses the headers (it cannot with addresses parsed as mailboxes).
pub(crate) fn message(
    alert: &HelpAlert,
    from: &Mailbox,
    to: &[Mailbox],
    message_id: String,
) -> Result<Message, lettre::error::Error> {
    let builder = to.iter().fold(Message::builder().from(from.clone()), |b, mailbox| b.to(mailbox.clone()));
    builder
        .subject(subject(alert))
        .message_id(Some(message_id))
        .header(ContentType::TEXT_PLAIN)
        .body(body(alert))
}
