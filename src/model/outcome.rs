//! How the LVV counts: the guidance scenario agreed at intake, the
//! perspective worked on now, and the outcome realised — each a closed set,
//! so that a figure means what a ministry report means by it.
//!
//! The kinds follow the chain's own publications:
//!
//! - **departures** as DT&V (Dienst Terugkeer en Vertrek) reports them:
//!   *zelfstandig vertrek* (independent departure), *gedwongen vertrek*
//!   (forced departure) — together DT&V's *aantoonbaar vertrek*,
//!   demonstrable departure — and *vertrek zonder toezicht* (departure
//!   without supervision, formerly "vertrokken met onbekende bestemming");
//! - **legalisation** (a residence permit granted) and **onward migration**
//!   (legal stay in another country), as the LVV evaluations for the WODC
//!   count them;
//! - **out of sight** (*uit beeld*): the person left the LVV without a
//!   durable solution and without a recorded departure.
//!
//! A *durable solution* is one of independent or forced departure,
//! legalisation or onward migration: the outcomes after which the person
//! has a lawful place to be. Departure without supervision and out of sight
//! are outcomes (the person left the LVV) but not durable solutions.
//!
//! The intake scenario (*begeleidingsscenario* agreed at intake) is kept
//! apart from what was realised, because the evaluations compare the two.

use std::fmt;

use time::Date;

/// A perspective: the durable solution a case works towards. The same four
/// words describe the scenario agreed at intake and the perspective now.
/// Codes are the protobuf `PerspectiveKind` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Undetermined,
    Return,
    OnwardMigration,
    Legalisation,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 4] = [
        Scenario::Undetermined,
        Scenario::Return,
        Scenario::OnwardMigration,
        Scenario::Legalisation,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scenario::Undetermined => "undetermined",
            Scenario::Return => "return",
            Scenario::OnwardMigration => "onward_migration",
            Scenario::Legalisation => "legalisation",
        }
    }

    /// In words, for tables a ministry reads.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Scenario::Undetermined => "not yet determined",
            Scenario::Return => "return",
            Scenario::OnwardMigration => "onward migration",
            Scenario::Legalisation => "legalisation",
        }
    }

    /// The protobuf `PerspectiveKind` number (0 is "not set").
    pub(crate) fn code(self) -> i32 {
        match self {
            Scenario::Undetermined => 1,
            Scenario::Return => 2,
            Scenario::OnwardMigration => 3,
            Scenario::Legalisation => 4,
        }
    }

    /// `None` for 0 (not set) and unknown numbers.
    pub(crate) fn from_code(code: i32) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a case left the LVV. Closed: every outcome is exactly one of these.
