//! The `FileCatalog` contract: stored files' records in the session store. Each case runs
//! against the memory adapter and MongoDB (see `main.rs`); the stored layout (the name
//! encrypted, the indexes) is checked on MongoDB alone at the end.

use std::sync::Arc;

use chatbox_application::ports::{
    ExpiredFile, FileCatalog, RepositoryError, SessionRepository, UploadTotals,
};
use chatbox_domain::upload::{ExpiryReason, FileId, MediaType, StoredFile};
use chatbox_domain::{SessionId, UserId};
use chatbox_mongodb_store::mongodb::bson::{Bson, doc};

use crate::support::{at, mongo, session};

/// Both ports a store hands to the file use-cases.
pub trait Files: SessionRepository + FileCatalog {}

impl<T: SessionRepository + FileCatalog> Files for T {}

type Repo = Arc<dyn Files>;

/// The owner of `support::session`'s sessions.
const ALICE: &str = "user-1";
const BOB: &str = "user-2";

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("user")
}

fn sid(id: &str) -> SessionId {
    SessionId::parse(id).expect("session")
}

fn fid(seed: u8) -> FileId {
    FileId::from_random([seed; 16])
}

/// An unattached file of `owner`, `size` bytes, created at `created_ms`.
fn upload(seed: u8, owner: &str, size: u64, created_ms: i64) -> StoredFile {
    StoredFile {
        id: fid(seed),
        owner: user(owner),
        session: None,
        name: Arc::from(format!("report ünï {seed}.pdf")),
        media_type: MediaType::from_essence("application/pdf").expect("pdf"),
        size,
        sha256: format!("{seed:02x}").repeat(32),
        created_at: at(created_ms),
        attached_at: None,
    }
}

async fn insert(repo: &Repo, file: &StoredFile) {
    repo.insert_file(file).await.expect("insert file");
}

async fn expired(repo: &Repo, orphaned_ms: i64, ended_ms: i64, limit: usize) -> Vec<ExpiredFile> {
    repo.expired_files(at(orphaned_ms), at(ended_ms), limit).await.expect("expired files")
}

fn expiry(seed: u8, reason: ExpiryReason) -> ExpiredFile {
    ExpiredFile { id: fid(seed), reason }
}

pub async fn a_file_reads_back_with_every_field(repo: Repo) {
    let unattached = upload(1, ALICE, 1234, 500);
    insert(&repo, &unattached).await;
    assert_eq!(repo.file(&unattached.id).await.expect("read"), Some(unattached));
    let mut attached = upload(2, BOB, u64::from(u32::MAX) + 7, 600);
    attached.media_type = MediaType::from_essence("image/png").expect("png");
    attached.session = Some(sid("s-any"));
    attached.attached_at = Some(at(700));
    insert(&repo, &attached).await;
    assert_eq!(repo.file(&attached.id).await.expect("read"), Some(attached));
    assert_eq!(repo.file(&fid(3)).await.expect("read"), None);
}

pub async fn a_taken_file_id_already_exists(repo: Repo) {
    let file = upload(1, ALICE, 10, 500);
    insert(&repo, &file).await;
    repo.insert_file(&file).await.expect("the same record again is a retry: success");
    let mut other = upload(1, BOB, 99, 900);
    other.name = Arc::from("another.pdf");
    assert!(matches!(repo.insert_file(&other).await, Err(RepositoryError::AlreadyExists)));
    let mut same_owner = file.clone();
    same_owner.sha256 = "ff".repeat(32);
    assert!(matches!(repo.insert_file(&same_owner).await, Err(RepositoryError::AlreadyExists)));
    assert_eq!(repo.file(&file.id).await.expect("read"), Some(file), "the first record stays");
}

pub async fn only_its_owner_attaches_a_file_and_only_to_one_session(repo: Repo) {
    let file = upload(1, ALICE, 10, 500);
    insert(&repo, &file).await;
    let (one, two) = (sid("s-one"), sid("s-two"));

    let by_bob = repo.attach_file(&file.id, &user(BOB), &one, at(1000)).await.expect("attach");
    assert_eq!(by_bob, None, "another user's file");
    assert_eq!(repo.file(&file.id).await.expect("read"), Some(file.clone()), "left unattached");

    let attached = repo.attach_file(&file.id, &user(ALICE), &one, at(1000)).await.expect("attach");
    let expected = StoredFile { session: Some(one.clone()), attached_at: Some(at(1000)), ..file.clone() };
    assert_eq!(attached, Some(expected.clone()), "the record as it is after");
    assert_eq!(repo.file(&file.id).await.expect("read"), Some(expected.clone()));

    let again = repo.attach_file(&file.id, &user(ALICE), &one, at(2000)).await.expect("attach");
    assert_eq!(again, Some(expected.clone()), "again in the same session: unchanged, attached_at kept");
    let elsewhere = repo.attach_file(&file.id, &user(ALICE), &two, at(3000)).await.expect("attach");
    assert_eq!(elsewhere, None, "never moved to another session");
    let bob_same = repo.attach_file(&file.id, &user(BOB), &one, at(3000)).await.expect("attach");
    assert_eq!(bob_same, None, "not bob's, even in its session");
    assert_eq!(repo.file(&file.id).await.expect("read"), Some(expected));

    let missing = repo.attach_file(&fid(9), &user(ALICE), &one, at(1000)).await.expect("attach");
    assert_eq!(missing, None);
}

