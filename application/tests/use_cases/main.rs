//! The chat use-cases driven without sockets: an in-memory repository, a scripted
//! provider, and socket handles whose queues the tests read. One test binary (fast to
//! link); one module per use-case, the shared wiring in `support`.
//!
//! Every test runs on tokio's paused clock, and so does everything under test (the
//! answer actor's timeouts, the retries, the test clock). Time only moves when every
//! task is waiting, straight to the next timer: a scripted pause, a timeout or a
//! "nothing arrives within 200 ms" check then costs no real time, and gives the same
//! result on a loaded machine as on an idle one. Such a check is meaningful because the
//! clock only advances once nothing else can run.

mod support;

mod files;
mod handoff;
mod history;
mod limits;
mod messages;
mod provider_failures;
mod replicas;
mod resume;
mod session_ops;
mod shared_state;
mod shutdown;
mod storage_failures;
mod streaming;
mod switching;
