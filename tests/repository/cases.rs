//! The contract cases, each run against every adapter (see `main.rs`).

use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ports::{RepositoryError, SessionRepository};
use chatbox_domain::validation::Metadata;
use chatbox_domain::{
    AnswerTiming, ClientMessageId, FinishReason, HandoffState, MessageEffects, MessageId, MessageKind,
    ModelId, ProviderConversation, Sender, Seq, SessionId, StoredMessage, Usage, UserId,
};

use crate::support::{append_texts, at, session, text};

type Repo = Arc<dyn SessionRepository>;

fn sid(id: &str) -> SessionId {
    SessionId::parse(id).expect("id")
}

fn model(id: &str) -> ModelId {
    ModelId::parse(id).expect("id")
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq.0).collect()
}

pub async fn a_new_session_loads_as_created(repo: Repo) {
    let created = session("s-new");
    repo.create(&created).await.expect("create");
    assert_eq!(repo.load(&created.id).await.expect("load"), Some(created));
    assert_eq!(repo.load(&sid("s-unknown")).await.expect("load"), None);
    repo.ping().await.expect("ping");
}

pub async fn messages_come_back_in_seq_order_with_every_field(repo: Repo) {
    let s = session("s-fields");
    repo.create(&s).await.expect("create");
    let mut answer = StoredMessage::text(
        MessageId::parse("answer-2").expect("id"),
        Seq(2),
        Sender::Ai,
        "An answer with ünïcödé and \"quotes\"".into(),
        at(2_345),
    );
    answer.finish_reason = Some(FinishReason::Length);
    answer.usage = Some(Usage { prompt_tokens: 11, completion_tokens: 22, estimated: false });
    answer.model_id = Some("demo".into());
    answer.timing = Some(AnswerTiming {
        first_token: Some(Duration::from_millis(40)),
        total: Duration::from_millis(900),
    });
    let mut file = text("s-fields", 3, "a caption");
    file.kind = MessageKind::File;
    file.file_id = Some("file-1".into());
    file.file_url = Some("https://files.example/a.pdf?sig=1".into());
    file.metadata =
        Metadata::from([("size".to_owned(), "12".to_owned()), ("a.b$".to_owned(), "odd key".to_owned())]);
    file.client_message_id = Some(ClientMessageId::parse("client-3").expect("id"));
    let mut first = text("s-fields", 1, "Hello");
    first.sender = Sender::User;
    let written = vec![first, answer, file];
    for message in &written {
        repo.append_message(&s.id, message, &MessageEffects::default()).await.expect("append");
    }
    assert_eq!(repo.messages_after(&s.id, Seq(0), 100).await.expect("read"), written);
    assert_eq!(repo.recent_messages(&s.id, 100).await.expect("read"), written);
}

pub async fn a_retried_append_changes_nothing(repo: Repo) {
    let s = session("s-retry");
    repo.create(&s).await.expect("create");
    let effects = MessageEffects {
        name: Some("Named".into()),
        tokens: 30,
        response_time: Some(Duration::from_millis(700)),
        provider_conversation: None,
    };
    let message = text("s-retry", 1, "once");
    for _ in 0..3 {
        repo.append_message(&s.id, &message, &effects).await.expect("a retry is a success");
    }
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!((stored.last_seq, stored.message_count, stored.total_tokens), (Seq(1), 1, 30), "counted once");
    assert_eq!(stored.response_times.len(), 1);
    assert_eq!(repo.messages_after(&s.id, Seq(0), 10).await.expect("read"), vec![message]);
}

pub async fn a_retried_field_write_changes_nothing(repo: Repo) {
    let s = session("s-field-retry");
    repo.create(&s).await.expect("create");
    append_texts(repo.as_ref(), "s-field-retry", 2).await;
    for _ in 0..3 {
        repo.set_model(&s.id, &model("other"), at(9_000)).await.expect("set_model");
        repo.set_handoff(&s.id, &HandoffState::HelpRequested, at(9_000)).await.expect("set_handoff");
    }
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!(stored.model_id, model("other"));
    assert_eq!(stored.handoff, HandoffState::HelpRequested);
    assert_eq!((stored.last_seq, stored.message_count), (Seq(2), 2), "field writes never touch the counters");
    assert_eq!(stored.last_activity, at(9_000));
}

pub async fn a_taken_or_skipped_seq_is_a_conflict(repo: Repo) {
    let s = session("s-conflict");
    repo.create(&s).await.expect("create");
    append_texts(repo.as_ref(), "s-conflict", 2).await;
    let mut intruder = text("s-conflict", 2, "another message at a taken seq");
    intruder.id = MessageId::parse("intruder").expect("id");
    let taken = repo.append_message(&s.id, &intruder, &MessageEffects::default()).await;
    assert!(matches!(taken, Err(RepositoryError::Conflict)), "taken seq: {taken:?}");
    let gap = repo.append_message(&s.id, &text("s-conflict", 4, "skips 3"), &MessageEffects::default()).await;
    assert!(matches!(gap, Err(RepositoryError::Conflict)), "a gap: {gap:?}");
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!((stored.last_seq, stored.message_count), (Seq(2), 2));
    assert_eq!(seqs(&repo.messages_after(&s.id, Seq(0), 10).await.expect("read")), [1, 2]);
    assert_eq!(repo.messages_after(&s.id, Seq(1), 1).await.expect("read")[0].content, "message 2");
}

