//! Rate-limit policy as a pure function of (state, now): the generic cell rate
//! algorithm (GCRA), the leaky bucket written as one timestamp per key.
//!
//! A [`Quota`] of `limit` per `window` lets a quiet key spend `limit` requests at once,
//! then one more every `window / limit`. The whole state of a key is its theoretical
//! arrival time (TAT); a key whose TAT is in the past is indistinguishable from a new
//! key, which is why a cleanup may forget it without changing any decision.
//! Time is a [`Duration`] since any fixed origin the caller chooses (a monotonic clock).

use std::time::Duration;

/// How many requests a key may make per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    window: Duration,
}

impl Quota {
    /// A quota of `limit` requests per `window`; `None` if either is zero.
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Option<Self> {
        (limit > 0 && !window.is_zero()).then_some(Self { limit, window })
    }

    /// Requests per window.
    #[must_use]
    pub const fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    #[must_use]
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// The time one request "costs": window / limit.
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        self.window / self.limit
    }
}

/// The whole per-key state: the theoretical arrival time of the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterState {
    tat: Duration,
}

impl LimiterState {
    /// The state of a key never seen, at `now`.
    #[must_use]
    pub const fn fresh(now: Duration) -> Self {
        Self { tat: now }
    }

    /// True when the key has fully recovered at `now` and may be forgotten.
    #[must_use]
    pub fn is_idle(&self, now: Duration) -> bool {
        self.tat <= now
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store the new state.
    Allowed(LimiterState),
    /// Refused; the state is unchanged and a request after `retry_after` would pass.
    Limited {
        /// How long to wait before the next request is allowed.
        retry_after: Duration,
    },
}

/// Decides one request of a key with `state` (None for a key never seen) at `now`.
#[must_use]
pub fn check(quota: Quota, state: Option<LimiterState>, now: Duration) -> Decision {
    check_cost(quota, state, now, 1)
}

/// Decides a request that counts as `cost` requests (at least 1, at most the quota's
/// limit, so every request can pass once the key has recovered).
#[must_use]
pub fn check_cost(quota: Quota, state: Option<LimiterState>, now: Duration, cost: u32) -> Decision {
    let cost = cost.clamp(1, quota.limit);
    let increment = quota.emission_interval().saturating_mul(cost);
    let tat = state.map_or(now, |s| s.tat.max(now));
    let next = tat.saturating_add(increment);
    // The bucket may run ahead of `now` by at most one window: that is the burst of
    // `limit` requests.
    let allow_at = next.saturating_sub(quota.window);
    if now >= allow_at {
        Decision::Allowed(LimiterState { tat: next })
    } else {
        Decision::Limited { retry_after: allow_at - now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quota(limit: u32, window_ms: u64) -> Quota {
        Quota::new(limit, Duration::from_millis(window_ms)).expect("valid quota")
    }

    fn allowed(decision: Decision) -> Option<LimiterState> {
        match decision {
            Decision::Allowed(state) => Some(state),
            Decision::Limited { .. } => None,
        }
    }

    #[test]
    fn zero_quotas_are_rejected() {
        assert!(Quota::new(0, Duration::from_secs(1)).is_none());
        assert!(Quota::new(1, Duration::ZERO).is_none());
    }

    #[test]
    fn burst_of_limit_then_refusal_with_exact_retry_after() {
        let q = quota(3, 60_000);
        let now = Duration::from_secs(100);
        let mut state = None;
        for _ in 0..3 {
            state = allowed(check(q, state, now));
            assert!(state.is_some());
        }
        let Decision::Limited { retry_after } = check(q, state, now) else {
            panic!("fourth request must be limited");
        };
        assert_eq!(retry_after, Duration::from_secs(20));
        assert!(allowed(check(q, state, now + retry_after)).is_some());
        assert!(allowed(check(q, state, now + retry_after - Duration::from_millis(1))).is_none());
    }

    proptest! {
        #[test]
        fn never_more_than_limit_plus_refill_in_any_horizon(
            limit in 1u32..50,
            window_ms in 10u64..10_000,
            gaps in proptest::collection::vec(0u64..500, 1..400),
        ) {
            let q = quota(limit, window_ms);
            let mut now = Duration::ZERO;
            let mut state = None;
            let mut allowed_count = 0u64;
            for gap in gaps {
                now += Duration::from_millis(gap);
                if let Decision::Allowed(s) = check(q, state, now) {
                    state = Some(s);
                    allowed_count += 1;
                }
            }
            let refill = now.as_nanos() / q.emission_interval().as_nanos().max(1);
            prop_assert!(u128::from(allowed_count) <= u128::from(limit) + refill);
        }

        #[test]
        fn a_refused_request_passes_exactly_at_retry_after(
            limit in 1u32..20,
            window_ms in 10u64..5_000,
            burst in 1usize..60,
        ) {
            let q = quota(limit, window_ms);
            let now = Duration::from_secs(1);
            let mut state = None;
            for _ in 0..burst {
                match check(q, state, now) {
                    Decision::Allowed(s) => state = Some(s),
                    Decision::Limited { retry_after } => {
                        prop_assert!(retry_after > Duration::ZERO);
                        prop_assert!(retry_after <= q.window());
                        prop_assert!(allowed(check(q, state, now + retry_after)).is_some());
                        break;
                    }
                }
            }
        }

        #[test]
        fn idle_state_decides_like_a_fresh_key(limit in 1u32..20, window_ms in 10u64..5_000) {
            let q = quota(limit, window_ms);
            let now = Duration::from_secs(5);
            let state = allowed(check(q, None, now)).expect("first request passes");
            let later = now + q.window();
            prop_assert!(state.is_idle(later));
            prop_assert_eq!(check(q, Some(state), later), check(q, None, later));
        }
    }

    #[test]
    fn a_quota_keeps_its_limit_and_window() {
        let q = quota(3, 60_000);
        assert_eq!(q.limit(), 3);
        assert_eq!(q.window(), Duration::from_secs(60));
        assert_eq!(q.emission_interval(), Duration::from_secs(20));
    }

    #[test]
    fn a_key_is_not_idle_before_its_tat() {
        // One request of a 3-per-minute quota costs 20 s: the TAT is now + 20 s.
        let q = quota(3, 60_000);
        let now = Duration::from_secs(100);
        let state = allowed(check(q, None, now)).expect("first request passes");
        assert!(!state.is_idle(now));
        assert!(!state.is_idle(now + Duration::from_secs(20) - Duration::from_nanos(1)));
        assert!(state.is_idle(now + Duration::from_secs(20)));
        assert!(LimiterState::fresh(now).is_idle(now));
        assert!(!LimiterState::fresh(now).is_idle(now - Duration::from_nanos(1)));
    }
}
