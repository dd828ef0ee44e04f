//! JWT authentication. Tokens are verified with the configured HMAC algorithms only; a
//! token never appears in a log line, a metric or an error text.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatbox_domain::{Secret, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The latest `exp` accepted: the end of year 9999. A later expiry is not a real one, and
/// refusing it keeps every sum of an expiry and a leeway far from overflowing the clock.
const LATEST_EXPIRY_SECS: u64 = 253_402_300_799;

/// Roles that may use the admin routes.
pub const ADMIN_ROLES: [&str; 2] = ["admin", "chat_admin"];

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// From `user_id` (or `sub`).
    pub id: UserId,
    /// From `name`, else the id.
    pub name: String,
    /// From `roles`.
    pub roles: Vec<String>,
    /// From `exp`, if present.
    pub expires_at: Option<SystemTime>,
}

impl AuthenticatedUser {
    /// True for `admin` or `chat_admin`.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| ADMIN_ROLES.contains(&role.as_str()))
    }
}

/// Why a request is not authenticated. Clients only ever see the code, not the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("authentication required")]
    Missing,
    /// The token is malformed, badly signed, of a refused algorithm, expired, or lacks
    /// a required claim.
    #[error("invalid or expired authentication token")]
    Invalid,
    /// Tokens that name different users were presented together (two `Authorization`
    /// headers, two `bearer.` subprotocol entries, or a header, an entry and a `?token=`
    /// that disagree): which one the caller meant is not guessed.
    #[error("conflicting credentials")]
    Conflicting,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    exp: Option<u64>,
}

