//! The HTTP rate limits: per admin on the admin routes (`ADMIN_RATE_LIMIT` per
//! `ADMIN_RATE_WINDOW`), per user on the user routes (120 a minute), and per client
//! address on the public routes (`PUBLIC_RATE_LIMIT` a minute; clients in
//! `METRICS_ALLOWED_NETWORKS` — probes, scrapers — are exempt so they never get 429).
//!
//! A refusal is `429 {"error":"rate_limit_exceeded","message","retry_after_ms"}` with
//! `Retry-After` in whole seconds, rounded up, at least 1, and one log line containing
//! `rate limit exceeded`. Limiter state is bounded the same way as the message
//! limiter's: recovered keys are dropped by the cleanup task, and no key is ever refused
//! because the map is large.
//!
//! With a store the replicas share (`HUB_BACKEND=redis`) every replica draws on the same
//! budgets there; when it cannot decide, the request is refused with 503 (fails closed),
//! except for exempt clients, whose probes must keep working.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chatbox_application::ChatError;
use chatbox_application::limits::KeyedLimiter;
use chatbox_application::ports::LimitVerdict;
use chatbox_application::shared_state::SharedStateClient;
use chatbox_domain::UserId;
use chatbox_domain::rate_limit::Quota;
use http::{HeaderValue, StatusCode, header};
use ipnet::IpNet;
use serde_json::json;
use tracing::info;

use crate::reply::{HttpResponse, error_response, json_response};

/// The quotas of the three HTTP limiters.
#[derive(Debug, Clone, Copy)]
pub struct HttpQuotas {
    /// Per admin.
    pub admin: Quota,
    /// Per user, on the user routes.
    pub user: Quota,
    /// Per client address, on the public routes.
    pub public: Quota,
}

/// The three HTTP limiters: in this process, or in the store the replicas share.
#[derive(Debug)]
pub struct HttpLimiters {
    quotas: HttpQuotas,
    admin: KeyedLimiter<UserId>,
    user: KeyedLimiter<UserId>,
    public: KeyedLimiter<IpAddr>,
    exempt: Vec<IpNet>,
    shared: Option<Arc<SharedStateClient>>,
}

/// A refused request: what its reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Over the quota: 429.
    Over {
        /// Client-safe text.
        message: &'static str,
        /// When the same request passes.
        retry_after: Duration,
    },
    /// The shared store could not decide: 503, retry shortly (fails closed).
    Undecided,
}

impl Limited {
    /// The reply: over the quota, `429 {"error":"rate_limit_exceeded","message",
    /// "retry_after_ms"}` and `Retry-After` in whole seconds, rounded up, at least 1;
    /// undecided, the API's `503` error body with `SHARED_STATE_UNAVAILABLE`.
    #[must_use]
    pub fn response(&self) -> HttpResponse {
        let (message, retry_after) = match *self {
            Self::Over { message, retry_after } => (message, retry_after),
            Self::Undecided => {
                let error = ChatError::SharedStateUnavailable;
                return error_response(error.code(), &error.to_string(), error.retry_after());
            }
        };
        let retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        let mut response = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({ "error": "rate_limit_exceeded", "message": message, "retry_after_ms": retry_after_ms }),
        );
        let seconds = retry_after_ms.div_ceil(1000).max(1);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    /// True when the quota refused (not the store).
    #[must_use]
    pub const fn is_over_quota(&self) -> bool {
        matches!(self, Self::Over { .. })
    }
}

impl HttpLimiters {
    /// Limiters with `quotas`; clients in `exempt` skip the public limit. With `shared`,
    /// the budgets are the replicas' common ones, kept in that store.
    #[must_use]
    pub fn new(quotas: HttpQuotas, exempt: Vec<IpNet>, shared: Option<Arc<SharedStateClient>>) -> Self {
        Self {
            quotas,
            admin: KeyedLimiter::new(quotas.admin),
            user: KeyedLimiter::new(quotas.user),
            public: KeyedLimiter::new(quotas.public),
            exempt,
            shared,
        }
    }

    /// Counts one admin request.
    ///
    /// # Errors
    /// The refusal when `admin` is over the quota or the shared store cannot decide.
    pub async fn admin(&self, admin: &UserId, now: Duration) -> Result<(), Limited> {
        let decided = match &self.shared {
            Some(shared) => shared_check(shared, &format!("rate:admin:{admin}"), self.quotas.admin).await?,
            None => self.admin.check(admin, now),
        };
        decided.map_err(|wait| {
            info!(user_id = %admin, retry_after_ms = wait.as_millis(), "rate limit exceeded: admin requests");
            over("Too many admin requests", wait)
        })
    }

    /// Counts one request on a user route.
    ///
    /// # Errors
    /// The refusal when `user` is over the quota or the shared store cannot decide.
    pub async fn user(&self, user: &UserId, now: Duration) -> Result<(), Limited> {
        let decided = match &self.shared {
            Some(shared) => shared_check(shared, &format!("rate:user:{user}"), self.quotas.user).await?,
            None => self.user.check(user, now),
        };
        decided.map_err(|wait| {
            info!(user_id = %user, retry_after_ms = wait.as_millis(), "rate limit exceeded: user requests");
            over("Too many requests", wait)
        })
    }

    /// Counts one request on a public route from `client`.
    ///
    /// # Errors
    /// The refusal when `client` is over the quota or the shared store cannot decide
    /// (never for exempt clients: probes and scrapers keep working during an outage).
    pub async fn public(&self, client: IpAddr, now: Duration) -> Result<(), Limited> {
        if self.exempt.iter().any(|net| net.contains(&client)) {
            return Ok(());
        }
        let decided = match &self.shared {
            Some(shared) => shared_check(shared, &format!("rate:ip:{client}"), self.quotas.public).await?,
            None => self.public.check(&client, now),
        };
        decided.map_err(|wait| {
            info!(client_ip = %client, retry_after_ms = wait.as_millis(), "rate limit exceeded: public requests");
            over("Too many requests", wait)
        })
    }

