//! The catalog's listing cases (`SessionCatalog`), each run against every adapter (see
//! `main.rs`): summaries, every filter, every sort in both directions with the tie-break
//! by id, pagination, totals, the sticky handoff flags, and durations.
//!
//! Most cases share one fixture of six sessions ([`seed`]) whose values tie on every sort
//! key somewhere, and which are created in an order unlike their ids, so an order that
//! leans on insertion or chance instead of the id tie-break shows.

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ports::{SessionPage, SessionQuery, SessionSort, SessionSummary};
use chatbox_domain::{
    HandoffState, MessageEffects, MessageId, ModelId, Sender, Seq, Session, SessionId, StoredMessage, UserId,
};

use crate::support::{Store, at};

pub type Repo = Arc<dyn Store>;

pub fn sid(id: &str) -> SessionId {
    SessionId::parse(id).expect("id")
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("id")
}

/// A new session of `owner` created at `at(created_ms)`.
pub async fn create(repo: &Repo, id: &str, owner: &str, created_ms: i64) {
    let session = Session::new(sid(id), user(owner), ModelId::parse("demo").expect("id"), at(created_ms));
    repo.create(&session).await.expect("create");
}

/// Appends message `seq` stored at `at(at_ms)` with `effects`.
pub async fn append(repo: &Repo, id: &str, seq: u64, at_ms: i64, effects: MessageEffects) {
    let sender = if effects.response_time.is_some() { Sender::Ai } else { Sender::User };
    let message = StoredMessage::text(
        MessageId::parse(&format!("{id}-m{seq}")).expect("id"),
        Seq(seq),
        sender,
        format!("message {seq}"),
        at(at_ms),
    );
    repo.append_message(&sid(id), &message, &effects).await.expect("append");
}

/// The effects of an answer that cost `tokens` and took `ms`.
pub fn answer(tokens: u64, ms: u64) -> MessageEffects {
    MessageEffects { tokens, response_time: Some(Duration::from_millis(ms)), ..MessageEffects::default() }
}

pub fn admin(name: &str) -> HandoffState {
    HandoffState::AdminAssisting { admin_id: user("admin-1"), admin_name: name.into() }
}

/// The fixture (times in ms after `at(0)`):
///
/// | id | owner | created | last activity | ended | duration | messages | tokens | flags |
/// |----|-------|---------|---------------|-------|----------|----------|--------|-------|
/// | s0 | u-c | 2000 | 3500 | | 1500 | 1 | 0 | admin assisted (Ann), released |
/// | s1 | u-b | 1000 | 7000 | | 6000 | 3 | 50 | named "First"; answers of 200 and 400 ms |
/// | s2 | u-a | 1000 | 5000 | 5000 | 4000 | 0 | 0 | |
/// | s3 | u-a | 3000 | 9000 | 9000 | 6000 | 2 | 50 | help requested; an answer of 1000 ms |
/// | s4 | u-b | 4000 | 4000 | | 0 | 0 | 0 | never touched |
/// | s5 | u-a | 5000 | 5000 | 5000 | 0 | 0 | 0 | ended as created |
pub async fn seed(repo: &Repo) {
    // Created in an order unlike the ids.
    create(repo, "s5", "u-a", 5_000).await;
    create(repo, "s4", "u-b", 4_000).await;
    create(repo, "s3", "u-a", 3_000).await;
    create(repo, "s2", "u-a", 1_000).await;
    create(repo, "s1", "u-b", 1_000).await;
    create(repo, "s0", "u-c", 2_000).await;

    append(repo, "s0", 1, 2_500, MessageEffects::default()).await;
    repo.set_handoff(&sid("s0"), &admin("Ann"), at(3_000)).await.expect("take over");
    repo.set_handoff(&sid("s0"), &HandoffState::Ai, at(3_500)).await.expect("release");

    let named = MessageEffects { name: Some("First".into()), ..MessageEffects::default() };
    append(repo, "s1", 1, 2_000, named).await;
    append(repo, "s1", 2, 6_000, answer(50, 200)).await;
    append(repo, "s1", 3, 7_000, answer(0, 400)).await;

    repo.end(&sid("s2"), at(5_000)).await.expect("end");

    append(repo, "s3", 1, 3_500, MessageEffects::default()).await;
    append(repo, "s3", 2, 4_000, answer(50, 1_000)).await;
    repo.set_handoff(&sid("s3"), &HandoffState::HelpRequested, at(4_500)).await.expect("help");
    repo.end(&sid("s3"), at(9_000)).await.expect("end");

    repo.end(&sid("s5"), at(5_000)).await.expect("end");
}

