//! Waits that cost no lock while they wait, for the hot path: a future polled at every
//! frame a socket writes or an answer streams must not take a lock each time it finds
//! nothing to do.
//!
//! - [`Signal`]: raised once, awaited by one waiter at a time (a socket's close, the end
//!   of one half of its task).
//! - [`Dormant`]: a future sharing its task with busier ones, polled only after it woke
//!   the task itself (a socket's reader beside its writer, a wait for shutdown).

mod dormant;
mod signal;

pub use dormant::Dormant;
pub use signal::Signal;
