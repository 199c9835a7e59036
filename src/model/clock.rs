//! Wall-clock time in the one unit the node stores: milliseconds since the
//! Unix epoch, UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The calendar date now, UTC.
pub(crate) fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

/// An instant as RFC 3339 in UTC with milliseconds, always 24 characters
/// (`2026-11-29T08:05:03.120Z`) for the years 1970 to 9999, so that written
/// times line up in columns and sort as text in time order.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

pub(crate) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
