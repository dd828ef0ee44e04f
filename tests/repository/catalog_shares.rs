//! The catalog's analytics and share-grant cases, each run against every adapter (see
//! `main.rs`): stats over creation ranges, and share grants set, replaced, revoked,
//! expired, kept apart per session, and surviving a racing append.

use chatbox_application::ports::{RepositoryError, SessionStats, ShareGrant};
use chatbox_domain::{MessageEffects, Seq};

use crate::catalog::{Repo, append, create, seed, sid};
use crate::support::at;

pub async fn stats_add_up_the_sessions_created_in_a_range(repo: Repo) {
    let empty = repo.stats(None, None).await.expect("stats");
    assert_eq!(empty, SessionStats::default(), "no sessions: zeros");
    seed(&repo).await;
    let everything = SessionStats {
        total_sessions: 6,
        active_sessions: 3,
        help_requested_sessions: 1,
        admin_assisted_sessions: 1,
        total_messages: 6,
        total_tokens: 100,
        // (200 + 400 + 1000) / 3, rounded down.
        avg_response_ms: 533,
        max_response_ms: 1_000,
    };
    assert_eq!(repo.stats(None, None).await.expect("stats"), everything);
    let cases = [
        // Both ends inclusive: s0 (2000) and s3 (3000).
        (
            Some(2_000),
            Some(3_000),
            SessionStats {
                total_sessions: 2,
                active_sessions: 1,
                help_requested_sessions: 1,
                admin_assisted_sessions: 1,
                total_messages: 3,
                total_tokens: 50,
                avg_response_ms: 1_000,
                max_response_ms: 1_000,
            },
        ),
        // Open end: s3, s4, s5.
        (
            Some(3_000),
            None,
            SessionStats {
                total_sessions: 3,
                active_sessions: 1,
                help_requested_sessions: 1,
                admin_assisted_sessions: 0,
                total_messages: 2,
                total_tokens: 50,
                avg_response_ms: 1_000,
                max_response_ms: 1_000,
            },
        ),
        // Open start, one instant: s1 and s2.
        (
            None,
            Some(1_000),
            SessionStats {
                total_sessions: 2,
                active_sessions: 1,
                help_requested_sessions: 0,
                admin_assisted_sessions: 0,
                total_messages: 3,
                total_tokens: 50,
                avg_response_ms: 300,
                max_response_ms: 400,
            },
        ),
        (Some(1_000), Some(1_000), repo.stats(None, Some(at(1_000))).await.expect("stats")),
        // Nothing in range: zeros.
        (Some(5_001), None, SessionStats::default()),
        (None, Some(999), SessionStats::default()),
        (Some(3_000), Some(2_000), SessionStats::default()),
    ];
    for (from, to, expected) in cases {
        let stats = repo.stats(from.map(at), to.map(at)).await.expect("stats");
        assert_eq!(stats, expected, "from {from:?} to {to:?}");
    }
}

fn grant(digest: &str, expires_ms: i64) -> ShareGrant {
    ShareGrant { token_digest: digest.to_owned(), expires_at: at(expires_ms) }
}

/// A digest as the service computes them: 64 lower-case hex characters.
fn digest(seed: char) -> String {
    std::iter::repeat_n(seed, 64).collect()
}

async fn shared(repo: &Repo, digest: &str, now_ms: i64) -> Option<String> {
    repo.find_shared(digest, at(now_ms)).await.expect("find_shared").map(|id| id.as_str().to_owned())
}

