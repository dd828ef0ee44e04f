//! An object store in memory, for the file use-cases: what is finished is readable,
//! what is written is held per writer until then, and a test can make writes fail or
//! stall and see what was aborted.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatbox_application::ports::{FileStore, FileStoreError, FileWriter, ObjectHeaders, ObjectRead};
use chatbox_domain::upload::FileId;
use futures::StreamExt;

#[derive(Debug, Default)]
pub struct MemoryObjects {
    finished: Mutex<HashMap<FileId, (Vec<u8>, ObjectHeaders)>>,
    /// Writers created and not yet finished, aborted or dropped.
    open: Arc<AtomicUsize>,
    /// Writers given up (aborted or dropped before finishing).
    given_up: Arc<AtomicUsize>,
    /// Writers given up by an explicit abort.
    aborted: Arc<AtomicUsize>,
    /// Deletes asked for, failed ones included.
    deletes: AtomicUsize,
    /// Writes fail while set.
    failing: Arc<AtomicBool>,
    /// Writes never complete while set.
    stalled: Arc<AtomicBool>,
    /// Presigned URLs are made.
    presigns: AtomicBool,
}

impl MemoryObjects {
    /// The bytes of `id`, if finished.
    pub fn bytes(&self, id: &FileId) -> Option<Vec<u8>> {
        self.finished.lock().expect("lock").get(id).map(|(bytes, _)| bytes.clone())
    }

    /// The headers stored with `id`.
    pub fn headers(&self, id: &FileId) -> Option<ObjectHeaders> {
        self.finished.lock().expect("lock").get(id).map(|(_, headers)| headers.clone())
    }

    /// How many objects are readable.
    pub fn count(&self) -> usize {
        self.finished.lock().expect("lock").len()
    }

    /// Writers still open (neither finished nor given up).
    pub fn open_writers(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Writers given up.
    pub fn given_up(&self) -> usize {
        self.given_up.load(Ordering::SeqCst)
    }

    /// Writers given up by an explicit abort (not merely dropped).
    pub fn aborted(&self) -> usize {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Deletes asked for so far.
    pub fn deletes(&self) -> usize {
        self.deletes.load(Ordering::SeqCst)
    }

    /// Cuts the stored bytes of `id` to `len` (storage that lost part of an object).
    pub fn truncate(&self, id: &FileId, len: usize) {
        if let Some((bytes, _)) = self.finished.lock().expect("lock").get_mut(id) {
            bytes.truncate(len);
        }
    }

    pub fn fail_writes(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn stall_writes(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    pub fn make_presigned_urls(&self) {
        self.presigns.store(true, Ordering::SeqCst);
    }
}

struct Writer {
    id: FileId,
    headers: ObjectHeaders,
    bytes: Vec<u8>,
    objects: Arc<MemoryObjects>,
    done: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            self.objects.open.fetch_sub(1, Ordering::SeqCst);
            self.objects.given_up.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl FileWriter for Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), FileStoreError> {
        if self.objects.stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.objects.failing.load(Ordering::SeqCst) {
            return Err(FileStoreError::Unavailable("writes fail".into()));
        }
        self.bytes.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), FileStoreError> {
        self.done = true;
        self.objects.open.fetch_sub(1, Ordering::SeqCst);
        let bytes = std::mem::take(&mut self.bytes);
        self.objects.finished.lock().expect("lock").insert(self.id.clone(), (bytes, self.headers.clone()));
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), FileStoreError> {
        // Dropping gives it up.
        self.objects.aborted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The store as the service holds it.
#[derive(Debug)]
pub struct SharedObjects(pub Arc<MemoryObjects>);

#[async_trait]
impl FileStore for SharedObjects {
    async fn create(
        &self,
        id: &FileId,
        headers: &ObjectHeaders,
    ) -> Result<Box<dyn FileWriter>, FileStoreError> {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Writer {
            id: id.clone(),
            headers: headers.clone(),
            bytes: Vec::new(),
            objects: Arc::clone(&self.0),
            done: false,
        }))
    }

    async fn read(&self, id: &FileId, range: Option<Range<u64>>) -> Result<ObjectRead, FileStoreError> {
        let bytes = self.0.bytes(id).ok_or(FileStoreError::NotFound)?;
        let size = bytes.len() as u64;
        let range = range.unwrap_or(0..size);
        let start = usize::try_from(range.start).expect("small");
        let end = usize::try_from(range.end).expect("small");
        // Two chunks, to read like a stream.
        let middle = start + (end - start) / 2;
        let chunks = vec![
            Ok(Bytes::copy_from_slice(&bytes[start..middle])),
            Ok(Bytes::copy_from_slice(&bytes[middle..end])),
        ];
        Ok(ObjectRead { range, body: futures::stream::iter(chunks).boxed() })
    }

    async fn delete(&self, id: &FileId) -> Result<(), FileStoreError> {
        self.0.deletes.fetch_add(1, Ordering::SeqCst);
        if self.0.failing.load(Ordering::SeqCst) {
            return Err(FileStoreError::Unavailable("deletes fail".into()));
        }
        self.0.finished.lock().expect("lock").remove(id);
        Ok(())
    }

    async fn presigned_url(
        &self,
        id: &FileId,
        expires_in: Duration,
    ) -> Result<Option<String>, FileStoreError> {
        Ok(self
            .0
            .presigns
            .load(Ordering::SeqCst)
            .then(|| format!("https://store.example/files/{id}?expires={}", expires_in.as_secs())))
    }
}
