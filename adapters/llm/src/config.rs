//! What every HTTP provider is configured with.

use std::fmt;

/// One provider block (`LLM_PROVIDER_<N>_*`), for the HTTP providers.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `_ENDPOINT`: the API base, e.g. `https://api.openai.com/v1`.
    pub endpoint: String,
    /// `_API_KEY`.
    pub api_key: Option<String>,
    /// `_MODEL`: the provider's model name.
    pub model: Option<String>,
    /// `_MAX_TOKENS`.
    pub max_tokens: Option<u32>,
    /// `_TEMPERATURE`.
    pub temperature: Option<f32>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .finish()
    }
}

impl ProviderConfig {
    /// `endpoint` joined with `path`, with exactly one slash between.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint.trim_end_matches('/'), path.trim_start_matches('/'))
    }
}
