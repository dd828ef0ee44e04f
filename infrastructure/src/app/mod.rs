//! The application, one file per job: `wiring` builds it from the settings (and holds
//! the one function that builds the chat use-cases), `storage` chooses and opens the
//! session store, `shared` the state replicas share (Redis, or none), `system` supplies the clock, ids and randomness, `listener` binds the
//! socket and runs the HTTP server, `background` runs the cleanup loops, and `shutdown`
//! drains and stops everything in order.

mod background;
mod listener;
mod shared;
mod shutdown;
mod storage;
mod system;
mod wiring;

pub use storage::mongo_repository;
pub use system::{RandomIds, SystemClock, ThreadRandomness};
pub use wiring::Application;