pub async fn uploads_count_that_owner_from_since_on(repo: Repo) {
    for file in [
        upload(1, ALICE, 10, 1000),
        upload(2, ALICE, 20, 2000),
        upload(3, ALICE, 30, 3000),
        upload(4, BOB, 100, 2500),
    ] {
        insert(&repo, &file).await;
    }
    repo.attach_file(&fid(3), &user(ALICE), &sid("s-one"), at(3500))
        .await
        .expect("attach")
        .expect("attached");
    let totals = |owner: &'static str, since: i64| {
        let repo = repo.clone();
        async move { repo.uploaded_since(&user(owner), at(since)).await.expect("totals") }
    };
    assert_eq!(totals(ALICE, 2000).await, UploadTotals { files: 2, bytes: 50 }, "from `since` on, inclusive");
    assert_eq!(totals(ALICE, 0).await, UploadTotals { files: 3, bytes: 60 });
    assert_eq!(totals(ALICE, 3001).await, UploadTotals::default());
    assert_eq!(totals(BOB, 0).await, UploadTotals { files: 1, bytes: 100 });
    assert_eq!(totals("user-3", 0).await, UploadTotals::default());
}

pub async fn unattached_files_expire_after_the_orphan_age(repo: Repo) {
    insert(&repo, &upload(1, ALICE, 10, 1000)).await;
    insert(&repo, &upload(2, ALICE, 10, 3000)).await;
    insert(&repo, &upload(3, BOB, 10, 5000)).await;
    insert(&repo, &upload(4, ALICE, 10, 500)).await;
    let s = session("s-active");
    repo.create(&s).await.expect("create");
    repo.attach_file(&fid(4), &user(ALICE), &s.id, at(600)).await.expect("attach").expect("attached");

    assert_eq!(
        expired(&repo, 3000, 1_000_000, 10).await,
        vec![expiry(1, ExpiryReason::Orphan)],
        "created before the cut-off (not at it), never attached; an attached file of an active session never"
    );
    assert_eq!(
        expired(&repo, 5001, 1_000_000, 10).await,
        vec![
            expiry(1, ExpiryReason::Orphan),
            expiry(2, ExpiryReason::Orphan),
            expiry(3, ExpiryReason::Orphan)
        ],
        "oldest first"
    );
    assert_eq!(expired(&repo, 0, 1_000_000, 10).await, Vec::new());
}

pub async fn ending_a_session_puts_its_files_under_retention(repo: Repo) {
    let (one, two) = (session("s-one"), session("s-two"));
    repo.create(&one).await.expect("create");
    repo.create(&two).await.expect("create");
    for (seed, s) in [(1, &one), (2, &one), (3, &two)] {
        insert(&repo, &upload(seed, ALICE, 10, 100)).await;
        repo.attach_file(&fid(seed), &user(ALICE), &s.id, at(200)).await.expect("attach").expect("attached");
    }
    assert_eq!(expired(&repo, 0, 1_000_000, 10).await, Vec::new(), "no session ended yet");

    repo.end(&one.id, at(10_000)).await.expect("end");
    assert_eq!(expired(&repo, 0, 10_000, 10).await, Vec::new(), "ended at the cut-off, not before it");
    let retained = expired(&repo, 0, 10_001, 10).await;
    assert_eq!(retained.len(), 2, "{retained:?}");
    for seed in [1, 2] {
        assert!(retained.contains(&expiry(seed, ExpiryReason::Retention)), "{retained:?}");
    }

    repo.end(&one.id, at(50_000)).await.expect("ending again keeps the first end time");
    assert_eq!(expired(&repo, 0, 10_001, 10).await.len(), 2, "the files keep the first end time too");
    repo.end(&two.id, at(20_000)).await.expect("end");
    let both = expired(&repo, 0, 20_001, 10).await;
    assert_eq!(both.len(), 3, "{both:?}");
    assert_eq!(both.last(), Some(&expiry(3, ExpiryReason::Retention)), "earliest end first");
    let record = repo.file(&fid(1)).await.expect("read").expect("exists");
    assert_eq!(record.session, Some(one.id.clone()), "the record itself is unchanged by the end");
}

