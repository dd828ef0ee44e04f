//! Query parameters of the session routes, parsed into what the use-cases take. A value
//! that does not parse is a 400 naming the parameter, never silently ignored.

use std::collections::HashMap;

use chatbox_application::ports::{SessionQuery, SessionSort};
use chatbox_domain::{Seq, Timestamp, UserId};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// A parameter that did not parse: its client-facing explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadParam(pub &'static str);

/// Most admin sessions per page.
pub const MAX_ADMIN_LIMIT: usize = 1000;
/// Most sessions per page of a user's listing.
pub const MAX_USER_LIMIT: usize = 200;
/// Most messages per page.
pub const MAX_MESSAGE_LIMIT: usize = 1000;
/// The largest `offset`: `i64::MAX`, the largest skip MongoDB takes (its driver sends
/// the skip as a signed 64-bit integer). Above it the request is refused as malformed on
/// every store, rather than failing in the store and reading as an outage.
pub const MAX_OFFSET: usize = 9_223_372_036_854_775_807;

fn number(
    query: &HashMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
    problem: &'static str,
) -> Result<usize, BadParam> {
    match query.get(key) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().ok().filter(|n| *n <= max).ok_or(BadParam(problem)),
    }
}

/// `limit` (default `default`, 1..=`max`) and `offset` (0..=[`MAX_OFFSET`]).
///
/// # Errors
/// When either is not a number in range.
pub fn page(query: &HashMap<String, String>, default: usize, max: usize) -> Result<(usize, usize), BadParam> {
    let limit =
        number(query, "limit", default, max, "limit must be a whole number between 1 and the maximum")?;
    if limit == 0 {
        return Err(BadParam("limit must be a whole number between 1 and the maximum"));
    }
    let offset = number(
        query,
        "offset",
        0,
        MAX_OFFSET,
        "offset must be a whole number between 0 and 9223372036854775807",
    )?;
    Ok((limit, offset))
}

/// `after_seq` (default 0) and `limit` of a conversation page.
///
/// # Errors
/// When either is not a number in range.
pub fn message_page(query: &HashMap<String, String>) -> Result<(Seq, usize), BadParam> {
    let after = match query.get("after_seq") {
        None => 0,
        Some(text) => text.parse::<u64>().map_err(|_| BadParam("after_seq must be a whole number"))?,
    };
    let (limit, _) = page(query, 200, MAX_MESSAGE_LIMIT)?;
    Ok((Seq(after), limit))
}

/// A time bound: RFC 3339, or a date `YYYY-MM-DD` meaning its first instant (`end_of_day`
/// false) or its last millisecond (true), in UTC.
///
/// # Errors
/// When it is neither.
pub fn time_bound(text: &str, end_of_day: bool, problem: &'static str) -> Result<Timestamp, BadParam> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| BadParam(problem))?;
    let time = if end_of_day {
        NaiveTime::from_hms_milli_opt(23, 59, 59, 999).ok_or(BadParam(problem))?
    } else {
        NaiveTime::MIN
    };
    Ok(date.and_time(time).and_utc())
}

fn optional_bool(
    query: &HashMap<String, String>,
    key: &str,
    problem: &'static str,
) -> Result<Option<bool>, BadParam> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(BadParam(problem)),
    }
}

fn optional_time(
    query: &HashMap<String, String>,
    keys: &[&str],
    end_of_day: bool,
    problem: &'static str,
) -> Result<Option<Timestamp>, BadParam> {
    keys.iter()
        .find_map(|key| query.get(*key).filter(|v| !v.is_empty()))
        .map(|text| time_bound(text, end_of_day, problem))
        .transpose()
}

