//! `chatbox migrate`: converts the earlier Go service's session documents (messages
//! embedded) to the current layout, with the service's own storage configuration
//! (`MONGO_*`, and `ENCRYPTION_*` holding the key that service used, so its ciphertexts
//! open). It reads and validates only that and the logging settings: it needs no model
//! provider and no JWT secret.
//!
//! The work itself is `chatbox_mongodb_store::migrate`: idempotent and resumable, so the
//! command can be run again after a crash or an interruption. It prints a progress line
//! every 100 sessions (and at least every 5 seconds), then the final count, and exits
//! non-zero if a session could not be converted or the store failed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chatbox::config::StorageBackend;
use chatbox::startup;
use chatbox_mongodb_store::migrate::{MigrationReport, migrate_all};
use tracing::error;

/// How often a progress line is printed at least.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs the command.
pub fn main() -> ExitCode {
    let Some(storage) = startup::load_storage_configuration() else {
        return ExitCode::FAILURE;
    };
    if storage.backend != StorageBackend::MongoDb {
        error!("chatbox migrate needs MongoDB storage: set MONGO_URI");
        return ExitCode::FAILURE;
    }
    let Some(runtime) = startup::runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let repository = chatbox::app::mongo_repository(&storage).await?;
        let mut last_line = Instant::now();
        let report = migrate_all(&repository, |report| {
            if report.done() % 100 == 0 || last_line.elapsed() >= PROGRESS_EVERY {
                println!(
                    "chatbox migrate: {} of {} sessions, {}",
                    report.done(),
                    report.found,
                    counts(report)
                );
                last_line = Instant::now();
            }
        })
        .await?;
        anyhow::Ok(report)
    });
    match result {
        Ok(report) => {
            for (id, reason) in &report.failures {
                println!("chatbox migrate: session {id} not converted: {reason}");
            }
            println!("chatbox migrate: done: {} sessions found, {}", report.found, counts(&report));
            if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            error!(error = format!("{e:#}"), "chatbox migrate stopped; run it again to resume");
            ExitCode::FAILURE
        }
    }
}

fn counts(report: &MigrationReport) -> String {
    format!(
        "{} converted ({} messages), {} skipped, {} failed, {} current sessions backfilled",
        report.converted, report.messages, report.skipped, report.failed, report.backfilled
    )
}