pub const ALL: usize = 6;

pub fn query(sort: SessionSort, descending: bool) -> SessionQuery {
    SessionQuery { sort, descending, limit: 100, ..SessionQuery::recent(100) }
}

pub fn ids(page: &SessionPage) -> Vec<&str> {
    page.sessions.iter().map(|s| s.id.as_str()).collect()
}

async fn list(repo: &Repo, query: &SessionQuery) -> SessionPage {
    repo.list_sessions(query).await.expect("list")
}

/// Every sort, both directions, and the order the fixture must come in.
pub const ORDERS: [(SessionSort, bool, [&str; ALL]); 14] = [
    (SessionSort::StartTime, false, ["s1", "s2", "s0", "s3", "s4", "s5"]),
    (SessionSort::StartTime, true, ["s5", "s4", "s3", "s0", "s1", "s2"]),
    (SessionSort::EndTime, false, ["s0", "s1", "s4", "s2", "s5", "s3"]),
    (SessionSort::EndTime, true, ["s3", "s2", "s5", "s0", "s1", "s4"]),
    (SessionSort::LastActivity, false, ["s0", "s4", "s2", "s5", "s1", "s3"]),
    (SessionSort::LastActivity, true, ["s3", "s1", "s2", "s5", "s4", "s0"]),
    (SessionSort::Duration, false, ["s4", "s5", "s0", "s2", "s1", "s3"]),
    (SessionSort::Duration, true, ["s1", "s3", "s2", "s0", "s4", "s5"]),
    (SessionSort::MessageCount, false, ["s2", "s4", "s5", "s0", "s3", "s1"]),
    (SessionSort::MessageCount, true, ["s1", "s3", "s0", "s2", "s4", "s5"]),
    (SessionSort::TotalTokens, false, ["s0", "s2", "s4", "s5", "s1", "s3"]),
    (SessionSort::TotalTokens, true, ["s1", "s3", "s0", "s2", "s4", "s5"]),
    (SessionSort::UserId, false, ["s2", "s3", "s5", "s1", "s4", "s0"]),
    (SessionSort::UserId, true, ["s0", "s1", "s4", "s2", "s3", "s5"]),
];

pub async fn summaries_show_what_was_stored(repo: Repo) {
    seed(&repo).await;
    let s1 = repo.summary(&sid("s1")).await.expect("summary").expect("exists");
    let expected = SessionSummary {
        id: sid("s1"),
        owner: user("u-b"),
        name: Some("First".into()),
        model_id: ModelId::parse("demo").expect("id"),
        message_count: 3,
        created_at: at(1_000),
        last_activity: at(7_000),
        ended_at: None,
        duration_ms: 6_000,
        total_tokens: 50,
        avg_response_ms: Some(300),
        max_response_ms: Some(400),
        help_requested: false,
        admin_assisted: false,
        assisting_admin_name: None,
    };
    assert_eq!(s1, expected);

    let s3 = repo.summary(&sid("s3")).await.expect("summary").expect("exists");
    assert_eq!((s3.ended_at, s3.duration_ms, s3.message_count), (Some(at(9_000)), 6_000, 2));
    assert_eq!((s3.avg_response_ms, s3.max_response_ms), (Some(1_000), Some(1_000)));
    assert!(s3.help_requested && !s3.admin_assisted);

    // Created, never written to: listed with zeros and no response times.
    let s4 = repo.summary(&sid("s4")).await.expect("summary").expect("exists");
    assert_eq!((s4.message_count, s4.total_tokens, s4.duration_ms), (0, 0, 0));
    assert_eq!((s4.name.as_deref(), s4.avg_response_ms, s4.max_response_ms), (None, None, None));
    assert_eq!(s4.last_activity, at(4_000));
    assert!(repo.summary(&sid("s-unknown")).await.expect("summary").is_none());

    // A listing shows the same summaries as `summary`.
    let page = list(&repo, &query(SessionSort::StartTime, false)).await;
    assert_eq!(page.sessions.len(), ALL);
    for listed in &page.sessions {
        assert_eq!(Some(listed), repo.summary(&listed.id).await.expect("summary").as_ref());
    }
    assert_eq!(page.sessions.iter().find(|s| s.id == sid("s4")).map(|s| s.message_count), Some(0));
}