pub async fn expired_files_respect_the_limit(repo: Repo) {
    let s = session("s-ended");
    repo.create(&s).await.expect("create");
    for seed in 1..=3 {
        insert(&repo, &upload(seed, ALICE, 10, i64::from(seed) * 100)).await;
    }
    for seed in 4..=5 {
        insert(&repo, &upload(seed, ALICE, 10, 100)).await;
        repo.attach_file(&fid(seed), &user(ALICE), &s.id, at(200)).await.expect("attach").expect("attached");
    }
    repo.end(&s.id, at(1000)).await.expect("end");
    let all = expired(&repo, 10_000, 10_000, 100).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all.iter().filter(|e| e.reason == ExpiryReason::Orphan).count(), 3, "{all:?}");
    for limit in [0, 1, 2, 3, 4] {
        let page = expired(&repo, 10_000, 10_000, limit).await;
        assert_eq!(page.len(), limit, "limit {limit}: {page:?}");
        assert!(page.iter().all(|e| all.contains(e)), "{page:?}");
    }
    let four = expired(&repo, 10_000, 10_000, 4).await;
    let reasons: Vec<_> = four.iter().map(|e| e.reason).collect();
    assert_eq!(reasons.iter().filter(|r| **r == ExpiryReason::Retention).count(), 1, "{four:?}");
}

pub async fn a_deleted_file_is_forgotten(repo: Repo) {
    let file = upload(1, ALICE, 10, 100);
    insert(&repo, &file).await;
    insert(&repo, &upload(2, ALICE, 20, 100)).await;
    repo.delete_file(&file.id).await.expect("delete");
    assert_eq!(repo.file(&file.id).await.expect("read"), None);
    repo.delete_file(&file.id).await.expect("deleting again is no error");
    assert_eq!(repo.attach_file(&file.id, &user(ALICE), &sid("s-one"), at(200)).await.expect("attach"), None);
    assert_eq!(
        repo.uploaded_since(&user(ALICE), at(0)).await.expect("totals"),
        UploadTotals { files: 1, bytes: 20 }
    );
    assert_eq!(expired(&repo, 1000, 1000, 10).await, vec![expiry(2, ExpiryReason::Orphan)]);
    assert!(repo.file(&fid(2)).await.expect("read").is_some(), "only that one");
}

/// MongoDB only: the stored file document, its name sealed (encryption is on in the
/// suite), its session's end copied onto it, and the collection's indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_documents_are_sealed_stamped_and_indexed() {
    let Some(store) = mongo("files_layout").await else {
        return;
    };
    let repo = store.shared();
    let canary = format!("SECRET{}", uuid::Uuid::new_v4().simple());
    let mut file = upload(1, ALICE, 10, 100);
    file.name = Arc::from(format!("{canary}.pdf"));
    repo.insert_file(&file).await.expect("insert");
    let s = session("s-layout");
    repo.create(&s).await.expect("create");
    repo.attach_file(&file.id, &user(ALICE), &s.id, at(200)).await.expect("attach").expect("attached");
    repo.end(&s.id, at(3000)).await.expect("end");

    let files = store.mongo().files_collection();
    assert_eq!(files.name(), "sessions_files");
    let stored = files.find_one(doc! { "_id": file.id.as_str() }).await.expect("find").expect("exists");
    assert!(
        matches!(stored.get("name"), Some(Bson::Binary(_))),
        "the name is sealed: {:?}",
        stored.get("name")
    );
    let raw = chatbox_mongodb_store::mongodb::bson::to_vec(&stored).expect("bytes");
    assert!(!raw.windows(canary.len()).any(|w| w == canary.as_bytes()), "no plaintext name in the document");
    assert_eq!(stored.get_str("owner"), Ok(ALICE));
    assert_eq!(stored.get_str("session"), Ok("s-layout"));
    assert_eq!(stored.get_str("media_type"), Ok("application/pdf"));
    assert_eq!(
        stored.get_datetime("session_ended_at").map(|d| d.timestamp_millis()),
        Ok(at(3000).timestamp_millis())
    );
    assert_eq!(repo.file(&file.id).await.expect("read").map(|f| f.name), Some(file.name.clone()));

    let unattached = upload(2, ALICE, 10, 100);
    repo.insert_file(&unattached).await.expect("insert");
    let stored = files.find_one(doc! { "_id": unattached.id.as_str() }).await.expect("find").expect("exists");
    assert_eq!(stored.get("session"), Some(&Bson::Null), "null until attached");
    assert_eq!(stored.get("session_ended_at"), None, "absent until its session ends (a sparse index)");

    let names = files.list_index_names().await.expect("indexes");
    for name in ["owner_created_at", "session_created_at", "session_ended_at"] {
        assert!(names.iter().any(|n| n == name), "index {name} in {names:?}");
    }
    store.drop_database().await;
}
