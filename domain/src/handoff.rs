//! The human-handoff state machine: the AI answers, until the user asks for help and an
//! admin takes the conversation over; when the admin releases it, the AI answers again.
//!
//! ```text
//! Ai --request_help--> HelpRequested --take_over--> AdminAssisting --release--> Ai
//!  \_______________________take_over_______________________/
//! ```

use thiserror::Error;

use crate::ids::UserId;

/// Who answers the session now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HandoffState {
    /// The model answers.
    #[default]
    Ai,
    /// The user asked for a human; the model still answers until one takes over.
    HelpRequested,
    /// An admin owns the conversation; the model is silent.
    AdminAssisting {
        /// The assisting admin's user id.
        admin_id: UserId,
        /// The admin's display name.
        admin_name: String,
    },
}

/// A transition the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandoffError {
    /// Another admin already assists this session.
    #[error("session already assisted by another admin")]
    AssistedByAnother,
    /// Only the assisting admin may release the session, and only while assisting.
    #[error("session is not assisted by this admin")]
    NotAssisting,
}

impl HandoffState {
    /// True while the model should answer user messages.
    #[must_use]
    pub const fn ai_answers(&self) -> bool {
        !matches!(self, Self::AdminAssisting { .. })
    }

    /// True while `admin` assists the session.
    #[must_use]
    pub fn assisted_by(&self, admin: &UserId) -> bool {
        matches!(self, Self::AdminAssisting { admin_id, .. } if admin_id == admin)
    }

    /// The user asks for a human. Idempotent; no effect while an admin assists.
    #[must_use]
    pub fn request_help(self) -> Self {
        match self {
            Self::Ai | Self::HelpRequested => Self::HelpRequested,
            assisting @ Self::AdminAssisting { .. } => assisting,
        }
    }

    /// An admin takes the conversation over. The same admin may repeat it.
    ///
    /// # Errors
    /// [`HandoffError::AssistedByAnother`] when a different admin assists.
    pub fn take_over(self, admin_id: UserId, admin_name: String) -> Result<Self, HandoffError> {
        match self {
            Self::AdminAssisting { admin_id: current, .. } if current != admin_id => {
                Err(HandoffError::AssistedByAnother)
            }
            _ => Ok(Self::AdminAssisting { admin_id, admin_name }),
        }
    }

    /// The assisting admin hands the conversation back to the model.
    ///
    /// # Errors
    /// [`HandoffError::NotAssisting`] when this admin does not assist the session.
    pub fn release(self, admin_id: &UserId) -> Result<Self, HandoffError> {
        match self {
            Self::AdminAssisting { admin_id: current, .. } if &current == admin_id => Ok(Self::Ai),
            _ => Err(HandoffError::NotAssisting),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(id: &str) -> UserId {
        UserId::parse(id).expect("valid id")
    }

    #[test]
    fn full_cycle_returns_to_the_model() {
        let state = HandoffState::Ai.request_help();
        assert_eq!(state, HandoffState::HelpRequested);
        let state = state.take_over(admin("a1"), "Ann".into()).expect("takeover");
        assert!(!state.ai_answers());
        let state = state.release(&admin("a1")).expect("release");
        assert_eq!(state, HandoffState::Ai);
    }

    #[test]
    fn a_second_admin_is_refused_and_only_the_assisting_admin_releases() {
        let state = HandoffState::Ai.take_over(admin("a1"), "Ann".into()).expect("takeover");
        assert_eq!(state.clone().take_over(admin("a2"), "Bob".into()), Err(HandoffError::AssistedByAnother));
        assert!(state.clone().take_over(admin("a1"), "Ann".into()).is_ok());
        assert_eq!(state.release(&admin("a2")), Err(HandoffError::NotAssisting));
        assert_eq!(HandoffState::Ai.release(&admin("a1")), Err(HandoffError::NotAssisting));
    }

    #[test]
    fn the_model_answers_until_an_admin_assists() {
        assert!(HandoffState::Ai.ai_answers());
        assert!(HandoffState::HelpRequested.ai_answers(), "the model still answers until one takes over");
        let assisting = HandoffState::AdminAssisting { admin_id: admin("a1"), admin_name: "Ann".into() };
        assert!(!assisting.ai_answers());
    }

    #[test]
    fn only_the_assisting_admin_assists() {
        let assisting = HandoffState::AdminAssisting { admin_id: admin("a1"), admin_name: "Ann".into() };
        assert!(assisting.assisted_by(&admin("a1")));
        assert!(!assisting.assisted_by(&admin("a2")));
        assert!(!HandoffState::Ai.assisted_by(&admin("a1")));
        assert!(!HandoffState::HelpRequested.assisted_by(&admin("a1")));
    }
}
