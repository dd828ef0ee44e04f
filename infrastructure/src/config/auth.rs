//! The auth section: how tokens are checked (`JWT_*`), and its conversion into the HTTP
//! adapter's [`JwtSettings`].
//!
//! The secret stays wrapped in [`Secret`] all the way to the verifier; a weak one is
//! refused with the reason, never with the value. `--dev` without a secret generates a
//! strong one for the run.

use std::time::Duration;

use chatbox_http::JwtSettings;
use jsonwebtoken::Algorithm;

use super::reader::Reader;
use super::secret::{Secret, generated_secret, weak_secret_reason};

const MAX_JWT_LEEWAY: Duration = Duration::from_secs(300);
const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(30);

/// `JWT_*`.
#[derive(Debug, Clone)]
pub struct AuthSection {
    /// `JWT_SECRET`.
    pub jwt_secret: Secret,
    /// True when `--dev` generated the secret for this run.
    pub jwt_secret_generated: bool,
    /// `JWT_ALGORITHMS`; never empty (HS256 by default).
    pub jwt_algorithms: Vec<Algorithm>,
    /// `JWT_REQUIRE_EXP`.
    pub jwt_require_exp: bool,
    /// `JWT_ISSUER`.
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: Option<String>,
    /// `JWT_LEEWAY`.
    pub jwt_leeway: Duration,
    /// `JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS`.
    pub jwt_enforce_expiry_on_open_sockets: bool,
}

impl AuthSection {
    /// Reads the section; `--dev` may leave `JWT_SECRET` unset.
    pub(super) fn read(r: &mut Reader<'_>, dev: bool) -> Self {
        let (jwt_secret, jwt_secret_generated) = match r.text("JWT_SECRET") {
            Some(secret) => {
                if let Some(problem) = weak_secret_reason(&secret) {
                    r.fail("JWT_SECRET", problem);
                }
                (Secret::new(secret), false)
            }
            None if dev => (Secret::new(generated_secret()), true),
            None => {
                r.fail("JWT_SECRET", "is required (at least 32 random bytes; try `openssl rand -base64 48`)");
                (Secret::new(String::new()), false)
            }
        };
        let mut jwt_algorithms = Vec::new();
        for name in r.list("JWT_ALGORITHMS") {
            match name.to_ascii_uppercase().as_str() {
                "HS256" => jwt_algorithms.push(Algorithm::HS256),
                "HS384" => jwt_algorithms.push(Algorithm::HS384),
                "HS512" => jwt_algorithms.push(Algorithm::HS512),
                _ => r.fail("JWT_ALGORITHMS", format!("{name:?} is not one of HS256, HS384, HS512")),
            }
        }
        if jwt_algorithms.is_empty() {
            jwt_algorithms.push(Algorithm::HS256);
        }
        let jwt_require_exp = r.boolean("JWT_REQUIRE_EXP", true);
        let jwt_leeway = match r.source.get("JWT_LEEWAY") {
            None => DEFAULT_JWT_LEEWAY,
            Some(raw) => match humantime::parse_duration(raw) {
                Ok(leeway) if leeway <= MAX_JWT_LEEWAY => leeway,
                Ok(_) => {
                    r.fail("JWT_LEEWAY", "must be at most 5m");
                    DEFAULT_JWT_LEEWAY
                }
                Err(_) => {
                    r.fail("JWT_LEEWAY", format!("must be a duration such as 30s, got {raw:?}"));
                    DEFAULT_JWT_LEEWAY
                }
            },
        };
        Self {
            jwt_secret,
            jwt_secret_generated,
            jwt_algorithms,
            jwt_require_exp,
            jwt_issuer: r.text("JWT_ISSUER"),
            jwt_audience: r.text("JWT_AUDIENCE"),
            jwt_leeway,
            jwt_enforce_expiry_on_open_sockets: r.boolean("JWT_ENFORCE_EXPIRY_ON_OPEN_SOCKETS", true),
        }
    }

    /// What the token verifier checks, the secret still wrapped.
    #[must_use]
    pub fn jwt_settings(&self) -> JwtSettings {
        JwtSettings {
            secret: self.jwt_secret.clone(),
            algorithms: self.jwt_algorithms.clone(),
            require_exp: self.jwt_require_exp,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway: self.jwt_leeway,
        }
    }
}