/// How tokens are checked. The secret stays wrapped (its `Debug` prints `***`) until
/// the verifier's key is made from it.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The shared secret.
    pub secret: Secret,
    /// Accepted algorithms (HMAC family).
    pub algorithms: Vec<Algorithm>,
    /// Whether `exp` is required.
    pub require_exp: bool,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`.
    pub leeway: Duration,
}

/// Verifies tokens.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `settings`.
    #[must_use]
    pub fn new(settings: &JwtSettings) -> Self {
        let first = settings.algorithms.first().copied().unwrap_or(Algorithm::HS256);
        let mut validation = Validation::new(first);
        validation.algorithms.clone_from(&settings.algorithms);
        validation.leeway = settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not only right when present.
        let required: Vec<&str> = [
            settings.require_exp.then_some("exp"),
            settings.issuer.as_ref().map(|_| "iss"),
            settings.audience.as_ref().map(|_| "aud"),
        ]
        .into_iter()
        .flatten()
        .collect();
        validation.set_required_spec_claims(&required);
        match &settings.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let key = DecodingKey::from_secret(settings.secret.expose().as_bytes());
        Self { key, validation, leeway: settings.leeway }
    }

    /// Checks a token and returns its user.
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for any defect; the cause is logged at debug level only.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedUser, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|error| {
            tracing::debug!(kind = ?error.kind(), "token rejected");
            AuthError::Invalid
        })?;
        let claims = data.claims;
        let expires_at = match claims.exp {
            None => None,
            Some(exp) if exp <= LATEST_EXPIRY_SECS => UNIX_EPOCH.checked_add(Duration::from_secs(exp)),
            Some(_) => {
                tracing::debug!("token rejected: expiry beyond year 9999");
                return Err(AuthError::Invalid);
            }
        };
        let raw_id = claims.user_id.filter(|id| !id.is_empty()).or(claims.sub).ok_or(AuthError::Invalid)?;
        let id = UserId::parse(&raw_id).map_err(|_| AuthError::Invalid)?;
        let name = claims.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| raw_id.clone());
        Ok(AuthenticatedUser { id, name, roles: claims.roles.unwrap_or_default(), expires_at })
    }

    /// When a socket authenticated with `user` must be closed: the token's expiry plus
    /// the leeway the token was accepted with.
    #[must_use]
    pub fn socket_deadline(&self, user: &AuthenticatedUser) -> Option<SystemTime> {
        user.expires_at.and_then(|exp| exp.checked_add(self.leeway))
    }
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    user_id: &'a str,
    name: &'a str,
    roles: &'a [&'a str],
    iat: u64,
    exp: u64,
}

/// Signs a token (for `--dev` and tests): `user_id`, `name`, `roles`, valid for `ttl`.
///
/// # Errors
/// When signing fails.
pub fn issue_token(
    secret: &[u8],
    algorithm: Algorithm,
    user_id: &str,
    name: &str,
    roles: &[&str],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = IssuedClaims { user_id, name, roles, iat: now, exp: now.saturating_add(ttl.as_secs()) };
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF";

    fn secret() -> Secret {
        Secret::new(String::from_utf8_lossy(SECRET))
    }

    fn verifier(require_exp: bool) -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            secret: secret(),
            algorithms: vec![Algorithm::HS256],
            require_exp,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(0),
        })
    }

    fn sign(claims: &serde_json::Value, algorithm: Algorithm) -> String {
        jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(SECRET))
            .expect("sign")
    }

    fn in_an_hour() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_secs() + 3600
    }

    #[test]
    fn valid_tokens_yield_the_user_and_roles() {
        let token = issue_token(SECRET, Algorithm::HS256, "u1", "Ann", &["admin"], Duration::from_secs(60))
            .expect("token");
        let user = verifier(true).verify(&token).expect("valid");
        assert_eq!(user.id.as_str(), "u1");
        assert_eq!(user.name, "Ann");
        assert!(user.is_admin());
        let by_sub = sign(&serde_json::json!({"sub": "s1", "exp": in_an_hour()}), Algorithm::HS256);
        let user = verifier(true).verify(&by_sub).expect("sub works");
        assert_eq!((user.id.as_str(), user.name.as_str(), user.roles.len()), ("s1", "s1", 0));
    }

    #[test]
    fn the_settings_never_print_the_secret() {
        let settings = JwtSettings {
            secret: secret(),
            algorithms: vec![Algorithm::HS256],
            require_exp: true,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(0),
        };
        let printed = format!("{settings:?} {settings:#?}");
        assert!(!printed.contains("0123456789abcdef") && printed.contains("***"), "{printed}");
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let strict = JwtVerifier::new(&JwtSettings {
            secret: secret(),
            algorithms: vec![Algorithm::HS256],
            require_exp: true,
            issuer: Some("https://auth.example.com".into()),
            audience: Some("chatbox".into()),
            leeway: Duration::from_secs(0),
        });
        let exp = in_an_hour();
        let good = sign(
            &serde_json::json!({"user_id": "u", "exp": exp, "iss": "https://auth.example.com", "aud": "chatbox"}),
            Algorithm::HS256,
        );
        assert!(strict.verify(&good).is_ok());
        for claims in [
            serde_json::json!({"user_id": "u", "exp": exp, "iss": "https://evil.example.com", "aud": "chatbox"}),
            serde_json::json!({"user_id": "u", "exp": exp, "iss": "https://auth.example.com", "aud": "other"}),
            serde_json::json!({"user_id": "u", "exp": exp}),
        ] {
            assert_eq!(strict.verify(&sign(&claims, Algorithm::HS256)), Err(AuthError::Invalid), "{claims}");
        }
        assert!(verifier(true).verify(&good).is_ok(), "unchecked when not configured");
    }

    #[test]
    fn expiries_at_the_edge_of_the_clock_never_panic() {
        let v = JwtVerifier::new(&JwtSettings {
            secret: secret(),
            algorithms: vec![Algorithm::HS256],
            require_exp: true,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(300),
        });
        let last_second =
            sign(&serde_json::json!({"user_id": "u", "exp": LATEST_EXPIRY_SECS}), Algorithm::HS256);
        let user = v.verify(&last_second).expect("year 9999 is a valid expiry");
        assert!(v.socket_deadline(&user).is_some());
        for exp in [
            serde_json::json!(LATEST_EXPIRY_SECS + 1),
            serde_json::json!(i64::MAX),
            serde_json::json!(u64::MAX),
            serde_json::json!(1e300),
            serde_json::json!(-1),
            serde_json::json!("9999999999"),
        ] {
            let token = sign(&serde_json::json!({"user_id": "u", "exp": exp}), Algorithm::HS256);
            assert_eq!(v.verify(&token), Err(AuthError::Invalid), "exp {exp}");
        }
    }

    #[test]
    fn every_defect_is_invalid() {
        let v = verifier(true);
        let exp = in_an_hour();
        let wrong_alg = sign(&serde_json::json!({"user_id": "u", "exp": exp}), Algorithm::HS512);
        let no_exp = sign(&serde_json::json!({"user_id": "u"}), Algorithm::HS256);
        let no_user = sign(&serde_json::json!({"exp": exp}), Algorithm::HS256);
        let expired = sign(&serde_json::json!({"user_id": "u", "exp": 1_000}), Algorithm::HS256);
        let bad_roles =
            sign(&serde_json::json!({"user_id": "u", "exp": exp, "roles": [1]}), Algorithm::HS256);
        let other_key = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"user_id": "u", "exp": exp}),
            &EncodingKey::from_secret(b"another-secret-of-sufficient-length-0123"),
        )
        .expect("sign");
        for token in [wrong_alg, no_exp.clone(), no_user, expired, bad_roles, other_key, "garbage".into()] {
            assert_eq!(v.verify(&token), Err(AuthError::Invalid));
        }
        assert!(verifier(false).verify(&no_exp).is_ok(), "exp optional when not required");
    }
}