/// Codes are the protobuf `OutcomeKind` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeKind {
    /// DT&V *zelfstandig vertrek*: left for the country of origin or
    /// another country that admits the person, on their own.
    DepartureIndependent,
    /// DT&V *gedwongen vertrek*: removed by the state.
    DepartureForced,
    /// DT&V *vertrek zonder toezicht* (formerly "vertrokken met onbekende
    /// bestemming"): left, without the departure being demonstrable.
    DepartureUnsupervised,
    /// A residence permit was granted (*legalisering*).
    Legalisation,
    /// Legal stay in another country (*doormigratie*).
    OnwardMigration,
    /// *Uit beeld*: left the LVV without a durable solution and without a
    /// recorded departure.
    OutOfSight,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 6] = [
        OutcomeKind::DepartureIndependent,
        OutcomeKind::DepartureForced,
        OutcomeKind::Legalisation,
        OutcomeKind::OnwardMigration,
        OutcomeKind::DepartureUnsupervised,
        OutcomeKind::OutOfSight,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::DepartureIndependent => "departure_independent",
            OutcomeKind::DepartureForced => "departure_forced",
            OutcomeKind::DepartureUnsupervised => "departure_unsupervised",
            OutcomeKind::Legalisation => "legalisation",
            OutcomeKind::OnwardMigration => "onward_migration",
            OutcomeKind::OutOfSight => "out_of_sight",
        }
    }

    /// In words, for tables a ministry reads.
    pub(crate) fn words(self) -> &'static str {
        match self {
            OutcomeKind::DepartureIndependent => "independent departure",
            OutcomeKind::DepartureForced => "forced departure",
            OutcomeKind::DepartureUnsupervised => "departure without supervision",
            OutcomeKind::Legalisation => "legalisation (permit granted)",
            OutcomeKind::OnwardMigration => "onward migration",
            OutcomeKind::OutOfSight => "out of sight",
        }
    }

    /// Whether this outcome is a durable solution (see the module
    /// documentation): the person has a lawful place to be.
    pub(crate) fn is_durable(self) -> bool {
        !matches!(
            self,
            OutcomeKind::DepartureUnsupervised | OutcomeKind::OutOfSight
        )
    }

    /// The protobuf `OutcomeKind` number (0 is "not set").
    pub(crate) fn code(self) -> i32 {
        match self {
            OutcomeKind::DepartureIndependent => 1,
            OutcomeKind::DepartureForced => 2,
            OutcomeKind::DepartureUnsupervised => 3,
            OutcomeKind::Legalisation => 4,
            OutcomeKind::OnwardMigration => 5,
            OutcomeKind::OutOfSight => 6,
        }
    }

    /// `None` for 0 (not set) and unknown numbers.
    pub(crate) fn from_code(code: i32) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The perspective this outcome realises, for readers of the former
    /// model (`reached` plus a perspective kind); `None` for outcomes that
    /// realise none.
    pub(crate) fn realises(self) -> Option<Scenario> {
        match self {
            OutcomeKind::DepartureIndependent | OutcomeKind::DepartureForced => {
                Some(Scenario::Return)
            }
            OutcomeKind::Legalisation => Some(Scenario::Legalisation),
            OutcomeKind::OnwardMigration => Some(Scenario::OnwardMigration),
            OutcomeKind::DepartureUnsupervised | OutcomeKind::OutOfSight => None,
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome: which, and on which day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub date: Date,
}

impl Outcome {
    /// Reads an outcome recorded in the former model, which had only
    /// `reached`, a perspective kind and a date. A reached return becomes an
    /// independent departure (the only return the LVV worked towards then);
    /// legalisation and onward migration keep their meaning. Anything else —
    /// not reached, no kind, no date — is no outcome.
    pub(crate) fn from_legacy(
        reached: bool,
        kind: Option<Scenario>,
        date: Option<Date>,
    ) -> Option<Outcome> {
        let kind = match (reached, kind?) {
            (false, _) => return None,
            (true, Scenario::Return) => OutcomeKind::DepartureIndependent,
            (true, Scenario::Legalisation) => OutcomeKind::Legalisation,
            (true, Scenario::OnwardMigration) => OutcomeKind::OnwardMigration,
            (true, Scenario::Undetermined) => return None,
        };
        Some(Outcome { kind, date: date? })
    }
}

/// Parses a `YYYY-MM-DD` date; `None` for empty or malformed text (the
/// gateway refuses malformed dates on the way in).
pub fn parse_date(s: &str) -> Option<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_is_not_set() {
        for k in OutcomeKind::ALL {
            assert_eq!(OutcomeKind::from_code(k.code()), Some(k));
        }
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_code(s.code()), Some(s));
        }
        assert_eq!(OutcomeKind::from_code(0), None);
        assert_eq!(Scenario::from_code(0), None);
        assert_eq!(OutcomeKind::from_code(7), None);
    }

    #[test]
    fn durable_solutions_are_the_four_lawful_places_to_be() {
        let durable: Vec<_> = OutcomeKind::ALL
            .into_iter()
            .filter(|k| k.is_durable())
            .collect();
        assert_eq!(
            durable,
            [
                OutcomeKind::DepartureIndependent,
                OutcomeKind::DepartureForced,
                OutcomeKind::Legalisation,
                OutcomeKind::OnwardMigration
            ]
        );
    }

    #[test]
    fn the_former_model_stays_readable() {
        let d = parse_date("2025-03-01");
        assert_eq!(
            Outcome::from_legacy(true, Some(Scenario::Return), d).map(|o| o.kind),
            Some(OutcomeKind::DepartureIndependent)
        );
        assert_eq!(
            Outcome::from_legacy(true, Some(Scenario::Legalisation), d).map(|o| o.kind),
            Some(OutcomeKind::Legalisation)
        );
        assert_eq!(Outcome::from_legacy(false, Some(Scenario::Return), d), None);
        assert_eq!(Outcome::from_legacy(true, None, d), None);
        assert_eq!(
            Outcome::from_legacy(true, Some(Scenario::Return), None),
            None
        );
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date(""), None);
    }
}
