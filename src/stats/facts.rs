//! What the statistics read of one case, and the periods they count in.
//!
//! A [`CaseFacts`] is decoded from a case's sealed categories inside the
//! node, used for counting, and dropped: it never leaves the node and holds
//! nothing of the identity category.

use std::fmt;

use time::{Date, Month};

use crate::model::outcome::{Outcome, Scenario};

/// The categorical facts of one case that the figures are counted from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFacts {
    /// The participant that registered (owns) the case.
    pub owner: String,
    /// The intake in the LVV: the perspective's `intake_date`, or else the
    /// day the case was registered with the node.
    pub intake: Date,
    /// The guidance scenario agreed at intake, if recorded.
    pub intake_scenario: Option<Scenario>,
    /// The perspective worked on now, if recorded.
    pub perspective: Option<Scenario>,
    /// How the case left the LVV, if it has.
    pub outcome: Option<Outcome>,
    /// The shelter period (since, until), if a shelter is recorded.
    pub shelter: Option<(Option<Date>, Option<Date>)>,
}

/// A calendar quarter, the period every table counts in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Quarter {
    pub year: i32,
    /// 1 to 4.
    pub q: u8,
}

impl Quarter {
    /// Years the LVV has existed in (the pilot started in 2019) up to 9999.
    pub const FIRST_YEAR: i32 = 2019;

    /// `None` unless `q` is 1–4 and `year` is from [`Self::FIRST_YEAR`] to 9999.
    pub fn new(year: i32, q: u8) -> Option<Quarter> {
        ((Self::FIRST_YEAR..=9999).contains(&year) && (1..=4).contains(&q))
            .then_some(Quarter { year, q })
    }

    /// The quarter a day falls in.
    pub fn of(d: Date) -> Quarter {
        Quarter {
            year: d.year(),
            q: (u8::from(d.month()) - 1) / 3 + 1,
        }
    }

    pub fn first_day(self) -> Date {
        let month = Month::try_from(3 * (self.q - 1) + 1).unwrap_or(Month::January);
        Date::from_calendar_date(self.year, month, 1).unwrap_or(Date::MIN)
    }

    /// The day after the quarter's last day.
    pub fn end(self) -> Date {
        let next = if self.q == 4 {
            Quarter {
                year: self.year + 1,
                q: 1,
            }
        } else {
            Quarter {
                year: self.year,
                q: self.q + 1,
            }
        };
        next.first_day()
    }

    pub fn contains(self, d: Date) -> bool {
        Quarter::of(d) == self
    }

    /// Whether the quarter has ended on `today` (its figures can no longer
    /// change through events on later days).
    pub fn closed_on(self, today: Date) -> bool {
        today >= self.end()
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Q{}", self.year, self.q)
    }
}

/// Whole calendar months from `from` to `to` (0 if `to` is earlier).
pub fn months_between(from: Date, to: Date) -> u32 {
    if to <= from {
        return 0;
    }
    let months = (to.year() - from.year()) * 12 + i32::from(u8::from(to.month()))
        - i32::from(u8::from(from.month()));
    let months = if to.day() < from.day() {
        months - 1
    } else {
        months
    };
    months.max(0) as u32
}

/// The shelter status on `day` of a recorded shelter period: in shelter
/// (began on or before the day and not ended before it), or ended.
pub fn sheltered_on(since: Option<Date>, until: Option<Date>, day: Date) -> bool {
    since.is_none_or(|s| s <= day) && until.is_none_or(|u| u >= day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::outcome::parse_date;

    fn d(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn quarters() {
        let q = Quarter::of(d("2026-05-17"));
        assert_eq!(q, Quarter { year: 2026, q: 2 });
        assert_eq!(q.first_day(), d("2026-04-01"));
        assert_eq!(q.end(), d("2026-07-01"));
        assert_eq!(Quarter::new(2025, 4).unwrap().end(), d("2026-01-01"));
        assert!(q.contains(d("2026-06-30")) && !q.contains(d("2026-07-01")));
        assert!(!q.closed_on(d("2026-06-30")) && q.closed_on(d("2026-07-01")));
        assert_eq!(Quarter::new(2018, 1), None);
        assert_eq!(Quarter::new(2026, 5), None);
        assert_eq!(q.to_string(), "2026 Q2");
    }

    #[test]
    fn whole_months() {
        assert_eq!(months_between(d("2025-01-31"), d("2025-02-28")), 0);
        assert_eq!(months_between(d("2025-01-15"), d("2025-04-15")), 3);
        assert_eq!(months_between(d("2025-01-15"), d("2025-04-14")), 2);
        assert_eq!(months_between(d("2025-06-01"), d("2025-01-01")), 0);
        assert_eq!(months_between(d("2023-01-01"), d("2025-01-01")), 24);
    }
}