/// The admin listing's query: filters `user_id`, `status`, `admin_assisted`,
/// `help_requested`, `start_time_from` / `start_time_to` (also spelt `start_time` /
/// `end_time`, as the earlier admin page sends them); `sort_by`, `sort_order`, `limit`,
/// `offset`. `user` overrides `user_id` (the per-user route).
///
/// # Errors
/// The first parameter that does not parse.
pub fn admin_query(query: &HashMap<String, String>, user: Option<UserId>) -> Result<SessionQuery, BadParam> {
    let (limit, offset) = page(query, 50, MAX_ADMIN_LIMIT)?;
    let user_id = match (user, query.get("user_id").filter(|v| !v.is_empty())) {
        (Some(user), _) => Some(user),
        (None, Some(text)) => {
            Some(UserId::parse(text).map_err(|_| BadParam("user_id is not a valid user id"))?)
        }
        (None, None) => None,
    };
    let active = match query.get("status").map(String::as_str) {
        None | Some("" | "all") => None,
        Some("active") => Some(true),
        Some("ended") => Some(false),
        Some(_) => return Err(BadParam("status must be active or ended")),
    };
    let sort = match query.get("sort_by").map(String::as_str) {
        None | Some("" | "start_time") => SessionSort::StartTime,
        Some("end_time") => SessionSort::EndTime,
        Some("last_activity") => SessionSort::LastActivity,
        Some("duration") => SessionSort::Duration,
        Some("message_count") => SessionSort::MessageCount,
        Some("total_tokens") => SessionSort::TotalTokens,
        Some("user_id") => SessionSort::UserId,
        Some(_) => {
            return Err(BadParam(
                "sort_by must be one of start_time, end_time, last_activity, duration, message_count, total_tokens, user_id",
            ));
        }
    };
    let descending = match query.get("sort_order").map(String::as_str) {
        None | Some("" | "desc") => true,
        Some("asc") => false,
        Some(_) => return Err(BadParam("sort_order must be asc or desc")),
    };
    let from_problem = "start_time_from must be RFC 3339 or YYYY-MM-DD";
    let to_problem = "start_time_to must be RFC 3339 or YYYY-MM-DD";
    let created_from = optional_time(query, &["start_time_from", "start_time"], false, from_problem)?;
    let created_to = optional_time(query, &["start_time_to", "end_time"], true, to_problem)?;
    if let (Some(from), Some(to)) = (created_from, created_to)
        && to < from
    {
        return Err(BadParam("start_time_to is before start_time_from"));
    }
    Ok(SessionQuery {
        user_id,
        active,
        admin_assisted: optional_bool(query, "admin_assisted", "admin_assisted must be true or false")?,
        help_requested: optional_bool(query, "help_requested", "help_requested must be true or false")?,
        created_from,
        created_to,
        sort,
        descending,
        limit,
        offset,
        with_total: true,
    })
}

/// The metrics route's range: `start_time`, `end_time` (RFC 3339 or dates).
///
/// # Errors
/// A bound that does not parse, or an end before the start.
pub fn metrics_range(
    query: &HashMap<String, String>,
) -> Result<(Option<Timestamp>, Option<Timestamp>), BadParam> {
    let from = optional_time(query, &["start_time"], false, "start_time must be RFC 3339 or YYYY-MM-DD")?;
    let to = optional_time(query, &["end_time"], true, "end_time must be RFC 3339 or YYYY-MM-DD")?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(BadParam("end_time is before start_time"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_filter_and_sort_parses_and_bad_values_are_refused() {
        let parsed = admin_query(
            &query(&[
                ("user_id", "u1"),
                ("status", "ended"),
                ("admin_assisted", "true"),
                ("help_requested", "false"),
                ("start_time_from", "2026-01-01"),
                ("start_time_to", "2026-01-31"),
                ("sort_by", "total_tokens"),
                ("sort_order", "asc"),
                ("limit", "1000"),
                ("offset", "20"),
            ]),
            None,
        )
        .expect("valid");
        assert_eq!(parsed.user_id.as_ref().map(UserId::as_str), Some("u1"));
        assert_eq!(
            (parsed.active, parsed.admin_assisted, parsed.help_requested),
            (Some(false), Some(true), Some(false))
        );
        assert_eq!(parsed.sort, SessionSort::TotalTokens);
        assert!(!parsed.descending);
        assert_eq!((parsed.limit, parsed.offset), (1000, 20));
        assert_eq!(parsed.created_to.map(|t| t.to_rfc3339()), Some("2026-01-31T23:59:59.999+00:00".into()));
        for bad in [
            ("limit", "1001"),
            ("limit", "0"),
            ("offset", "-1"),
            ("status", "open"),
            ("sort_by", "name"),
            ("sort_order", "up"),
            ("admin_assisted", "yes"),
            ("start_time_from", "yesterday"),
        ] {
            assert!(admin_query(&query(&[bad]), None).is_err(), "{bad:?} is refused");
        }
        assert!(
            admin_query(&query(&[("start_time", "2026-02-01"), ("end_time", "2026-01-01")]), None).is_err()
        );
    }

    #[test]
    fn the_offset_stops_at_the_largest_skip_a_store_takes() {
        assert_eq!(i64::try_from(MAX_OFFSET), Ok(i64::MAX), "the documented maximum is i64::MAX");
        let largest = page(&query(&[("offset", "9223372036854775807")]), 50, MAX_USER_LIMIT);
        assert_eq!(largest, Ok((50, MAX_OFFSET)));
        for above in ["9223372036854775808", "18446744073709551615", "18446744073709551616"] {
            let refused = page(&query(&[("offset", above)]), 50, MAX_USER_LIMIT);
            assert!(matches!(refused, Err(BadParam(text)) if text.contains("offset")), "{above}");
            assert!(admin_query(&query(&[("offset", above)]), None).is_err(), "{above}");
            assert!(message_page(&query(&[("offset", above)])).is_err(), "{above}");
        }
    }

    #[test]
    fn the_metrics_range_refuses_an_end_before_its_start() {
        assert!(
            metrics_range(&query(&[("start_time", "2026-02-01T00:00:00Z"), ("end_time", "2026-01-01")]))
                .is_err()
        );
        let (from, to) = metrics_range(&query(&[("start_time", "2026-01-01")])).expect("open end");
        assert!(from.is_some() && to.is_none());
    }
}
