//! The providers section: the `LLM_PROVIDER_<N>_*` blocks, numbered without gaps, unique
//! ids, a type each, endpoints that are https (or http to internal hosts), fallbacks that
//! name another configured provider; `--dev` with no provider gets the built-in demo
//! model. And each block's conversion into the LLM adapter's [`ProviderConfig`], its API
//! key still wrapped.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chatbox_application::settings::ModelInfo;
use chatbox_domain::ModelId;
use chatbox_llm::ProviderConfig;

use super::reader::Reader;
use super::secret::Secret;
use super::syntax::endpoint_problem;

/// A provider type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenAI-compatible server.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Dify's chat-messages API.
    Dify,
    /// The built-in demo model.
    Demo,
}

/// One `LLM_PROVIDER_<N>_*` block.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `_ID`: the model id clients select.
    pub id: ModelId,
    /// `_NAME`: the display name.
    pub name: String,
    /// `_TYPE`.
    pub kind: ProviderKind,
    /// `_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `_API_KEY`.
    pub api_key: Option<Secret>,
    /// `_MODEL`: the provider's own model name.
    pub model: Option<String>,
    /// `_MAX_TOKENS`.
    pub max_tokens: Option<u32>,
    /// `_TEMPERATURE`.
    pub temperature: Option<f32>,
    /// `_FALLBACK`: id of the provider to try when this one fails before its first token.
    pub fallback: Option<ModelId>,
    /// `_DELAY` (demo): pause between streamed words.
    pub delay: Duration,
    /// `_VISION` (openai, anthropic): the model takes pictures as image parts.
    pub vision: bool,
}

impl ProviderSettings {
    /// The HTTP providers' configuration for this block (unused by the demo type).
    #[must_use]
    pub fn provider_config(&self) -> ProviderConfig {
        ProviderConfig {
            endpoint: self.endpoint.clone().unwrap_or_default(),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            vision: self.vision,
        }
    }
}

/// `LLM_PROVIDER_<N>_*`: the blocks in order; never empty once validated.
#[derive(Debug, Clone)]
pub struct ProvidersSection {
    /// The blocks, in the order of their numbers; the first is the default model.
    pub list: Vec<ProviderSettings>,
}

impl ProvidersSection {
    /// Reads the section.
    pub(super) fn read(r: &mut Reader<'_>, dev: bool) -> Self {
        Self { list: providers(r, dev) }
    }

    /// The configured provider ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|p| p.id.as_str())
    }

    /// The models clients may select, in order.
    #[must_use]
    pub fn models(&self) -> Vec<ModelInfo> {
        self.list.iter().map(|p| ModelInfo { id: p.id.clone(), name: p.name.clone() }).collect()
    }

    /// Each provider's fallback, by provider id.
    #[must_use]
    pub fn fallbacks(&self) -> HashMap<ModelId, ModelId> {
        self.list.iter().filter_map(|p| p.fallback.clone().map(|fallback| (p.id.clone(), fallback))).collect()
    }
}

fn providers(r: &mut Reader<'_>, dev: bool) -> Vec<ProviderSettings> {
    let mut numbers: BTreeSet<usize> = BTreeSet::new();
    for name in r.source.names() {
        if let Some(rest) = name.strip_prefix("LLM_PROVIDER_")
            && let Some((number, _)) = rest.split_once('_')
        {
            match number.parse::<usize>() {
                Ok(n) if n >= 1 => {
                    numbers.insert(n);
                }
                _ => r.fail(name, "providers are numbered LLM_PROVIDER_1_*, LLM_PROVIDER_2_*, …"),
            }
        }
    }
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for (expected, n) in (1..).zip(numbers.iter().copied()) {
        if n != expected {
            r.fail(
                &format!("LLM_PROVIDER_{n}_ID"),
                format!("providers must be numbered without gaps (LLM_PROVIDER_{expected}_* is missing)"),
            );
            break;
        }
        if let Some(provider) = provider(r, n) {
            if providers.iter().any(|p| p.id == provider.id) {
                r.fail(
                    &format!("LLM_PROVIDER_{n}_ID"),
                    format!("id {:?} is used by another provider", provider.id.as_str()),
                );
            } else {
                providers.push(provider);
            }
        }
    }
    for (n, provider) in (1..).zip(&providers) {
        if let Some(fallback) = &provider.fallback {
            if fallback == &provider.id {
                r.fail(&format!("LLM_PROVIDER_{n}_FALLBACK"), "must name another provider");
            } else if !providers.iter().any(|p| &p.id == fallback) {
                r.fail(
                    &format!("LLM_PROVIDER_{n}_FALLBACK"),
                    format!("{:?} is not a configured provider id", fallback.as_str()),
                );
            }
        }
    }
    if providers.is_empty() && numbers.is_empty() {
        if dev {
            providers.push(ProviderSettings {
                id: ModelId::parse("demo").unwrap_or_else(|_| unreachable!("a valid literal id")),
                name: "Demo".into(),
                kind: ProviderKind::Demo,
                endpoint: None,
                api_key: None,
                model: None,
                max_tokens: None,
                temperature: None,
                fallback: None,
                delay: Duration::from_millis(30),
                vision: false,
            });
        } else {
            r.fail(
                "LLM_PROVIDER_1_ID",
                "at least one provider must be configured (LLM_PROVIDER_1_ID, _TYPE, …)",
            );
        }
    }
    providers
}

