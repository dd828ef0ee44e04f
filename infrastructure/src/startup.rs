//! What every command that needs the configuration does first: load it, start logging,
//! report each problem and warning, and build the async runtime.
//!
//! Problems that stop a command are printed whatever `LOG_LEVEL` says (it may be the
//! problem itself, or `off`): an operator must always see why the process exited.

use tracing::{error, warn};

use crate::config::{self, Loaded, Settings, StorageSection};
use crate::telemetry;

/// Loads and validates the whole configuration and starts logging. `None` when it is
/// invalid; every problem has then been logged, followed by the `validation failed` line.
#[must_use]
pub fn load_configuration(dev: bool) -> Option<Settings> {
    started(config::load_from_env(dev))
}

/// Loads and validates only what `chatbox migrate` uses (storage, encryption, logging)
/// and starts logging; `None`, every problem logged, when that is invalid.
#[must_use]
pub fn load_storage_configuration() -> Option<StorageSection> {
    started(config::load_storage_from_env())
}

fn started<T>(loaded: Loaded<T>) -> Option<T> {
    let level = if loaded.settings.is_ok() { loaded.log_level.as_str() } else { "info" };
    telemetry::init(level, loaded.log_format);
    telemetry::log_panics();
    match loaded.settings {
        Ok(settings) => {
            for warning in &loaded.warnings {
                warn!("{warning}");
            }
            Some(settings)
        }
        Err(problems) => {
            for problem in &problems {
                error!("{problem}");
            }
            error!("Configuration validation failed: {} problem(s)", problems.len());
            None
        }
    }
}

/// The multi-threaded runtime; `None` (logged) when it cannot start.
#[must_use]
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .inspect_err(|e| error!(error = %e, "cannot start the async runtime"))
        .ok()
}
