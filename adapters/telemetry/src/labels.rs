//! Label values, each from a set fixed at start-up: the configured provider ids, the
//! standard HTTP methods, and `other` for anything else. Nothing a client sends can add
//! a series.

use std::sync::Arc;

use chatbox_domain::ModelId;
use opentelemetry::KeyValue;

/// The value of a label outside its known set.
pub(crate) const OTHER: &str = "other";

/// The `provider` label of each configured provider, built once. Cloning one is a
/// reference-count increment, not a copy of the id.
#[derive(Debug)]
pub(crate) struct ProviderLabels {
    known: Box<[(Arc<str>, KeyValue)]>,
    other: KeyValue,
}

impl ProviderLabels {
    pub(crate) fn new<'a>(providers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut known: Vec<(Arc<str>, KeyValue)> = Vec::new();
        for id in providers {
            if id != OTHER && !known.iter().any(|(k, _)| &**k == id) {
                let id: Arc<str> = Arc::from(id);
                known.push((Arc::clone(&id), KeyValue::new("provider", id)));
            }
        }
        Self { known: known.into_boxed_slice(), other: KeyValue::new("provider", OTHER) }
    }

    /// The label for `provider`; `other` when it is not configured. A handful of
    /// providers at most, so a scan beats hashing.
    pub(crate) fn get(&self, provider: &ModelId) -> KeyValue {
        let id = provider.as_str();
        self.known.iter().find(|(k, _)| &**k == id).map_or_else(|| self.other.clone(), |(_, kv)| kv.clone())
    }

    /// Every label this set can produce.
    pub(crate) fn all(&self) -> impl Iterator<Item = &KeyValue> {
        self.known.iter().map(|(_, kv)| kv).chain(std::iter::once(&self.other))
    }
}

/// The `method` label: a standard method, else `other`.
pub(crate) fn method(method: &str) -> &'static str {
    const STANDARD: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    STANDARD.into_iter().find(|m| *m == method).unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_providers_and_methods_fold_into_other() {
        let labels = ProviderLabels::new(["demo", "openai", "demo"]);
        let id = |s: &str| ModelId::parse(s).expect("id");
        assert_eq!(labels.get(&id("openai")).value.as_str(), "openai");
        assert_eq!(labels.get(&id("not-configured")).value.as_str(), OTHER);
        assert_eq!(labels.all().count(), 3, "two providers and other, no duplicate");
        assert_eq!(method("GET"), "GET");
        assert_eq!(method("get"), OTHER, "methods are case-sensitive");
        assert_eq!(method("BREW"), OTHER);
    }
}
