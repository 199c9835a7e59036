//! The domain vocabulary shared by every layer: roles, categories, purposes
//! and the typed caller. Kept free of protobuf and storage types so that the
//! policy, consent and gateway logic read in the terms a privacy officer uses.
//!
//! It exposes [`Role`], [`Category`], [`Caller`], `WithholdReason` (crate-only), the
//! default purposes, consent terms and their evaluation at an instant
//! ([`consent`]), how the LVV counts scenarios and outcomes ([`outcome`]),
//! the clock ([`clock`]), and a request's place in a trace ([`trace`]). Every subsystem may use it; it uses none of
//! them.

pub mod clock;
pub mod consent;
pub mod outcome;
pub mod trace;

use std::fmt;
use std::str::FromStr;

/// A whole number written canonically: ASCII digits only, no sign, no
/// leading zero (`0` itself allowed), at most `u64::MAX`.
///
/// Signed texts (checkpoints, C2SP tlog-checkpoint §Note text; the
/// federation directory) and tile paths (C2SP tlog-tiles) must have one
/// text per number, or two byte strings would carry the same meaning under
/// different signatures and hashes. `u64::from_str` alone also takes `+7`
/// and `007`, so every number read from outside text goes through here.
pub fn canonical_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// The part a participant plays in the LVV. Decides, with the purpose, which
/// categories the policy may release to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Municipality,
    Ind,
    Dtv,
    Avim,
    Ngo,
    Monitor,
    PrivacyOfficer,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Municipality,
        Role::Ind,
        Role::Dtv,
        Role::Avim,
        Role::Ngo,
        Role::Monitor,
        Role::PrivacyOfficer,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Municipality => "municipality",
            Role::Ind => "ind",
            Role::Dtv => "dtv",
            Role::Avim => "avim",
            Role::Ngo => "ngo",
            Role::Monitor => "monitor",
            Role::PrivacyOfficer => "privacy_officer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown role '{0}': expected one of municipality, ind, dtv, avim, ngo, monitor, privacy_officer"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A group of case data that is released or withheld as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Identity,
    ResidenceProcedure,
    Shelter,
    Guidance,
    Perspective,
    Medical,
    Safety,
    Outcome,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Identity,
        Category::ResidenceProcedure,
        Category::Shelter,
        Category::Guidance,
        Category::Perspective,
        Category::Medical,
        Category::Safety,
        Category::Outcome,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Identity => "identity",
            Category::ResidenceProcedure => "residence_procedure",
            Category::Shelter => "shelter",
            Category::Guidance => "guidance",
            Category::Perspective => "perspective",
            Category::Medical => "medical",
            Category::Safety => "safety",
            Category::Outcome => "outcome",
        }
    }

    /// A stable small number, used in the binary access-record encoding and
    /// as the protobuf enum value.
    pub fn code(self) -> u8 {
        match self {
            Category::Identity => 1,
            Category::ResidenceProcedure => 2,
            Category::Shelter => 3,
            Category::Guidance => 4,
            Category::Perspective => 5,
            Category::Medical => 6,
            Category::Safety => 7,
            Category::Outcome => 8,
        }
    }

    pub fn from_code(code: i32) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| i32::from(c.code()) == code)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown category '{s}'"))
    }
}

/// The purposes a node knows when its configuration names none.
pub const DEFAULT_PURPOSES: [&str; 7] = [
    "case_consultation",
    "return",
    "onward_migration",
    "legalisation",
    "shelter",
    "guidance",
    "monitoring",
];

/// Whether `s` is a name the node keys things by — a participant id or a
/// purpose: 1 to 64 characters of `a-z`, `0-9`, `-`, `_` and `.`. One rule,
/// so a name checked once is safe wherever it goes: query columns, Cedar
/// entity ids, lines of a signed receipt.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Whether `c` may stand in a single line of text that people read and the
/// node may sign: no control character (C0, DEL, C1: a newline would start
/// a line of its own in a signed note, an escape sequence would rewrite a
/// terminal), no line or paragraph separator, no bidirectional embedding,
/// override or isolate, which change the order in which a line is shown
/// (Unicode TR #9), nor any other format character ([`is_format`]: a
/// zero-width space makes two texts that look alike differ), and no white
/// space but the plain space (a no-break space looks like one and is not).
pub(crate) fn printable_in_line(c: char) -> bool {
    !(c.is_control() || is_format(c) || (c.is_whitespace() && c != ' '))
}

/// Whether `c` may stand in a person's name: no control character and no
/// format character (bidirectional overrides among them), which would hide
/// or reorder what a reader sees.
pub(crate) fn printable_in_name(c: char) -> bool {
    !(c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Unicode general category Cf (format), Unicode 15: invisible characters
/// that change how text around them is shown or joined — zero-width
/// spaces and joiners, direction marks, embeddings, overrides and
/// isolates, the byte-order mark, soft hyphen, tags.
pub(crate) fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// A registered participant, resolved from the TLS client certificate before
/// any handler runs. Handlers see this, never a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Participant id from the node registry, e.g. `gemeente-utrecht`.
    pub participant: String,
    pub role: Role,
    /// OIN when the participant is identified by one.
    pub oin: Option<String>,
    /// The federation node the call came from: for a participant a peer
    /// node asserted (a forwarded call), that node's directory id; for a
    /// node calling as itself, its own id (then `participant` too).
    /// `None` for this node's own participants.
    pub node: Option<String>,
}

/// Why a category was not released. The names are the ones in the access log
/// and (upper-cased, prefixed) in the protobuf `WithholdReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WithholdReason {
    NotPermittedForRoleAndPurpose,
    NoConsent,
    ConsentWithdrawn,
    ConsentExpired,
    ConsentNotYetValid,
    ActorRequired,
    NotPresent,
    /// Only an emergency rule (`@break_glass`) permits it, and the request
    /// carried no justification or named no acting employee.
    JustificationRequired,
}

impl WithholdReason {
    pub(crate) const ALL: [WithholdReason; 8] = [
        WithholdReason::NotPermittedForRoleAndPurpose,
        WithholdReason::NoConsent,
        WithholdReason::ConsentWithdrawn,
        WithholdReason::ConsentExpired,
        WithholdReason::ConsentNotYetValid,
        WithholdReason::ActorRequired,
        WithholdReason::NotPresent,
        WithholdReason::JustificationRequired,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WithholdReason::NotPermittedForRoleAndPurpose => "not_permitted_for_role_and_purpose",
            WithholdReason::NoConsent => "no_consent",
            WithholdReason::ConsentWithdrawn => "consent_withdrawn",
            WithholdReason::ConsentExpired => "consent_expired",
            WithholdReason::ConsentNotYetValid => "consent_not_yet_valid",
            WithholdReason::ActorRequired => "actor_required",
            WithholdReason::NotPresent => "not_present",
            WithholdReason::JustificationRequired => "justification_required",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_decimal;

    #[test]
    fn a_number_has_one_text() {
        assert_eq!(canonical_decimal("0"), Some(0));
        assert_eq!(canonical_decimal("1234"), Some(1234));
        assert_eq!(canonical_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "-0",
            "01",
            "00",
            " 1",
            "1 ",
            "1_000",
            "18446744073709551616",
            "١",
        ] {
            assert_eq!(canonical_decimal(bad), None, "{bad:?}");
        }
    }
}
