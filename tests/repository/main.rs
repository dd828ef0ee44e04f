//! The repository contract suite: every `SessionRepository` adapter must behave the same
//! way, per the port's write contract (`application/src/ports.rs`).
//!
//! Each case in `cases.rs` runs against the in-memory adapter always, and against MongoDB
//! whenever `MONGO_URI` reaches a server (each test in a database of its own, dropped
//! when it passes). Without a server the MongoDB half is skipped with one printed line
//! saying why, unless `CHATBOX_REQUIRE_MONGO=1` (set in CI), which turns that into a
//! failure. `scripts/ferretdb.sh start` gives a local server.
//!
//! The read side (`SessionCatalog`: listings, stats, share grants) has its cases in
//! `catalog.rs` and `catalog_shares.rs`, run the same way; what only MongoDB's layout
//! shows (derived fields, old documents, Go sessions, keys) is in `catalog_layout.rs`.
//!
//! The stored files' records (`FileCatalog`) have their cases in `files.rs`, run the same
//! way on both ports of one store.
//!
//! MongoDB-only behaviour has its own modules: the earlier service's documents and
//! `chatbox migrate` (`legacy.rs`), the stored layout and indexes (`layout.rs`), no
//! plaintext in the database files (`encryption.rs`), an outage in the middle of appends
//! (`fault.rs`) and of a conversation load through the real server
//! (`conversation_fault.rs`), and the binary starting on MongoDB or refusing to (`startup.rs`). The last two start a private
//! FerretDB through the script, with a data directory of their own.

mod cases;
mod catalog;
mod catalog_layout;
mod catalog_shares;
mod conversation_fault;
mod encryption;
mod fault;
mod files;
mod layout;
mod legacy;
mod server;
mod startup;
mod support;

/// Instantiates every contract case once per adapter.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::cases::$case(crate::support::memory()).await;
                }
            )*
        }

        mod mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = crate::support::mongo(stringify!($case)).await else {
                        return;
                    };
                    crate::cases::$case(store.repository()).await;
                    store.drop_database().await;
                }
            )*
        }
    };
}

contract!(
    a_new_session_loads_as_created,
    messages_come_back_in_seq_order_with_every_field,
    a_retried_append_changes_nothing,
    a_retried_field_write_changes_nothing,
    a_taken_or_skipped_seq_is_a_conflict,
    writes_to_a_missing_session_are_not_found,
    a_second_session_with_a_taken_id_already_exists,
    history_pages_by_seq,
    counters_follow_the_effects,
    the_response_time_window_is_bounded,
    ending_twice_keeps_the_first_end_time,
    handoff_states_round_trip,
    sessions_written_concurrently_stay_separate,
    appends_racing_field_writes_lose_nothing,
);

/// Instantiates every catalog case once per adapter; the cases get both ports of a store.
macro_rules! catalog_contract {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod catalog_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::support::memory_store()).await;
                }
            )*
        }

        mod catalog_mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = crate::support::mongo(stringify!($case)).await else {
                        return;
                    };
                    crate::$module::$case(store.store()).await;
                    store.drop_database().await;
                }
            )*
        }
    };
}

catalog_contract!(
    catalog::summaries_show_what_was_stored,
    catalog::every_filter_selects_its_sessions,
    catalog::every_sort_orders_both_ways_with_ties_by_id,
    catalog::pages_concatenate_to_the_whole_listing,
    catalog::totals_ignore_limit_and_offset,
    catalog::handoff_flags_stay_after_release,
    catalog::durations_run_to_the_last_activity_or_the_end,
    catalog::an_end_racing_appends_freezes_the_duration,
    catalog_shares::stats_add_up_the_sessions_created_in_a_range,
    catalog_shares::share_grants_are_set_replaced_revoked_and_expire,
    catalog_shares::share_writes_racing_appends_lose_nothing,
);

/// Instantiates every file catalog case once per adapter; the cases get the session
/// repository and the file catalog of one store.
macro_rules! files_contract {
    ($($case:ident),* $(,)?) => {
        mod files_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = std::sync::Arc::new(chatbox_memory_store::MemorySessionRepository::new(1000));
                    crate::files::$case(store).await;
                }
            )*
        }

        mod files_mongodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = crate::support::mongo(stringify!($case)).await else {
                        return;
                    };
                    crate::files::$case(store.shared()).await;
                    store.drop_database().await;
                }
            )*
        }
    };
}

files_contract!(
    a_file_reads_back_with_every_field,
    a_taken_file_id_already_exists,
    only_its_owner_attaches_a_file_and_only_to_one_session,
    uploads_count_that_owner_from_since_on,
    unattached_files_expire_after_the_orphan_age,
    ending_a_session_puts_its_files_under_retention,
    expired_files_respect_the_limit,
    a_deleted_file_is_forgotten,
);
