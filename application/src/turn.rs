//! A [`Turn`]: a message accepted from a socket on its way to the session's actor, which
//! stores it and, when the model should, answers it. The chat use-cases make turns, the
//! live session admits them, the actor consumes them; none of those imports another for
//! it.

use std::sync::Arc;

use chatbox_domain::validation::Metadata;
use chatbox_domain::{ClientMessageId, MessageKind, Sender};

use crate::events::AnswerStyle;
use crate::socket::SocketHandle;

/// A message accepted from a socket, on its way to storage.
#[derive(Debug)]
pub struct Turn {
    /// The socket it came from (not echoed back to it; storage errors go to it).
    pub origin: Arc<SocketHandle>,
    /// Who wrote it.
    pub sender: Sender,
    /// Text, file or voice.
    pub kind: MessageKind,
    /// The text or caption.
    pub content: String,
    /// Attachment id.
    pub file_id: Option<String>,
    /// Attachment URL.
    pub file_url: Option<String>,
    /// Client metadata.
    pub metadata: Metadata,
    /// Idempotency key.
    pub client_message_id: Option<ClientMessageId>,
    /// `Some` when the model should answer it.
    pub answer: Option<AnswerStyle>,
}
