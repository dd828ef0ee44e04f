//! The port's contract, on every store: what is written reads back (whole and by
//! ranges, across parts), nothing is readable before `finish`, abort and drop leave
//! nothing, delete is idempotent, an unknown id is not found.

use bytes::Bytes;
use chatbox_application::ports::{FileStore, FileStoreError};
use sha2::{Digest, Sha256};

use crate::common::{eventually, files_in, headers, is_missing, new_id, pattern, put, read, subjects};
use crate::pending::pending_uploads;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_read_back_whole_and_by_ranges() {
    for subject in subjects("chunks_read_back_whole_and_by_ranges") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        put(store, &id, &[b"Hello, ", b"chunked ", b"", b"world!"]).await;
        let whole = b"Hello, chunked world!";
        let last = whole.len() as u64 - 1;

        let (range, bytes) = read(store, &id, None).await.expect("read whole");
        assert_eq!((range, bytes.as_slice()), (0..whole.len() as u64, &whole[..]), "{name}: whole");
        let (range, bytes) = read(store, &id, Some(0..1)).await.expect("read first byte");
        assert_eq!((range, bytes), (0..1, b"H".to_vec()), "{name}: first byte");
        let (range, bytes) = read(store, &id, Some(7..14)).await.expect("read middle");
        assert_eq!((range, bytes), (7..14, b"chunked".to_vec()), "{name}: middle");
        let (range, bytes) = read(store, &id, Some(last..last + 1)).await.expect("read last byte");
        assert_eq!((range, bytes), (last..last + 1, b"!".to_vec()), "{name}: last byte");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_more_than_two_parts_reads_back_identical() {
    for subject in subjects("an_object_of_more_than_two_parts_reads_back_identical") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        let data = pattern(12 * MIB, 7);
        let mut writer = store.create(&id, &headers()).await.expect("create");
        for chunk in data.chunks(64 * 1024) {
            writer.write(Bytes::copy_from_slice(chunk)).await.expect("write");
        }
        writer.finish().await.expect("finish");

        let read_back = store.read(&id, None).await.expect("read");
        assert_eq!(read_back.range, 0..data.len() as u64, "{name}");
        let mut hash = Sha256::new();
        let mut body = read_back.body;
        let mut len = 0;
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            let chunk = chunk.expect("body chunk");
            len += chunk.len();
            hash.update(&chunk);
        }
        assert_eq!(len, data.len(), "{name}: length");
        assert_eq!(hash.finalize(), Sha256::digest(&data), "{name}: SHA-256");

        // Across the border of the first two parts (5 MiB).
        let border = (5 * MIB) as u64;
        let (_, bytes) = read(store, &id, Some(border - 3..border + 3)).await.expect("read border");
        assert_eq!(bytes, data[5 * MIB - 3..5 * MIB + 3], "{name}: part border");
        store.delete(&id).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_object_reads_back_empty() {
    for subject in subjects("an_empty_object_reads_back_empty") {
        let id = new_id();
        put(&subject.store, &id, &[]).await;
        let (range, bytes) = read(&subject.store, &id, None).await.expect("read");
        assert_eq!((range, bytes), (0..0, Vec::new()), "{}", subject.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_readable_before_finish() {
    for subject in subjects("nothing_is_readable_before_finish") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        let data = pattern(6 * MIB, 3);
        let mut writer = store.create(&id, &headers()).await.expect("create");
        assert!(is_missing(store, &id).await, "{name}: readable after create");
        // More than a part: the first part is sent before finish.
        for chunk in data.chunks(MIB) {
            writer.write(Bytes::copy_from_slice(chunk)).await.expect("write");
        }
        assert!(is_missing(store, &id).await, "{name}: readable before finish");
        writer.finish().await.expect("finish");
        let (_, bytes) = read(store, &id, None).await.expect("read after finish");
        assert!(bytes == data, "{name}: bytes after finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_leaves_nothing() {
    for subject in subjects("abort_leaves_nothing") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        let mut writer = store.create(&id, &headers()).await.expect("create");
        for chunk in pattern(6 * MIB, 5).chunks(MIB) {
            writer.write(Bytes::copy_from_slice(chunk)).await.expect("write");
        }
        writer.abort().await.expect("abort");
        assert!(is_missing(store, &id).await, "{name}: readable after abort");
        if let Some(dir) = &subject.dir {
            assert_eq!(files_in(dir), Vec::<std::path::PathBuf>::new(), "{name}: staging file left");
        } else {
            assert_eq!(pending_uploads(&id).await, 0, "{name}: upload left pending");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_writer_leaves_nothing() {
    for subject in subjects("a_dropped_writer_leaves_nothing") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        let mut writer = store.create(&id, &headers()).await.expect("create");
        for chunk in pattern(6 * MIB, 9).chunks(MIB) {
            writer.write(Bytes::copy_from_slice(chunk)).await.expect("write");
        }
        drop(writer);
        assert!(is_missing(store, &id).await, "{name}: readable after drop");
        if let Some(dir) = &subject.dir {
            assert!(eventually(async || files_in(dir).is_empty()).await, "{name}: staging file left");
        } else {
            assert!(
                eventually(async || pending_uploads(&id).await == 0).await,
                "{name}: upload left pending"
            );
        }
        assert!(is_missing(store, &id).await, "{name}: readable after the drop's cleanup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_idempotent_and_leaves_nothing() {
    for subject in subjects("delete_is_idempotent_and_leaves_nothing") {
        let (store, name) = (&subject.store, subject.name);
        let id = new_id();
        put(store, &id, &[b"to be deleted"]).await;
        store.delete(&id).await.expect("delete");
        store.delete(&id).await.expect("delete again");
        assert!(is_missing(store, &id).await, "{name}: readable after delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_not_found() {
    for subject in subjects("an_unknown_id_is_not_found") {
        let result = subject.store.read(&new_id(), Some(0..1)).await;
        assert!(matches!(result, Err(FileStoreError::NotFound)), "{}: {result:?}", subject.name);
        assert!(is_missing(&subject.store, &new_id()).await, "{}", subject.name);
    }
}
