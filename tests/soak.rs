//! The soak test: churn, then bounded memory (being written; see issue 9).