fn provider(r: &mut Reader<'_>, n: usize) -> Option<ProviderSettings> {
    let var = |field: &str| format!("LLM_PROVIDER_{n}_{field}");
    let id = match r.text(&var("ID")) {
        None => {
            r.fail(&var("ID"), "is required");
            return None;
        }
        Some(raw) => match ModelId::parse(&raw) {
            Ok(id) => id,
            Err(problem) => {
                r.fail(&var("ID"), problem);
                return None;
            }
        },
    };
    let kind = match r.text(&var("TYPE")).map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("openai") => ProviderKind::OpenAi,
        Some("anthropic") => ProviderKind::Anthropic,
        Some("dify") => ProviderKind::Dify,
        Some("demo") => ProviderKind::Demo,
        Some(other) => {
            r.fail(&var("TYPE"), format!("{other:?} is not one of openai, anthropic, dify, demo"));
            return None;
        }
        None => {
            r.fail(&var("TYPE"), "is required (openai, anthropic, dify or demo)");
            return None;
        }
    };
    let endpoint = r.text(&var("ENDPOINT"));
    let api_key = r.text(&var("API_KEY")).map(Secret::new);
    let model = r.text(&var("MODEL"));
    if kind != ProviderKind::Demo {
        match endpoint.as_deref().map(endpoint_problem) {
            None => r.fail(&var("ENDPOINT"), "is required"),
            Some(Some(problem)) => r.fail(&var("ENDPOINT"), problem),
            Some(None) => {}
        }
        if matches!(kind, ProviderKind::Anthropic | ProviderKind::Dify) && api_key.is_none() {
            r.fail(&var("API_KEY"), "is required for this provider type");
        }
        if matches!(kind, ProviderKind::OpenAi | ProviderKind::Anthropic) && model.is_none() {
            r.fail(&var("MODEL"), "is required for this provider type");
        }
    }
    let max_tokens = match r.source.get(&var("MAX_TOKENS")) {
        None => None,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                r.fail(&var("MAX_TOKENS"), "must be a whole number of at least 1");
                None
            }
        },
    };
    let temperature = match r.source.get(&var("TEMPERATURE")) {
        None => None,
        Some(raw) => match raw.parse::<f32>() {
            Ok(t) if (0.0..=2.0).contains(&t) => Some(t),
            _ => {
                r.fail(&var("TEMPERATURE"), "must be a number between 0 and 2");
                None
            }
        },
    };
    let fallback = match r.text(&var("FALLBACK")) {
        None => None,
        Some(raw) => ModelId::parse(&raw).map_err(|p| r.fail(&var("FALLBACK"), p)).ok(),
    };
    if kind != ProviderKind::Demo && r.source.is_set(&var("DELAY")) {
        r.fail(&var("DELAY"), "only applies to providers of type demo");
    }
    let delay = match r.source.get(&var("DELAY")) {
        None => Duration::from_millis(30),
        Some(raw) => match humantime::parse_duration(raw) {
            Ok(delay) if delay <= Duration::from_secs(60) => delay,
            _ => {
                r.fail(&var("DELAY"), format!("must be a duration from 0ms to 60s, got {raw:?}"));
                Duration::from_millis(30)
            }
        },
    };
    let vision = r.boolean(&var("VISION"), false);
    if vision && matches!(kind, ProviderKind::Dify | ProviderKind::Demo) {
        r.fail(
            &var("VISION"),
            "only applies to providers of type openai or anthropic (this type cannot take images)",
        );
    }
    let name = r.text(&var("NAME")).unwrap_or_else(|| id.to_string());
    Some(ProviderSettings {
        id,
        name,
        kind,
        endpoint,
        api_key,
        model,
        max_tokens,
        temperature,
        fallback,
        delay,
        vision: vision && matches!(kind, ProviderKind::OpenAi | ProviderKind::Anthropic),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::load_from;

    const GOOD_SECRET: &str = "k3J9x7QpLm2VbN8wZr4TyU6sHd1FgCeA";

    fn errors(vars: &[(&str, &str)]) -> Vec<String> {
        load_from(vars, false).settings.err().unwrap_or_default()
    }

    #[test]
    fn provider_blocks_are_checked() {
        let base = [("JWT_SECRET", GOOD_SECRET)];
        let gap = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_3_ID", "c"),
            ("LLM_PROVIDER_3_TYPE", "demo"),
        ]);
        assert!(gap.iter().any(|p| p.contains("without gaps")), "{gap:?}");
        let duplicate = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_2_ID", "a"),
            ("LLM_PROVIDER_2_TYPE", "demo"),
        ]);
        assert!(duplicate.iter().any(|p| p.starts_with("LLM_PROVIDER_2_ID")), "{duplicate:?}");
        let bad_type = errors(&[base[0], ("LLM_PROVIDER_1_ID", "a"), ("LLM_PROVIDER_1_TYPE", "gpt")]);
        assert!(bad_type.iter().any(|p| p.starts_with("LLM_PROVIDER_1_TYPE")), "{bad_type:?}");
        let fallback = errors(&[
            base[0],
            ("LLM_PROVIDER_1_ID", "a"),
            ("LLM_PROVIDER_1_TYPE", "demo"),
            ("LLM_PROVIDER_1_FALLBACK", "zzz"),
        ]);
        assert!(fallback.iter().any(|p| p.starts_with("LLM_PROVIDER_1_FALLBACK")), "{fallback:?}");
        let none = errors(&base);
        assert!(none.iter().any(|p| p.contains("at least one provider")), "{none:?}");
        let delay = load_from(
            &[
                base[0],
                ("LLM_PROVIDER_1_ID", "a"),
                ("LLM_PROVIDER_1_TYPE", "demo"),
                ("LLM_PROVIDER_1_DELAY", "5ms"),
            ],
            false,
        );
        assert_eq!(
            delay.settings.expect("valid").providers.list[0].delay,
            std::time::Duration::from_millis(5)
        );
    }

    #[test]
    fn vision_is_a_boolean_off_by_default_and_only_for_openai_and_anthropic() {
        let block = |kind: &'static str, vision: &'static str| {
            vec![
                ("JWT_SECRET", GOOD_SECRET),
                ("LLM_PROVIDER_1_ID", "m"),
                ("LLM_PROVIDER_1_TYPE", kind),
                ("LLM_PROVIDER_1_ENDPOINT", "https://api.example.com/v1"),
                ("LLM_PROVIDER_1_API_KEY", "sk-test"),
                ("LLM_PROVIDER_1_MODEL", "model-x"),
                ("LLM_PROVIDER_1_VISION", vision),
            ]
        };
        let vision_of = |kind, vision| {
            let settings = load_from(&block(kind, vision), false).settings.expect("valid");
            let provider = &settings.providers.list[0];
            assert_eq!(provider.provider_config().vision, provider.vision);
            provider.vision
        };
        assert!(vision_of("openai", "true"));
        assert!(vision_of("anthropic", "yes"));
        assert!(!vision_of("openai", "false"));
        assert!(!vision_of("openai", ""), "unset is off");
        assert!(!vision_of("dify", "false"), "off is fine for any type");
        for kind in ["dify", "demo"] {
            let refused = errors(&block(kind, "true"));
            assert!(
                refused
                    .iter()
                    .any(|p| p.starts_with("LLM_PROVIDER_1_VISION: ") && p.contains("cannot take images")),
                "{kind}: {refused:?}"
            );
        }
        let junk = errors(&block("openai", "maybe"));
        assert!(
            junk.iter().any(|p| p.starts_with("LLM_PROVIDER_1_VISION: must be true or false")),
            "{junk:?}"
        );
    }

    #[test]
    fn a_block_converts_with_its_key_still_wrapped() {
        let key = "sk-live-Zq8unprinted";
        let settings = load_from(
            &[
                ("JWT_SECRET", GOOD_SECRET),
                ("LLM_PROVIDER_1_ID", "gpt"),
                ("LLM_PROVIDER_1_TYPE", "openai"),
                ("LLM_PROVIDER_1_ENDPOINT", "https://api.example.com/v1"),
                ("LLM_PROVIDER_1_API_KEY", key),
                ("LLM_PROVIDER_1_MODEL", "gpt-x"),
                ("LLM_PROVIDER_1_FALLBACK", "demo"),
                ("LLM_PROVIDER_2_ID", "demo"),
                ("LLM_PROVIDER_2_TYPE", "demo"),
            ],
            false,
        )
        .settings
        .expect("valid");
        let config = settings.providers.list[0].provider_config();
        assert_eq!(config.api_key.as_ref().map(chatbox_domain::Secret::expose), Some(key));
        assert!(!format!("{config:?}").contains("Zq8"), "{config:?}");
        let fallbacks = settings.providers.fallbacks();
        assert_eq!(fallbacks.len(), 1);
        assert_eq!(settings.providers.ids().collect::<Vec<_>>(), ["gpt", "demo"]);
    }
}
