//! Where configuration values come from: the environment, then an optional TOML file
//! (`CHATBOX_CONFIG`), environment winning. File keys are the variable names in lower
//! case, either flat (`server_port = 8080`) or grouped one level deep
//! (`[server] port = 8080` is `SERVER_PORT`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Raw values by upper-case variable name. Remembers which names were asked for, so
/// keys of the file that nothing reads (typos, misplaced keys) can be reported.
#[derive(Debug, Default)]
pub struct Source {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
    asked: Mutex<BTreeSet<String>>,
}

impl Source {
    /// Values from `env` (pairs of name and value) and, if given, a TOML file.
    ///
    /// # Errors
    /// The reason the file could not be read or parsed.
    pub fn new(env: impl IntoIterator<Item = (String, String)>, file: Option<&Path>) -> Result<Self, String> {
        let env = env.into_iter().map(|(k, v)| (k.to_ascii_uppercase(), v)).collect();
        let file = match file {
            None => HashMap::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("CHATBOX_CONFIG: cannot read {}: {e}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| syntax_error(path, &text, e.span().map_or(0, |span| span.start)))?;
                flatten(&table)?
            }
        };
        Ok(Self { env, file, asked: Mutex::default() })
    }

    fn ask(&self, name: &str) {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned());
    }

    /// Every name a rule asked for, sorted.
    #[must_use]
    pub fn asked_names(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Keys of the file that no rule asked for, sorted.
    #[must_use]
    pub fn unread_file_keys(&self) -> Vec<String> {
        let asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        let mut unread: Vec<String> = self.file.keys().filter(|k| !asked.contains(*k)).cloned().collect();
        unread.sort();
        unread
    }

    /// The value of `name`, environment first; empty strings count as unset.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.ask(name);
        self.env.get(name).or_else(|| self.file.get(name)).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The first of several names that is set (aliases).
    #[must_use]
    pub fn get_any(&self, names: &[&'static str]) -> Option<(&'static str, String)> {
        names.iter().find_map(|name| self.get(name).map(|v| (*name, v.to_owned())))
    }

    /// The value of `name` even when set to the empty string (where empty has a meaning).
    #[must_use]
    pub fn get_raw(&self, name: &str) -> Option<&str> {
        self.ask(name);
        self.env.get(name).or_else(|| self.file.get(name)).map(|v| v.trim())
    }

    /// Every variable name that is set, in either place.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.env.keys().chain(self.file.keys()).map(String::as_str)
    }

    /// True when the variable is set in either place.
    #[must_use]
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// The report of a TOML syntax error: the line number and, when the line starts with a
/// key, that key. Never the line's text, nor the parser's message (which quotes it): the
/// line may hold a secret.
fn syntax_error(path: &Path, text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_number = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_number - 1).unwrap_or_default();
    let key = line.split_once('=').map(|(key, _)| key.trim()).filter(|key| {
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    });
    match key {
        Some(key) => {
            format!("CHATBOX_CONFIG: {} is not valid TOML: line {line_number}, key {key}", path.display())
        }
        None => format!("CHATBOX_CONFIG: {} is not valid TOML: line {line_number}", path.display()),
    }
}

fn flatten(table: &toml::Table) -> Result<HashMap<String, String>, String> {
    let mut flat = HashMap::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(group) => {
                for (inner, value) in group {
                    let name = format!("{key}_{inner}").to_ascii_uppercase();
                    flat.insert(name.clone(), scalar(&name, value)?);
                }
            }
            other => {
                let name = key.to_ascii_uppercase();
                flat.insert(name.clone(), scalar(&name, other)?);
            }
        }
    }
    Ok(flat)
}

fn scalar(name: &str, value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            items.iter().map(|i| scalar(name, i)).collect::<Result<Vec<_>, _>>()?.join(",")
        }
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Table(_) => {
            return Err(format!("CHATBOX_CONFIG: {name} nests too deep (one level of groups at most)"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_file_and_groups_flatten() {
        let dir = std::env::temp_dir().join(format!("chatbox-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "server_port = 9000\n[server]\nhost = \"127.0.0.1\"\n[rate]\nlimit = 5\n")
            .expect("write");
        let source =
            Source::new([("SERVER_PORT".to_owned(), "9100".to_owned())], Some(&path)).expect("source");
        assert_eq!(source.get("SERVER_PORT"), Some("9100"));
        assert_eq!(source.get("SERVER_HOST"), Some("127.0.0.1"));
        assert_eq!(source.get("RATE_LIMIT"), Some("5"));
        assert!(Source::new([], Some(&dir.join("missing.toml"))).is_err());
    }

    #[test]
    fn a_syntax_error_names_the_line_and_key_but_never_the_text() {
        let dir = std::env::temp_dir().join(format!("chatbox-source-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("bad.toml");
        let secret = "Zq8#unterminated-k3J9x7QpLm2VbN8wZr4";
        std::fs::write(&path, format!("server_port = 9000\n[jwt]\nsecret = \"{secret}\n")).expect("write");
        let problem = Source::new([], Some(&path)).expect_err("invalid TOML");
        assert!(problem.contains("line 3, key secret"), "{problem}");
        assert!(!problem.contains("Zq8") && !problem.contains("unterminated"), "{problem}");
        std::fs::write(&path, format!("jwt_secret = {secret}\n")).expect("write");
        let problem = Source::new([], Some(&path)).expect_err("invalid TOML");
        assert!(problem.contains("line 1, key jwt_secret") && !problem.contains("Zq8"), "{problem}");
    }
}