pub async fn share_grants_are_set_replaced_revoked_and_expire(repo: Repo) {
    create(&repo, "s-share", "u-a", 0).await;
    create(&repo, "s-other", "u-b", 0).await;
    let (first, second, other) = (digest('a'), digest('b'), digest('c'));
    assert_eq!(shared(&repo, &first, 0).await, None, "no grant yet");

    repo.set_share(&sid("s-share"), Some(&grant(&first, 10_000))).await.expect("share");
    repo.set_share(&sid("s-share"), Some(&grant(&first, 10_000))).await.expect("idempotent");
    repo.set_share(&sid("s-other"), Some(&grant(&other, 10_000))).await.expect("share");
    assert_eq!(shared(&repo, &first, 9_999).await.as_deref(), Some("s-share"));
    assert_eq!(shared(&repo, &other, 9_999).await.as_deref(), Some("s-other"), "each its own digest");
    assert_eq!(shared(&repo, &digest('d'), 0).await, None, "an unknown digest");
    assert_eq!(shared(&repo, &first, 10_000).await, None, "expires_at == now has expired");
    assert_eq!(shared(&repo, &first, 20_000).await, None, "expired");

    // Replacing: the old digest stops working at once, the new one works.
    repo.set_share(&sid("s-share"), Some(&grant(&second, 30_000))).await.expect("replace");
    assert_eq!(shared(&repo, &first, 0).await, None, "the replaced grant is gone");
    assert_eq!(shared(&repo, &second, 20_000).await.as_deref(), Some("s-share"));

    // Other writes leave the grant alone.
    append(&repo, "s-share", 1, 1_000, MessageEffects::default()).await;
    repo.end(&sid("s-share"), at(2_000)).await.expect("end");
    assert_eq!(shared(&repo, &second, 20_000).await.as_deref(), Some("s-share"));

    // Revoking: gone at once; revoking again is fine; the other session keeps its grant.
    repo.set_share(&sid("s-share"), None).await.expect("revoke");
    assert_eq!(shared(&repo, &second, 20_000).await, None);
    repo.set_share(&sid("s-share"), None).await.expect("revoking again");
    assert_eq!(shared(&repo, &other, 0).await.as_deref(), Some("s-other"));

    let missing = repo.set_share(&sid("s-missing"), Some(&grant(&first, 10_000))).await;
    assert!(matches!(missing, Err(RepositoryError::NotFound)), "{missing:?}");
    let missing = repo.set_share(&sid("s-missing"), None).await;
    assert!(matches!(missing, Err(RepositoryError::NotFound)), "{missing:?}");
}

/// The share grant and the counters have different writers; neither may undo the other
/// (on FerretDB an update rewrites the whole document, so both must go through the
/// session's lock).
pub async fn share_writes_racing_appends_lose_nothing(repo: Repo) {
    const N: u64 = 60;
    const SHARES: u64 = 120;
    create(&repo, "s-race-share", "u-a", 0).await;
    let appender = {
        let repo = repo.clone();
        tokio::spawn(async move {
            for seq in 1..=N {
                let effects = MessageEffects { tokens: 1, ..MessageEffects::default() };
                append(&repo, "s-race-share", seq, i64::try_from(seq).expect("small"), effects).await;
            }
        })
    };
    let sharer = {
        let repo = repo.clone();
        tokio::spawn(async move {
            let id = sid("s-race-share");
            for n in 1..=SHARES {
                if n % 3 == 0 {
                    repo.set_share(&id, None).await.expect("revoke");
                } else {
                    let digest = format!("{n:064x}");
                    repo.set_share(&id, Some(&grant(&digest, 1_000_000))).await.expect("share");
                }
                tokio::task::yield_now().await;
            }
            repo.set_share(&id, Some(&grant(&digest('f'), 1_000_000))).await.expect("share");
        })
    };
    appender.await.expect("appender");
    sharer.await.expect("sharer");
    let stored = repo.load(&sid("s-race-share")).await.expect("load").expect("exists");
    assert_eq!((stored.last_seq, stored.message_count, stored.total_tokens), (Seq(N), N, N));
    let summary = repo.summary(&sid("s-race-share")).await.expect("summary").expect("exists");
    assert_eq!((summary.message_count, summary.total_tokens), (N, N));
    assert_eq!(shared(&repo, &digest('f'), 0).await.as_deref(), Some("s-race-share"), "the last grant");
    assert_eq!(shared(&repo, &format!("{:064x}", SHARES - 1), 0).await, None, "earlier grants are gone");
}