pub async fn every_filter_selects_its_sessions(repo: Repo) {
    seed(&repo).await;
    let by_start = query(SessionSort::StartTime, false);
    let cases: [(SessionQuery, &[&str]); 13] = [
        (SessionQuery { user_id: Some(user("u-a")), ..by_start.clone() }, &["s2", "s3", "s5"]),
        (SessionQuery { user_id: Some(user("u-nobody")), ..by_start.clone() }, &[]),
        (SessionQuery { active: Some(true), ..by_start.clone() }, &["s1", "s0", "s4"]),
        (SessionQuery { active: Some(false), ..by_start.clone() }, &["s2", "s3", "s5"]),
        (SessionQuery { admin_assisted: Some(true), ..by_start.clone() }, &["s0"]),
        (SessionQuery { admin_assisted: Some(false), ..by_start.clone() }, &["s1", "s2", "s3", "s4", "s5"]),
        (SessionQuery { help_requested: Some(true), ..by_start.clone() }, &["s3"]),
        (SessionQuery { help_requested: Some(false), ..by_start.clone() }, &["s1", "s2", "s0", "s4", "s5"]),
        // Both ends of the creation range are inclusive.
        (SessionQuery { created_from: Some(at(2_000)), ..by_start.clone() }, &["s0", "s3", "s4", "s5"]),
        (SessionQuery { created_to: Some(at(3_000)), ..by_start.clone() }, &["s1", "s2", "s0", "s3"]),
        (
            SessionQuery { created_from: Some(at(2_000)), created_to: Some(at(3_000)), ..by_start.clone() },
            &["s0", "s3"],
        ),
        (
            SessionQuery { created_from: Some(at(3_001)), created_to: Some(at(2_999)), ..by_start.clone() },
            &[],
        ),
        (
            SessionQuery {
                user_id: Some(user("u-a")),
                active: Some(false),
                created_to: Some(at(3_000)),
                ..by_start.clone()
            },
            &["s2", "s3"],
        ),
    ];
    for (query, expected) in cases {
        let page = list(&repo, &SessionQuery { with_total: true, ..query.clone() }).await;
        assert_eq!(ids(&page), expected, "{query:?}");
        assert_eq!(page.total, Some(expected.len() as u64), "{query:?}");
    }
}

pub async fn every_sort_orders_both_ways_with_ties_by_id(repo: Repo) {
    seed(&repo).await;
    for (sort, descending, expected) in ORDERS {
        let page = list(&repo, &query(sort, descending)).await;
        assert_eq!(ids(&page), expected, "{sort:?}, descending: {descending}");
    }
}

pub async fn pages_concatenate_to_the_whole_listing(repo: Repo) {
    seed(&repo).await;
    for (sort, descending, expected) in ORDERS {
        for size in [1, 2, 4] {
            let mut seen = Vec::new();
            for offset in (0..ALL + size).step_by(size) {
                let page = SessionQuery { limit: size, offset, with_total: true, ..query(sort, descending) };
                let page = list(&repo, &page).await;
                assert!(page.sessions.len() <= size);
                assert_eq!(page.total, Some(ALL as u64), "the total ignores limit and offset");
                seen.extend(ids(&page).into_iter().map(str::to_owned));
            }
            assert_eq!(seen, expected, "{sort:?}, descending: {descending}, pages of {size}");
        }
    }
}