pub async fn writes_to_a_missing_session_are_not_found(repo: Repo) {
    let missing = sid("s-missing");
    let append = repo.append_message(&missing, &text("s-missing", 1, "x"), &MessageEffects::default()).await;
    assert!(matches!(append, Err(RepositoryError::NotFound)), "{append:?}");
    assert!(matches!(repo.set_model(&missing, &model("m"), at(1)).await, Err(RepositoryError::NotFound)));
    assert!(matches!(
        repo.set_handoff(&missing, &HandoffState::Ai, at(1)).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(repo.end(&missing, at(1)).await, Err(RepositoryError::NotFound)));
    assert!(repo.messages_after(&missing, Seq(0), 10).await.expect("read").is_empty());
    assert!(repo.recent_messages(&missing, 10).await.expect("read").is_empty());
}

pub async fn a_second_session_with_a_taken_id_already_exists(repo: Repo) {
    let first = session("s-taken");
    repo.create(&first).await.expect("create");
    let mut second = session("s-taken");
    second.owner = UserId::parse("someone-else").expect("id");
    assert!(matches!(repo.create(&second).await, Err(RepositoryError::AlreadyExists)));
    assert_eq!(repo.load(&first.id).await.expect("load"), Some(first), "the first one is untouched");
}

pub async fn history_pages_by_seq(repo: Repo) {
    let s = session("s-pages");
    repo.create(&s).await.expect("create");
    append_texts(repo.as_ref(), "s-pages", 25).await;
    let mut after = Seq(0);
    let mut pages = Vec::new();
    loop {
        let page = repo.messages_after(&s.id, after, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        pages.push(seqs(&page));
        assert!(pages.len() <= 3, "pages never repeat");
    }
    assert_eq!(pages, [(1..=10).collect::<Vec<_>>(), (11..=20).collect(), (21..=25).collect()]);
    assert_eq!(seqs(&repo.recent_messages(&s.id, 3).await.expect("recent")), [23, 24, 25]);
    assert_eq!(seqs(&repo.recent_messages(&s.id, 100).await.expect("recent")), (1..=25).collect::<Vec<_>>());
    assert!(repo.recent_messages(&s.id, 0).await.expect("recent").is_empty());
    assert!(repo.messages_after(&s.id, Seq(0), 0).await.expect("page").is_empty());
    assert!(repo.messages_after(&s.id, Seq(25), 10).await.expect("page").is_empty());
    assert_eq!(seqs(&repo.messages_after(&s.id, Seq(24), 10).await.expect("page")), [25]);
}

pub async fn counters_follow_the_effects(repo: Repo) {
    let s = session("s-counters");
    repo.create(&s).await.expect("create");
    let dify = ProviderConversation { model_id: model("dify"), id: "conversation-1".into() };
    let steps = [
        MessageEffects { name: Some("First name".into()), ..MessageEffects::default() },
        MessageEffects::answer(
            Usage { prompt_tokens: 10, completion_tokens: 5, estimated: false },
            Duration::from_millis(1200),
            Some(dify.clone()),
        ),
        MessageEffects { name: Some("Second name".into()), ..MessageEffects::default() },
        MessageEffects::answer(
            Usage { prompt_tokens: 20, completion_tokens: 7, estimated: true },
            Duration::from_millis(800),
            None,
        ),
    ];
    for (seq, effects) in (1u64..).zip(&steps) {
        let message = text("s-counters", seq, "x");
        repo.append_message(&s.id, &message, effects).await.expect("append");
    }
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!(stored.name.as_deref(), Some("First name"), "the name is set once");
    assert_eq!(stored.total_tokens, 42);
    assert_eq!((stored.last_seq, stored.message_count), (Seq(4), 4));
    assert_eq!(
        stored.response_times.iter().collect::<Vec<_>>(),
        [Duration::from_millis(1200), Duration::from_millis(800)]
    );
    assert_eq!(stored.provider_conversation, Some(dify), "kept when an answer reports none");
    assert_eq!(stored.last_activity, at(4_000));
    assert_eq!(stored.created_at, at(0));
}

pub async fn the_response_time_window_is_bounded(repo: Repo) {
    let s = session("s-window");
    repo.create(&s).await.expect("create");
    for seq in 1..=105u64 {
        let effects = MessageEffects::answer(Usage::default(), Duration::from_millis(seq), None);
        repo.append_message(&s.id, &text("s-window", seq, "a"), &effects).await.expect("append");
    }
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!(stored.response_times.len(), chatbox_domain::session::RESPONSE_TIME_WINDOW);
    assert_eq!(stored.response_times.iter().next(), Some(Duration::from_millis(6)), "the oldest went first");
    assert_eq!(stored.response_times.max(), Some(Duration::from_millis(105)));
}

pub async fn ending_twice_keeps_the_first_end_time(repo: Repo) {
    let s = session("s-end");
    repo.create(&s).await.expect("create");
    repo.end(&s.id, at(5_000)).await.expect("end");
    repo.end(&s.id, at(9_000)).await.expect("ending again is fine");
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!(stored.ended_at(), Some(at(5_000)));
    assert!(!stored.is_active());
}

pub async fn handoff_states_round_trip(repo: Repo) {
    let s = session("s-handoff");
    repo.create(&s).await.expect("create");
    let assisting = HandoffState::AdminAssisting {
        admin_id: UserId::parse("admin-1").expect("id"),
        admin_name: "Ann Admin".into(),
    };
    for state in [HandoffState::HelpRequested, assisting, HandoffState::Ai] {
        repo.set_handoff(&s.id, &state, at(1_000)).await.expect("set_handoff");
        assert_eq!(repo.load(&s.id).await.expect("load").expect("exists").handoff, state);
    }
}

pub async fn sessions_written_concurrently_stay_separate(repo: Repo) {
    let writers: Vec<_> = (0..6)
        .map(|n| {
            let repo = repo.clone();
            tokio::spawn(async move {
                let id = format!("s-concurrent-{n}");
                repo.create(&session(&id)).await.expect("create");
                for seq in 1..=15u64 {
                    let message = text(&id, seq, &format!("{id} says {seq}"));
                    repo.append_message(&sid(&id), &message, &MessageEffects::default())
                        .await
                        .expect("append");
                    if seq % 5 == 0 {
                        repo.set_model(&sid(&id), &model(&format!("model-{seq}")), at(1))
                            .await
                            .expect("set_model");
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    for n in 0..6 {
        let id = format!("s-concurrent-{n}");
        let stored = repo.load(&sid(&id)).await.expect("load").expect("exists");
        assert_eq!((stored.last_seq, stored.message_count), (Seq(15), 15));
        assert_eq!(stored.model_id, model("model-15"));
        let messages = repo.messages_after(&sid(&id), Seq(0), 100).await.expect("read");
        assert_eq!(seqs(&messages), (1..=15).collect::<Vec<_>>());
        assert!(
            messages.iter().all(|m| m.content.starts_with(&format!("{id} says"))),
            "no message crossed over"
        );
    }
}

/// THE race of the write contract: the single writer of messages appends 1..N while
/// another writer changes the model, the handoff state and ends the session, many times.
/// Nothing either does may undo the other's work.
pub async fn appends_racing_field_writes_lose_nothing(repo: Repo) {
    const N: u64 = 60;
    const FIELD_WRITES: u64 = 150;
    let s = session("s-race");
    repo.create(&s).await.expect("create");
    let appender = {
        let repo = repo.clone();
        tokio::spawn(async move {
            for seq in 1..=N {
                let effects = MessageEffects { tokens: 1, ..MessageEffects::default() };
                repo.append_message(&sid("s-race"), &text("s-race", seq, "racing"), &effects)
                    .await
                    .expect("append");
            }
        })
    };
    let field_writer = {
        let repo = repo.clone();
        tokio::spawn(async move {
            let id = sid("s-race");
            for n in 1..=FIELD_WRITES {
                repo.set_model(&id, &model(&format!("model-{n}")), at(1)).await.expect("set_model");
                let state = if n % 2 == 0 { HandoffState::HelpRequested } else { HandoffState::Ai };
                repo.set_handoff(&id, &state, at(1)).await.expect("set_handoff");
                if n % 50 == 0 {
                    repo.end(&id, at(i64::try_from(n).expect("small"))).await.expect("end");
                }
                tokio::task::yield_now().await;
            }
        })
    };
    appender.await.expect("appender");
    field_writer.await.expect("field writer");
    let stored = repo.load(&s.id).await.expect("load").expect("exists");
    assert_eq!((stored.last_seq, stored.message_count, stored.total_tokens), (Seq(N), N, N));
    assert_eq!(stored.model_id, model(&format!("model-{FIELD_WRITES}")), "the last model set wins");
    assert_eq!(stored.handoff, HandoffState::HelpRequested);
    assert_eq!(stored.ended_at(), Some(at(50)), "the first end stays");
    let messages = repo.messages_after(&s.id, Seq(0), 1000).await.expect("read");
    assert_eq!(seqs(&messages), (1..=N).collect::<Vec<_>>(), "gapless and unique");
}
