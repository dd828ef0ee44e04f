//! Outbound adapter: uploaded files' bytes in object storage, a local directory or an S3
//! bucket (AWS or any S3-compatible server), through the `object_store` crate.
//!
//! [`ObjectFileStore`] implements the [`FileStore`](chatbox_application::ports::FileStore)
//! port; [`ObjectStoreConfig`] says where the bytes go.
//!
//! Invariants (those of the port, and how they are kept):
//! - **Whole or nothing**: an object is written as a multipart upload (a staging file
//!   renamed at the end, locally), readable only once finished; abort and drop remove it.
//! - **Keyed by the file id alone**: `files/{file_id}`.
//! - **Streamed both ways**, with a bounded number of parts in memory on writes.
//! - **Bounded in time**: every S3 request has a timeout.
//! - **No credential in errors or `Debug`**.

mod backend;
mod config;
mod errors;
mod store;
mod writer;

pub use config::{DEFAULT_TIMEOUT, ObjectStoreConfig, S3Config};
pub use errors::OpenError;
pub use store::ObjectFileStore;