pub async fn totals_ignore_limit_and_offset(repo: Repo) {
    seed(&repo).await;
    let base = query(SessionSort::LastActivity, true);
    let page = list(&repo, &SessionQuery { limit: 2, offset: 1, with_total: true, ..base.clone() }).await;
    assert_eq!((ids(&page), page.total), (vec!["s1", "s2"], Some(6)));
    let page = list(&repo, &SessionQuery { limit: 2, offset: 1, ..base.clone() }).await;
    assert_eq!((ids(&page), page.total), (vec!["s1", "s2"], None), "no total unless asked");
    let page = list(&repo, &SessionQuery { limit: 0, with_total: true, ..base.clone() }).await;
    assert_eq!((page.sessions.len(), page.total), (0, Some(6)), "a limit of 0 is an empty page");
    let page = list(&repo, &SessionQuery { offset: 50, with_total: true, ..base.clone() }).await;
    assert_eq!((page.sessions.len(), page.total), (0, Some(6)), "past the end");
    let filtered = SessionQuery { active: Some(true), limit: 1, with_total: true, ..base };
    assert_eq!(list(&repo, &filtered).await.total, Some(3), "the total counts with the same filter");
}

pub async fn handoff_flags_stay_after_release(repo: Repo) {
    create(&repo, "s-flags", "u-a", 0).await;
    create(&repo, "s-plain", "u-a", 0).await;
    let id = sid("s-flags");
    let fresh = repo.summary(&id).await.expect("summary").expect("exists");
    assert!(!fresh.help_requested && !fresh.admin_assisted && fresh.assisting_admin_name.is_none());

    repo.set_handoff(&id, &HandoffState::HelpRequested, at(1_000)).await.expect("help");
    repo.set_handoff(&id, &HandoffState::Ai, at(1_500)).await.expect("back to the model");
    let asked = repo.summary(&id).await.expect("summary").expect("exists");
    assert!(asked.help_requested && !asked.admin_assisted, "help was asked once: {asked:?}");

    repo.set_handoff(&id, &admin("Ann"), at(2_000)).await.expect("take over");
    repo.set_handoff(&id, &HandoffState::Ai, at(3_000)).await.expect("release");
    let released = repo.summary(&id).await.expect("summary").expect("exists");
    assert!(released.help_requested && released.admin_assisted, "{released:?}");
    assert_eq!(released.assisting_admin_name.as_deref(), Some("Ann"), "the last admin's name stays");

    repo.set_handoff(&id, &admin("Bob"), at(4_000)).await.expect("another admin");
    repo.set_handoff(&id, &HandoffState::HelpRequested, at(5_000)).await.expect("help again");
    let later = repo.summary(&id).await.expect("summary").expect("exists");
    assert_eq!(later.assisting_admin_name.as_deref(), Some("Bob"), "the admin who assisted last");
    assert!(later.admin_assisted);

    let assisted = SessionQuery { admin_assisted: Some(true), ..query(SessionSort::StartTime, false) };
    assert_eq!(ids(&list(&repo, &assisted).await), ["s-flags"]);
    let helped = SessionQuery { help_requested: Some(true), ..query(SessionSort::StartTime, false) };
    assert_eq!(ids(&list(&repo, &helped).await), ["s-flags"]);
}

