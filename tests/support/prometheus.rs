//! Reading the Prometheus text format in tests: samples with their labels and values,
//! and the declared type of each family, so assertions compare numbers, not substrings.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample of the text format.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            let value = if value == "+Inf" { f64::INFINITY } else { value.parse().expect("number") };
            samples.push(Sample { name: name.to_owned(), labels, value });
        }
        Self { samples, types }
    }

    /// The value of the one sample `name` whose labels include `labels`; 0 when the
    /// series does not exist yet.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect();
        assert!(matching.len() <= 1, "{name} {labels:?} matches several series: {matching:?}");
        matching.first().map_or(0.0, |s| s.value)
    }

    /// Every sample but those of `family`, as comparable text.
    pub fn without(&self, family: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| !s.name.starts_with(family))
            .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
            .collect()
    }

    /// The sum of every sample of `name` (0 when there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples.iter().filter(|s| s.name == name).map(|s| s.value).sum()
    }
}