    /// Forgets recovered keys of all three; returns (before, after) summed.
    #[must_use]
    pub fn cleanup(&self, now: Duration) -> (usize, usize) {
        let (a, b) = self.admin.cleanup(now);
        let (c, d) = self.user.cleanup(now);
        let (e, f) = self.public.cleanup(now);
        (a + c + e, b + d + f)
    }

    /// Keys tracked in this process by all three.
    #[must_use]
    pub fn len(&self) -> usize {
        self.admin.len() + self.user.len() + self.public.len()
    }

    /// True when no key is tracked in this process.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One request of `key` decided by the shared store: `Ok(Err(wait))` when over the quota.
async fn shared_check(
    shared: &SharedStateClient,
    key: &str,
    quota: Quota,
) -> Result<Result<(), Duration>, Limited> {
    match shared.check_rate(key, quota, 1).await {
        Ok(LimitVerdict::Allowed) => Ok(Ok(())),
        Ok(LimitVerdict::Limited { retry_after }) => Ok(Err(retry_after)),
        Err(_) => Err(Limited::Undecided),
    }
}

const fn over(message: &'static str, retry_after: Duration) -> Limited {
    Limited::Over { message, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiters() -> HttpLimiters {
        let quota = |n| Quota::new(n, Duration::from_secs(60)).expect("quota");
        HttpLimiters::new(
            HttpQuotas { admin: quota(2), user: quota(3), public: quota(1) },
            vec!["127.0.0.0/8".parse().expect("net")],
            None,
        )
    }

    #[tokio::test]
    async fn over_the_quota_the_reply_is_429_with_whole_seconds_rounded_up() {
        let limiters = limiters();
        let admin = UserId::parse("a").expect("id");
        let now = Duration::from_secs(100);
        assert!(limiters.admin(&admin, now).await.is_ok());
        assert!(limiters.admin(&admin, now).await.is_ok());
        let reply = limiters.admin(&admin, now).await.expect_err("third is refused").response();
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
        // 2 per minute: the next slot frees in 30 s.
        assert_eq!(reply.headers()[header::RETRY_AFTER], "30");
        let reply =
            limiters.admin(&admin, now + Duration::from_millis(100)).await.expect_err("still").response();
        assert_eq!(reply.headers()[header::RETRY_AFTER], "30", "29.9 s rounds up");
        assert!(limiters.user(&admin, now).await.is_ok(), "each limiter has its own buckets");
    }

    #[tokio::test]
    async fn exempt_networks_are_never_limited_and_cleanup_forgets_recovered_keys() {
        let limiters = limiters();
        let now = Duration::from_secs(100);
        for _ in 0..10 {
            assert!(limiters.public("127.0.0.1".parse().expect("ip"), now).await.is_ok());
        }
        let outside: IpAddr = "203.0.113.1".parse().expect("ip");
        assert!(limiters.public(outside, now).await.is_ok());
        assert!(limiters.public(outside, now).await.is_err());
        assert_eq!(limiters.len(), 1, "exempt clients take no key");
        assert_eq!(limiters.cleanup(now + Duration::from_secs(120)), (1, 0));
    }

    /// A store the replicas share that cannot be reached.
    #[derive(Debug)]
    struct Unreachable;

    #[async_trait::async_trait]
    impl chatbox_application::ports::SharedState for Unreachable {
        async fn check_rate(
            &self,
            _: &str,
            _: Quota,
            _: u32,
        ) -> Result<LimitVerdict, chatbox_application::ports::SharedStateUnavailable> {
            Err(chatbox_application::ports::SharedStateUnavailable("connection refused".into()))
        }
        async fn claim_socket(
            &self,
            _: &UserId,
            _: usize,
        ) -> Result<
            Option<chatbox_application::ports::SocketSlot>,
            chatbox_application::ports::SharedStateUnavailable,
        > {
            Err(chatbox_application::ports::SharedStateUnavailable("connection refused".into()))
        }
        async fn ping(&self) -> Result<(), chatbox_application::ports::SharedStateUnavailable> {
            Err(chatbox_application::ports::SharedStateUnavailable("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn a_shared_store_that_cannot_decide_refuses_with_503_and_spares_exempt_clients() {
        let quota = |n| Quota::new(n, Duration::from_secs(60)).expect("quota");
        let metrics: Arc<dyn chatbox_application::ports::Metrics> =
            Arc::new(chatbox_application::ports::NoMetrics);
        let shared = Arc::new(SharedStateClient::new(Arc::new(Unreachable), metrics, Duration::from_secs(1)));
        let limiters = HttpLimiters::new(
            HttpQuotas { admin: quota(2), user: quota(3), public: quota(1) },
            vec!["127.0.0.0/8".parse().expect("net")],
            Some(shared),
        );
        let now = Duration::from_secs(100);
        let refused = limiters.admin(&UserId::parse("a").expect("id"), now).await.expect_err("undecided");
        assert!(!refused.is_over_quota(), "not a rate-limit refusal: not counted as one");
        let reply = refused.response();
        assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.headers()[header::RETRY_AFTER], "2");
        assert!(limiters.user(&UserId::parse("u").expect("id"), now).await.is_err());
        let outside: IpAddr = "203.0.113.1".parse().expect("ip");
        assert!(limiters.public(outside, now).await.is_err());
        assert!(limiters.public("127.0.0.1".parse().expect("ip"), now).await.is_ok(), "probes keep working");
    }
}
