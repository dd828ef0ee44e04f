//! How the fuzz oracles read a JSON object, independently of the code under test: the
//! values of the keys they know, in document order with duplicates kept (so an oracle
//! can refuse an ambiguous object instead of resolving it silently), and every other
//! key skipped without looking inside (so an ignored value may nest as deep as it
//! likes). Anything but an object is an error.
//!
//! Shared by the fuzz harnesses of this crate; each names its keys and the type a value
//! is read as.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The `(key, value)` pairs of the object `deserializer` holds whose key is in `known`,
/// in order, duplicates kept.
pub fn known_fields<'de, D, V>(
    deserializer: D,
    known: &'static [&'static str],
) -> Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    deserializer.deserialize_map(KnownFields { known, value: PhantomData })
}

struct KnownFields<V> {
    known: &'static [&'static str],
    value: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for KnownFields<V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.known.contains(&key.as_str()) {
                let value = map.next_value::<V>()?;
                fields.push((key, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
}
