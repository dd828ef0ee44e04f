//! A MongoDB-compatible server for tests that start the binary, when one is reachable:
//! `MONGO_URI` (set by `scripts/ferretdb.sh start`) must answer a ping. Without it the
//! MongoDB checks are skipped with one printed line; with `CHATBOX_REQUIRE_MONGO=1`
//! (CI) they are required, and a missing server fails the test.
#![allow(dead_code)]

use std::io::Write as _;
use std::time::Duration;

use chatbox_mongodb_store::mongodb::bson::doc;
use chatbox_mongodb_store::mongodb::{Client, Database};

/// `CHATBOX_REQUIRE_MONGO=1`: the MongoDB checks must run.
pub fn mongo_required() -> bool {
    std::env::var("CHATBOX_REQUIRE_MONGO").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A connected client and the URI it came from.
pub struct Mongo {
    pub uri: String,
    pub client: Client,
}

impl Mongo {
    /// A database of this name (created on first write).
    pub fn database(&self, name: &str) -> Database {
        self.client.database(name)
    }
}

/// `MONGO_URI` when it answers a ping within a few seconds; otherwise `None` after a
/// line on standard error saying what is skipped, or a failed test when required.
pub async fn reachable(what: &str) -> Option<Mongo> {
    let probe = async {
        let uri = std::env::var("MONGO_URI").map_err(|_| "MONGO_URI is not set".to_owned())?;
        let client = Client::with_uri_str(&uri).await.map_err(|e| format!("MONGO_URI is not usable: {e}"))?;
        tokio::time::timeout(Duration::from_secs(5), client.database("admin").run_command(doc! {"ping": 1}))
            .await
            .map_err(|_| "MONGO_URI did not answer a ping within 5 s".to_owned())?
            .map_err(|e| format!("MONGO_URI does not reach a server: {e}"))?;
        Ok::<_, String>(Mongo { uri, client })
    };
    match probe.await {
        Ok(mongo) => Some(mongo),
        Err(reason) if mongo_required() => panic!("CHATBOX_REQUIRE_MONGO is set but {reason}"),
        Err(reason) => {
            let _ = writeln!(
                std::io::stderr(),
                "{what}: MongoDB checks SKIPPED ({reason}); run `scripts/ferretdb.sh start` and export MONGO_URI"
            );
            None
        }
    }
}

/// A database name no other test or run uses.
pub fn fresh_database(test: &str) -> String {
    let short: String = test.chars().filter(char::is_ascii_alphanumeric).take(20).collect();
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    format!("t{}_{unique}_{short}", std::process::id())
}
