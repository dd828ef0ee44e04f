//! Alerts for the channel tests: a fixed session, user and time, and the name and link
//! each test needs.

use chatbox_application::ports::HelpAlert;
use chatbox_domain::{SessionId, Timestamp, UserId};

pub const SESSION_ID: &str = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";
pub const USER_ID: &str = "user-42";
/// 2025-03-04T05:06:07Z.
pub const REQUESTED_AT_SECS: i64 = 1_741_064_767;

pub fn alert(name: Option<&str>, link: Option<&str>) -> HelpAlert {
    HelpAlert {
        session_id: SessionId::parse(SESSION_ID).expect("session id"),
        user_id: UserId::parse(USER_ID).expect("user id"),
        session_name: name.map(str::to_owned),
        requested_at: Timestamp::from_timestamp(REQUESTED_AT_SECS, 0).expect("time"),
        link: link.map(str::to_owned),
    }
}
