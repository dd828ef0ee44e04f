//! The object store adapter against real stores: a local directory and an S3-compatible
//! server (`scripts/s3.sh`; see `common` for how its absence is handled).

mod behaviour;
mod common;
mod pending;
mod presign;
mod secrets;
mod timeouts;
