//! What every HTTP provider is configured with. The API key stays wrapped in the
//! domain's [`Secret`] (whose `Debug` prints `***`) until a request header is built.

use chatbox_domain::Secret;

/// One provider block (`LLM_PROVIDER_<N>_*`), for the HTTP providers.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `_ENDPOINT`: the API base, e.g. `https://api.openai.com/v1`.
    pub endpoint: String,
    /// `_API_KEY`.
    pub api_key: Option<Secret>,
    /// `_MODEL`: the provider's model name.
    pub model: Option<String>,
    /// `_MAX_TOKENS`.
    pub max_tokens: Option<u32>,
    /// `_TEMPERATURE`.
    pub temperature: Option<f32>,
    /// `_VISION`: the model takes pictures, so user turns carry their images as image
    /// parts (OpenAI-compatible and Anthropic only; default false).
    pub vision: bool,
}

impl ProviderConfig {
    /// `endpoint` joined with `path`, with exactly one slash between.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint.trim_end_matches('/'), path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api_key: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            endpoint: "https://api.example.com/v1/".into(),
            api_key: api_key.map(Secret::new),
            model: Some("model-x".into()),
            max_tokens: Some(256),
            temperature: Some(0.2),
            vision: false,
        }
    }

    #[test]
    fn debug_never_prints_the_api_key() {
        let with_key = format!("{:?}", config(Some("sk-live-Zq8-never-printed")));
        assert!(!with_key.contains("Zq8") && !with_key.contains("sk-live"), "{with_key}");
        assert!(with_key.contains("api_key: Some(***)") && with_key.contains("model-x"), "{with_key}");
        let pretty = format!("{:#?}", config(Some("sk-live-Zq8-never-printed")));
        assert!(!pretty.contains("Zq8"), "{pretty}");
        assert!(format!("{:?}", config(None)).contains("api_key: None"));
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(config(None).url("/chat/completions"), "https://api.example.com/v1/chat/completions");
    }
}