/// Active: up to the last activity, whichever write moved it. Ended: up to the end, even
/// when writes come after it (an answer stored after the end, an admin releasing).
pub async fn durations_run_to_the_last_activity_or_the_end(repo: Repo) {
    create(&repo, "s-long", "u-a", 1_000).await;
    create(&repo, "s-mid", "u-a", 1_000).await;
    let id = sid("s-long");
    let duration = |repo: Repo| async move {
        repo.summary(&sid("s-long")).await.expect("summary").expect("exists").duration_ms
    };
    assert_eq!(duration(repo.clone()).await, 0);
    append(&repo, "s-long", 1, 3_000, MessageEffects::default()).await;
    assert_eq!(duration(repo.clone()).await, 2_000);
    repo.set_model(&id, &ModelId::parse("other").expect("id"), at(2_500)).await.expect("model");
    assert_eq!(duration(repo.clone()).await, 2_000, "an earlier time moves nothing");
    repo.set_handoff(&id, &HandoffState::HelpRequested, at(4_000)).await.expect("help");
    assert_eq!(duration(repo.clone()).await, 3_000);
    repo.end(&id, at(5_000)).await.expect("end");
    assert_eq!(duration(repo.clone()).await, 4_000);
    append(&repo, "s-long", 2, 10_000, answer(1, 10)).await;
    repo.set_model(&id, &ModelId::parse("late").expect("id"), at(11_000)).await.expect("model");
    repo.set_handoff(&id, &HandoffState::Ai, at(12_000)).await.expect("handoff");
    repo.end(&id, at(13_000)).await.expect("ending again changes nothing");
    let ended = repo.summary(&id).await.expect("summary").expect("exists");
    assert_eq!((ended.duration_ms, ended.ended_at), (4_000, Some(at(5_000))), "frozen at the end");
    assert!(ended.last_activity >= at(12_000), "while the activity moved on");

    // The sort agrees: 4000 (ended) sorts before 4500 (active).
    append(&repo, "s-mid", 1, 5_500, MessageEffects::default()).await;
    for (descending, expected) in [(false, ["s-long", "s-mid"]), (true, ["s-mid", "s-long"])] {
        let page = list(&repo, &query(SessionSort::Duration, descending)).await;
        assert_eq!(ids(&page), expected, "descending: {descending}");
    }
}

/// An end racing the last append of its session: the duration of the ended session runs
/// to its end, not to the message stored after it. The end is sent as the last append
/// starts, so it lands between that append's read and its update (a later append would
/// repair a wrong duration, so the race that matters is with the last write).
pub async fn an_end_racing_appends_freezes_the_duration(repo: Repo) {
    const SESSIONS: u64 = 6;
    const MESSAGES: u64 = 6;
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let repo = repo.clone();
            tokio::spawn(async move {
                let id = format!("s-end-race-{n}");
                create(&repo, &id, "u-a", 0).await;
                let (busy, started) = tokio::sync::oneshot::channel();
                let appender = {
                    let (repo, id) = (repo.clone(), id.clone());
                    tokio::spawn(async move {
                        let mut busy = Some(busy);
                        for seq in 1..=MESSAGES {
                            let at_ms = 1_000 * i64::try_from(seq).expect("small");
                            append(&repo, &id, seq, at_ms, answer(1, 5)).await;
                            if seq == MESSAGES - 1
                                && let Some(busy) = busy.take()
                            {
                                let _ = busy.send(());
                            }
                        }
                    })
                };
                started.await.expect("the appender got going");
                repo.end(&sid(&id), at(3_500)).await.expect("end");
                appender.await.expect("appender");
                id
            })
        })
        .collect();
    for task in tasks {
        let id = task.await.expect("session");
        let summary = repo.summary(&sid(&id)).await.expect("summary").expect("exists");
        assert_eq!((summary.duration_ms, summary.message_count), (3_500, MESSAGES), "{id}");
    }
    // The stored sort key agrees: a session of 4000 ms sorts before all of them.
    create(&repo, "s-ref", "u-a", 0).await;
    append(&repo, "s-ref", 1, 4_000, MessageEffects::default()).await;
    let page = repo.list_sessions(&query(SessionSort::Duration, true)).await.expect("list");
    let expected: Vec<String> =
        std::iter::once("s-ref".to_owned()).chain((0..SESSIONS).map(|n| format!("s-end-race-{n}"))).collect();
    assert_eq!(ids(&page), expected);
}
