//! What a client asks for, already parsed and validated by the inbound adapter.

use chatbox_domain::command_budget::CommandKind;
use chatbox_domain::upload::FileId;
use chatbox_domain::validation::{MessageContent, Metadata};
use chatbox_domain::{ClientMessageId, MessageKind, ModelId, Seq, SessionId};

use crate::events::AnswerStyle;

/// A user's chat message.
#[derive(Debug, Clone)]
pub struct SendMessage {
    /// The target session; `None` means the connection's session.
    pub session_id: Option<SessionId>,
    /// The text.
    pub content: MessageContent,
    /// A model to switch the session to first.
    pub model_id: Option<ModelId>,
    /// Idempotency key.
    pub client_message_id: Option<ClientMessageId>,
    /// Client metadata.
    pub metadata: Metadata,
    /// How the answer's frames are labelled.
    pub style: AnswerStyle,
}

/// The file an attachment message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedFile {
    /// A file uploaded to this service (`file_id` is one of its ids): the server
    /// resolves it, and any `file_url` the client sent is ignored.
    Upload(FileId),
    /// A file the client keeps elsewhere, announced by a public `https` link: stored and
    /// shown as a link, never fetched by the server nor given to a model.
    Link {
        /// The client's id for it.
        file_id: String,
        /// Its URL.
        file_url: String,
    },
}

/// An attachment the client announces: an upload of its own, or a link.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// File or voice.
    pub kind: MessageKind,
    /// The target session; `None` means the connection's session.
    pub session_id: Option<SessionId>,
    /// The file: an upload of this service, or a link.
    pub file: AttachedFile,
    /// Optional caption.
    pub content: String,
    /// Client metadata.
    pub metadata: Metadata,
    /// Idempotency key.
    pub client_message_id: Option<ClientMessageId>,
}

/// A client command.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    /// `user_message` / `user`.
    SendMessage(SendMessage),
    /// `file_upload` / `voice_message`.
    Attachment(Attachment),
    /// `model_select`.
    SelectModel {
        /// The target session.
        session_id: Option<SessionId>,
        /// The model.
        model_id: ModelId,
    },
    /// `stop`.
    Stop {
        /// The target session.
        session_id: Option<SessionId>,
    },
    /// `typing_indicator`.
    Typing {
        /// The target session.
        session_id: Option<SessionId>,
        /// Typing or not.
        typing: bool,
    },
    /// `help_request`: the user asks for a human.
    HelpRequest {
        /// The target session.
        session_id: Option<SessionId>,
    },
    /// `resume`.
    Resume {
        /// The session to resume.
        session_id: SessionId,
        /// Replay stored messages after this one.
        last_seq: Seq,
    },
}

impl ClientCommand {
    /// What the command costs the connection's budget.
    #[must_use]
    pub const fn kind(&self) -> CommandKind {
        match self {
            Self::SendMessage(_) => CommandKind::Message,
            Self::Attachment(_) => CommandKind::Attachment,
            Self::SelectModel { .. } => CommandKind::ModelSelect,
            Self::Stop { .. } => CommandKind::Stop,
            Self::Typing { .. } => CommandKind::Typing,
            Self::HelpRequest { .. } => CommandKind::HelpRequest,
            Self::Resume { .. } => CommandKind::Resume,
        }
    }
}
