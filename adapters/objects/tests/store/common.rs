//! The stores under test, real ones only: a local directory (a fresh temporary one per
//! test) and the S3-compatible server of `scripts/s3.sh` (`S3_ENDPOINT`, `S3_BUCKET`,
//! `S3_REGION`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`). Without those variables the
//! S3 half of each test is skipped with a line on standard error, unless
//! `CHATBOX_REQUIRE_S3=1` or `CI=true`, when it fails.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chatbox_application::ports::{FileStore, FileStoreError, ObjectHeaders};
use chatbox_domain::Secret;
use chatbox_domain::upload::FileId;
use chatbox_object_store::{ObjectFileStore, ObjectStoreConfig, S3Config};
use futures::TryStreamExt as _;

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let name = format!("chatbox-objects-{}-{}", std::process::id(), new_id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One store under test.
#[derive(Debug)]
pub struct Subject {
    /// `local` or `s3`, for failure messages.
    pub name: &'static str,
    pub store: ObjectFileStore,
    /// The local store's directory.
    pub dir: Option<TempDir>,
}

/// A fresh random id.
pub fn new_id() -> FileId {
    FileId::from_random(rand::random())
}

/// The configuration of the test server, or `None` (skipped) when it is not set up.
///
/// # Panics
/// When S3 is required (`CHATBOX_REQUIRE_S3=1` or `CI=true`) and not set up.
pub fn s3_config(test: &str) -> Option<S3Config> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let Some(endpoint) = var("S3_ENDPOINT") else {
        let required =
            var("CHATBOX_REQUIRE_S3").as_deref() == Some("1") || var("CI").as_deref() == Some("true");
        assert!(!required, "S3_ENDPOINT is not set but S3 is required: start scripts/s3.sh");
        eprintln!("{test}: S3 part skipped: S3_ENDPOINT is not set (eval \"$(scripts/s3.sh start)\")");
        return None;
    };
    Some(S3Config {
        endpoint: Some(endpoint.clone()),
        access_key_id: var("S3_ACCESS_KEY_ID").map(Secret::new),
        secret_access_key: var("S3_SECRET_ACCESS_KEY").map(Secret::new),
        allow_http: endpoint.starts_with("http://"),
        timeout: Duration::from_secs(20),
        ..S3Config::new(
            var("S3_BUCKET").unwrap_or_else(|| "chatbox-test".to_owned()),
            var("S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        )
    })
}

/// A store on a fresh local directory.
pub fn local() -> Subject {
    let dir = TempDir::new();
    let store = ObjectFileStore::open(&ObjectStoreConfig::Local { dir: dir.path().join("objects") })
        .expect("local store opens");
    Subject { name: "local", store, dir: Some(dir) }
}

/// The local store and, when set up, the S3 store.
pub fn subjects(test: &str) -> Vec<Subject> {
    let mut subjects = vec![local()];
    if let Some(config) = s3_config(test) {
        let store = ObjectFileStore::open(&ObjectStoreConfig::S3(config)).expect("S3 store opens");
        subjects.push(Subject { name: "s3", store, dir: None });
    }
    subjects
}

/// Headers of a test object.
pub fn headers() -> ObjectHeaders {
    ObjectHeaders {
        content_type: "application/pdf",
        content_disposition: "attachment; filename=\"report.pdf\"".to_owned(),
    }
}

/// Writes `chunks` as the object of `id` and finishes it.
pub async fn put(store: &ObjectFileStore, id: &FileId, chunks: &[&[u8]]) {
    let mut writer = store.create(id, &headers()).await.expect("create");
    for chunk in chunks {
        writer.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    writer.finish().await.expect("finish");
}

/// The bytes of `range` of the object of `id` (all of it for `None`), and the range the
/// store said it returned.
pub async fn read(
    store: &ObjectFileStore,
    id: &FileId,
    range: Option<Range<u64>>,
) -> Result<(Range<u64>, Vec<u8>), FileStoreError> {
    let read = store.read(id, range).await?;
    let chunks: Vec<Bytes> = read.body.try_collect().await?;
    Ok((read.range, chunks.concat()))
}

/// Whether reading the object of `id` answers "not found".
pub async fn is_missing(store: &ObjectFileStore, id: &FileId) -> bool {
    match store.read(id, None).await {
        Err(FileStoreError::NotFound) => true,
        Err(other) => panic!("read failed otherwise than not found: {other}"),
        Ok(_) => false,
    }
}

/// The files left in a local store's directory (staging files included).
pub fn files_in(dir: &TempDir) -> Vec<PathBuf> {
    let folder = dir.path().join("objects").join("files");
    match std::fs::read_dir(&folder) {
        Ok(entries) => entries.map(|entry| entry.expect("directory entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits up to 5 s for `check` to hold.
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `len` bytes that differ from one position to the next (a xorshift sequence).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}
