//! The per-connection command budget: every command a socket can send has a cost, and
//! one GCRA budget per connection pays for all of them, so no command can be looped as
//! fast as a client can send (a resume reads the whole history, a model change or a help
//! request writes to storage, typing fans out to every socket of the session).
//!
//! Over budget, a command is refused with its `retry_after`; a connection that keeps
//! sending far past its budget (many refusals in a row) is flooding and is closed.
//! Pings are free: the protocol promises they are never limited.

use std::time::Duration;

use crate::rate_limit::{self, Decision, LimiterState, Quota};

/// Units a connection may spend at once.
pub const BUDGET_UNITS: u32 = 120;
/// The time a spent budget takes to refill completely.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(60);
/// Refusals in a row after which a connection counts as flooding.
pub const FLOOD_REFUSALS: u32 = 30;

/// A command, as the budget sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `user_message` (also counted by the per-user message limit).
    Message,
    /// `file_upload`, `voice_message`.
    Attachment,
    /// `model_select`: a store write.
    ModelSelect,
    /// `help_request`: a store write and, later, alerts.
    HelpRequest,
    /// `typing_indicator`: a fan-out.
    Typing,
    /// `stop`.
    Stop,
    /// `resume`: a read of the history after `last_seq`.
    Resume,
    /// A frame that could not be parsed: it still cost a parse and an error frame.
    Malformed,
}

impl CommandKind {
    /// Its cost in budget units.
    #[must_use]
    pub const fn cost(self) -> u32 {
        match self {
            Self::Message | Self::Attachment | Self::Typing | Self::Stop | Self::Malformed => 1,
            Self::ModelSelect => 2,
            Self::HelpRequest => 5,
            Self::Resume => 10,
        }
    }
}

/// The answer to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Paid for.
    Allowed,
    /// Over budget: refuse it; the same command passes after `retry_after`.
    Refused {
        /// When it would pass.
        retry_after: Duration,
    },
    /// Over budget and far past it: close the connection.
    Flooding,
}

/// One connection's budget.
#[derive(Debug, Clone)]
pub struct CommandBudget {
    quota: Quota,
    state: Option<LimiterState>,
    refusals_in_a_row: u32,
}

impl Default for CommandBudget {
    fn default() -> Self {
        // BUDGET_UNITS and BUDGET_WINDOW are non-zero constants.
        let quota = Quota::new(BUDGET_UNITS, BUDGET_WINDOW).unwrap_or_else(|| unreachable!("non-zero quota"));
        Self::new(quota)
    }
}

impl CommandBudget {
    /// A full budget of `quota` units.
    #[must_use]
    pub const fn new(quota: Quota) -> Self {
        Self { quota, state: None, refusals_in_a_row: 0 }
    }

    /// Pays for one command of `kind` at monotonic time `now`.
    pub fn spend(&mut self, kind: CommandKind, now: Duration) -> Spend {
        match rate_limit::check_cost(self.quota, self.state, now, kind.cost()) {
            Decision::Allowed(next) => {
                self.state = Some(next);
                self.refusals_in_a_row = 0;
                Spend::Allowed
            }
            Decision::Limited { retry_after } => {
                self.refusals_in_a_row = self.refusals_in_a_row.saturating_add(1);
                if self.refusals_in_a_row > FLOOD_REFUSALS {
                    Spend::Flooding
                } else {
                    Spend::Refused { retry_after }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_of_the_budget_then_refusals_then_flooding() {
        let mut budget = CommandBudget::default();
        let now = Duration::from_secs(1_000);
        for _ in 0..BUDGET_UNITS / CommandKind::Resume.cost() {
            assert_eq!(budget.spend(CommandKind::Resume, now), Spend::Allowed);
        }
        let Spend::Refused { retry_after } = budget.spend(CommandKind::Resume, now) else {
            panic!("over budget")
        };
        assert_eq!(retry_after, BUDGET_WINDOW / BUDGET_UNITS * CommandKind::Resume.cost());
        for _ in 1..FLOOD_REFUSALS {
            assert!(matches!(budget.spend(CommandKind::Typing, now), Spend::Refused { .. }));
        }
        assert_eq!(budget.spend(CommandKind::Typing, now), Spend::Flooding);
        assert_eq!(budget.spend(CommandKind::Typing, now + BUDGET_WINDOW), Spend::Allowed, "refilled");
    }

    proptest! {
        /// Whatever the mix of commands and timing, a connection never spends more than
        /// its burst plus what the elapsed time refilled.
        #[test]
        fn spending_never_exceeds_burst_plus_refill(
            steps in proptest::collection::vec((0usize..8, 0u64..2_000), 1..400)
        ) {
            let kinds = [
                CommandKind::Message, CommandKind::Attachment, CommandKind::ModelSelect,
                CommandKind::HelpRequest, CommandKind::Typing, CommandKind::Stop,
                CommandKind::Resume, CommandKind::Malformed,
            ];
            let mut budget = CommandBudget::default();
            let start = Duration::from_secs(10_000);
            let mut now = start;
            let mut spent = 0u64;
            for (kind, gap_ms) in steps {
                now += Duration::from_millis(gap_ms);
                if budget.spend(kinds[kind], now) == Spend::Allowed {
                    spent += u64::from(kinds[kind].cost());
                }
                let elapsed = (now - start).as_millis() as u64;
                let refill = elapsed * u64::from(BUDGET_UNITS) / BUDGET_WINDOW.as_millis() as u64;
                prop_assert!(spent <= u64::from(BUDGET_UNITS) + refill + 1, "spent {spent} refill {refill}");
            }
        }
    }

    #[test]
    fn each_command_costs_its_documented_units() {
        assert_eq!(CommandKind::Message.cost(), 1);
        assert_eq!(CommandKind::Attachment.cost(), 1);
        assert_eq!(CommandKind::Typing.cost(), 1);
        assert_eq!(CommandKind::Stop.cost(), 1);
        assert_eq!(CommandKind::Malformed.cost(), 1);
        assert_eq!(CommandKind::ModelSelect.cost(), 2);
        assert_eq!(CommandKind::HelpRequest.cost(), 5);
        assert_eq!(CommandKind::Resume.cost(), 10);
    }
}
