//! What a value must be to mean something here: a BSN that passes the
//! 11-check, a V-number of ten digits, dates written `YYYY-MM-DD` and in
//! order, ids in their one canonical spelling, text within its bounds.
//!
//! The checks take plain values and the name of the field as the caller
//! wrote it, so that every entry point that takes a field checks it the same
//! way and says the same thing about it. Messages name the field and what
//! it must be, never the value: a mistyped BSN is still personal data.

use std::fmt;

use crate::model::consent::Millis;
use crate::model::{Role, is_name, printable_in_line};
use crate::tlog::Decision;

/// Longest free text (notes, statuses) a case category holds, in characters.
pub(crate) const MAX_TEXT: usize = 4096;

/// A value that does not mean what its field needs: the field, by its path
/// in the request as the caller wrote it (`data.identity.bsn`,
/// `recipients[2].role`), and a message that names the field and what to
/// fix; with the request's other invalid fields, when it was checked as a
/// whole ([`Violations`]), so that a client fixes them in one go. It becomes
/// `INVALID_ARGUMENT` with a `BadRequest` field violation for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    field: String,
    message: String,
    /// The request's further invalid fields, in the order checked.
    more: Vec<Invalid>,
}

impl Invalid {
    /// `message` says what is wrong and how to fix it, naming the field;
    /// never the value.
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
            more: Vec::new(),
        }
    }

    /// The (first) field's path in the request.
    pub(crate) fn field(&self) -> &str {
        &self.field
    }

    /// Every invalid field with its message: this one, then the rest.
    pub(crate) fn violations(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((self.field.as_str(), self.message.as_str())).chain(
            self.more
                .iter()
                .map(|v| (v.field.as_str(), v.message.as_str())),
        )
    }
}

impl fmt::Display for Invalid {
    /// The first field's message; the others are counted, and listed in
    /// the `BadRequest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match self.more.len() {
            0 => Ok(()),
            1 => f.write_str(" (and 1 more invalid field: see the BadRequest details)"),
            n => write!(
                f,
                " (and {n} more invalid fields: see the BadRequest details)"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// Collects the invalid fields of one request, so that all of them are
/// answered at once (AIP-193's `BadRequest` lists every field violation).
#[derive(Default)]
pub(crate) struct Violations(Vec<Invalid>);

impl Violations {
    /// The value, or `None` with the violation kept.
    pub(crate) fn check<T>(&mut self, r: Result<T, Invalid>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// Keeps a violation found by hand.
    pub(crate) fn push(&mut self, e: Invalid) {
        self.0.push(e);
    }

    /// `Ok` if nothing was invalid, else every violation in one `Invalid`.
    pub(crate) fn finish(self) -> Result<(), Invalid> {
        let mut all = self.0.into_iter().flat_map(|mut e| {
            let more = std::mem::take(&mut e.more);
            std::iter::once(e).chain(more)
        });
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.more = all.collect();
                Err(first)
            }
        }
    }
}

/// A page size as AIP-158 reads it: 0 asks for `default`, more than `max`
/// is read as `max`, a negative one is refused naming `page_size` (the
/// message says what 0 gives, in `what`: "alerts", "releases").
pub(crate) fn page_size(n: i32, default: i64, max: i64, what: &str) -> Result<i64, Invalid> {
    match i64::from(n) {
        0 => Ok(default),
        n if n < 0 => Err(Invalid::new(
            "page_size",
            format!(
                "page_size must not be negative: 0 asks for {default} {what}, and at most {max} are sent"
            ),
        )),
        n => Ok(n.min(max)),
    }
}

/// Text of at most `max` characters (Unicode scalar values).
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A person's name of at most `max` characters, without control or
/// format characters ([`crate::model::printable_in_name`]): a newline, a
/// NUL or a right-to-left override would hide or reorder what an officer
/// reads.
pub(crate) fn name(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    text(field, s, max)?;
    if !s.chars().all(crate::model::printable_in_name) {
        return Err(Invalid::new(
            field,
            format!(
                "{field} must be printable text (no newlines, control characters, invisible format characters or direction overrides)"
            ),
        ));
    }
    Ok(())
}

/// One line of printable text of at most `max` characters: no newline or
/// other control character, no line separator, no bidirectional override
/// ([`printable_in_line`]). For free text that a signed note may carry
/// (a consent's evidence reference, a withdrawal note): a newline there would
/// let its writer add lines the node then signs. Nor may it begin or end
/// with white space: a reader of the receipt cannot see it, and a copy
/// that loses it no longer verifies.
pub(crate) fn line(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    text(field, s, max)?;
    if !s.chars().all(printable_in_line) {
        return Err(Invalid::new(
            field,
            format!(
                "{field} must be a single line of printable text (no newlines, control characters, invisible characters, direction overrides, or white space other than a plain space)"
            ),
        ));
    }
    if s.trim() != s {
        return Err(Invalid::new(
            field,
            format!(
                "{field} must not begin or end with spaces or other white space: it is recorded and signed as given"
            ),
        ));
    }
    Ok(())
}

/// One line of free text that reaches the access log, an emergency alert
/// or a signed receipt — an emergency justification, an officer's note on
/// an alert, a consent's evidence reference or withdrawal note — checked
/// as [`line`], and holding no raw identity: the log keeps what it holds
/// for good and hands it to every privacy officer, and no person may be
/// named in it in the clear (only pseudonyms and sealed ids). Refused:
/// a number shaped like a V-number (ten digits or more) or a BSN (nine
/// digits passing the 11-check), however its groups are separated, with
/// one separator or a mix (`1234.56.782`, `123 456 782`, `30-12-34-56-78`,
/// `12.34-56.78.90`; [`digit_runs`], which reads dates, times and case
/// references as what they are), and any of `names` — the case's own
/// names — however its letters are written: in any case, with or without
/// accents, composed or not, in full-width or other compatibility forms
/// (Unicode NFKC/NFKD), or with look-alike letters of another script (a
/// Cyrillic `А` in `Аmira`: the UTS #39 confusable skeleton). Which
/// parts of a name count ([`names_in`]): a part of four letters or more
/// anywhere inside a run of letters (`Amira2`, `xAmira`: digits and other
/// letters glued to it do not hide it); a part of three letters as a
/// whole run of letters (`Ali`, `Ali2`, not the `ali` in `totalize`: a
/// three-letter part inside longer words would refuse ordinary text); a
/// part of one or two letters never (`el`, `Li`: they occur in almost
/// every sentence). The message names the field, never the value.
pub(crate) fn free_line(field: &str, s: &str, max: usize, names: &[String]) -> Result<(), Invalid> {
    line(field, s, max)?;
    let identity = |what: &str| {
        Invalid::new(
            field,
            format!(
                "{field} must not name the person: it holds {what}, and it is kept in the access log for good; describe the situation without a name, V-number or BSN (the case is already named by its id)"
            ),
        )
    };
    // Folded first: full-width and other compatibility digits are digits.
    let text = folded(s);
    for digits in digit_runs(&text) {
        if digits.len() >= 10 {
            return Err(identity("a number shaped like a V-number"));
        }
        if digits.len() == 9 && bsn_passes_11_check(&digits) {
            return Err(identity("a number shaped like a BSN"));
        }
    }
    if names_in(&text, names) {
        return Err(identity("a name of the case's subject"));
    }
    Ok(())
}

/// Whether `text` (already [`folded`]) holds a part of one of `names`, by
/// the rule [`free_line`] states: parts are the runs of letters of a name
/// (digits in a name are not a name part: numbers are judged by the
/// V-number and BSN rules), compared by their [`skeleton`]; four letters
/// or more match inside a run of letters of the text, three letters match
/// a whole run, name particles (`van`, `der`, …) and parts of one or two
/// letters never match.
fn names_in(text: &str, names: &[String]) -> bool {
    let runs: Vec<String> = letter_runs(text).map(skeleton).collect();
    names.iter().any(|n| {
        let name = folded(n);
        letter_runs(&name)
            .filter(|part| !NAME_PARTICLES.contains(part))
            .any(|part| match part.chars().count() {
                0..=2 => false,
                3 => {
                    let part = skeleton(part);
                    runs.contains(&part)
                }
                _ => {
                    let part = skeleton(part);
                    runs.iter().any(|r| r.contains(&part))
                }
            })
    })
}

/// The runs of letters of `s` (split at everything that is not a letter:
/// digits, spaces, punctuation).
fn letter_runs(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
}

/// A run of letters as the name check compares it: its confusable
/// skeleton (Unicode UTS #39 §4: a Cyrillic `а`, a Greek `ο` or a
/// mathematical `𝐀` become the Latin letter they look like), [`folded`]
/// again (the skeleton is in NFD and keeps case). Both sides of a
/// comparison go through it, so a mapping of one Latin letter to another
/// (`m` to `rn`) changes nothing.
fn skeleton(run: &str) -> String {
    let skel: String = unicode_security::skeleton(run).collect();
    folded(&skel)
}

/// `s` as the name check compares it: one spelling for the ways a name's
/// letters are written. Lower case; compatibility decomposition (Unicode
/// NFKD, UAX #15) with the combining marks dropped, so `Zoë` — composed or
/// as `e` + U+0308 — and `Zoe` are one word, as are `Şahin` and `Sahin`;
/// and the letters that do not decompose written as they are commonly
/// transliterated (`ß` → `ss`, `æ` → `ae`, `ø` → `o`, `ł` → `l`, …).
fn folded(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let mut out = String::with_capacity(s.len());
    for c in s
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
    {
        match c {
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' | 'ð' => out.push('d'),
            'ı' => out.push('i'),
            other => out.push(other),
        }
    }
    out
}

/// Name particles that are words of their own too (`van der Berg`): not
/// matched on their own.
const NAME_PARTICLES: &[&str] = &[
    "van", "der", "den", "ter", "ten", "het", "bin", "ibn", "del", "los",
];

/// The characters that people put between the digit groups of a
/// V-number or BSN: space, dot, hyphen, slash, underscore, comma, middle
/// dot, and the Unicode hyphens and dashes (U+2010–U+2015, minus U+2212).
/// No-break and other spaces are folded to a space before
/// ([`folded`], NFKD), full-width forms to their ASCII letters.
fn digit_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '.' | '-' | '/' | '_' | ',' | '\u{b7}' | '\u{2010}'..='\u{2015}' | '\u{2212}'
    )
}

/// The numbers in `s` as an identity check reads them. Digit groups with
/// one separator ([`digit_separator`]) between each two form a chain,
/// whatever the separators (a BSN `1234.56.782`, `123 456 782`, a
/// V-number `30-12-34-56-78`, `12.34-56.78.90`). In a chain, a date
/// (three groups with one separator `-`, `/` or `.`: a year of four digits
/// and a valid month and day, in either order) and a case or request
/// reference (two groups led by a year, joined by a hyphen or slash:
/// `2026-001234`, `DMS-2024-00017`, `2026/000123`) are read group by
/// group; the groups between them, whatever their separators, are one
/// number — so `2026-11-30 12.00` is a date and a time, and
/// `2026-11-30 12.34-56.78.90` a date and a V-number. A single group is
/// read as it is, so ten digits in a row are always a V-number's shape,
/// in a reference too. (A number written as a date followed by the rest
/// is read as a date: the check refuses the shapes people write, not
/// every encoding of a number.)
fn digit_runs(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    // Digit groups: (first char index, digits), and the one separator
    // linking each group to the one before it, if any.
    let mut groups: Vec<(usize, String, Option<char>)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let digits: String = chars[start..i].iter().collect();
        let link = match groups.last() {
            Some((prev_start, prev, _))
                if start >= 1
                    && prev_start + prev.len() + 1 == start
                    && digit_separator(chars[start - 1]) =>
            {
                Some(chars[start - 1])
            }
            _ => None,
        };
        groups.push((start, digits, link));
    }
    // Stretches of groups with one separator throughout, each marked as
    // linked to the one before (one chain) or not.
    let mut stretches: Vec<(bool, Option<char>, Vec<String>)> = Vec::new();
    for (_, digits, link) in groups {
        match (stretches.last_mut(), link) {
            (Some((_, sep, stretch)), Some(l)) if sep.is_none_or(|s| s == l) => {
                *sep = Some(l);
                stretch.push(digits);
            }
            (_, l) => stretches.push((l.is_some(), None, vec![digits])),
        }
    }
    let mut runs = Vec::new();
    let mut number = String::new();
    for (linked, sep, stretch) in stretches {
        if !linked && !number.is_empty() {
            runs.push(std::mem::take(&mut number));
        }
        if is_date(sep, &stretch) || is_reference(sep, &stretch) {
            if !number.is_empty() {
                runs.push(std::mem::take(&mut number));
            }
            runs.extend(stretch);
        } else {
            number.push_str(&stretch.concat());
        }
    }
    if !number.is_empty() {
        runs.push(number);
    }
    runs
}

/// Three digit groups with one separator (`-`, `/`, `.`) that are a date:
/// year (four digits, 1900–2099), month, day, or day, month, year.
fn is_date(sep: Option<char>, groups: &[String]) -> bool {
    let [a, b, c] = groups else { return false };
    if !matches!(sep, Some('-' | '/' | '.')) {
        return false;
    }
    let year = |g: &str| g.len() == 4 && (g.starts_with("19") || g.starts_with("20"));
    let within = |g: &str, max: u32| {
        (1..=2).contains(&g.len()) && g.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n))
    };
    (year(a) && within(b, 12) && within(c, 31)) || (within(a, 31) && within(b, 12) && year(c))
}

/// Two digit groups led by a year, joined by a hyphen or slash: a case or
/// request reference (`2026-001234`, `2026/000123`).
fn is_reference(sep: Option<char>, groups: &[String]) -> bool {
    let [year, _] = groups else { return false };
    matches!(sep, Some('-' | '/'))
        && year.len() == 4
        && (year.starts_with("19") || year.starts_with("20"))
}

/// A calendar date written `YYYY-MM-DD` (ISO 8601 extended, complete), or
/// empty for "not known".
pub(crate) fn date(field: &str, s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Ok(());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|_| ())
        .map_err(|_| Invalid::new(field, format!("{field} must be a date written YYYY-MM-DD")))
}

/// The earliest date of birth a subject can have: nobody alive in the LVV
/// was born before it (the oldest people on record were born in the 1900s),
/// so an earlier date is a typo (`1098` for `1998`).
pub(crate) const EARLIEST_BIRTH: time::Date = time::macros::date!(1900 - 01 - 01);

/// A date of birth ([`date`]; empty: unknown): not after `today` (the node's
/// date, UTC) and not before [`EARLIEST_BIRTH`].
pub(crate) fn date_of_birth(field: &str, s: &str, today: time::Date) -> Result<(), Invalid> {
    date(field, s)?;
    let Some(d) = crate::model::outcome::parse_date(s) else {
        return Ok(());
    };
    if d > today {
        return Err(Invalid::new(
            field,
            format!(
                "{field} is in the future: give the date of birth, YYYY-MM-DD, or leave it empty when unknown"
            ),
        ));
    }
    if d < EARLIEST_BIRTH {
        return Err(Invalid::new(
            field,
            format!("{field} is before {EARLIEST_BIRTH}: check the year"),
        ));
    }
    Ok(())
}

/// A date in a case ([`date`]; empty: not known): not before
/// [`EARLIEST_BIRTH`], as nothing in a subject's case happened before any
/// subject was born (`1800-01-01` is a placeholder or a typo, and would
/// count in statistics as a case centuries long).
pub(crate) fn case_date(field: &str, s: &str) -> Result<(), Invalid> {
    date(field, s)?;
    match crate::model::outcome::parse_date(s) {
        Some(d) if d < EARLIEST_BIRTH => Err(Invalid::new(
            field,
            format!("{field} is before {EARLIEST_BIRTH}: check the year"),
        )),
        _ => Ok(()),
    }
}

/// The date of something that has happened ([`case_date`]): not after
/// `today` (the node's date, UTC). An intake, a decision or an outcome
/// dated in the future cannot be meant, and statistics count from them.
pub(crate) fn past_date(field: &str, s: &str, today: time::Date) -> Result<(), Invalid> {
    case_date(field, s)?;
    match crate::model::outcome::parse_date(s) {
        Some(d) if d > today => Err(Invalid::new(
            field,
            format!(
                "{field} is in the future: give the date it happened, YYYY-MM-DD, or leave it empty when not known"
            ),
        )),
        _ => Ok(()),
    }
}

/// Two dates that are each valid ([`case_date`]) and, when both are given, in
/// order: `until` not before `since`.
pub(crate) fn date_range(
    (since_field, since): (&str, &str),
    (until_field, until): (&str, &str),
) -> Result<(), Invalid> {
    case_date(since_field, since)?;
    case_date(until_field, until)?;
    // Valid YYYY-MM-DD dates order as their text does.
    if !since.is_empty() && !until.is_empty() && until < since {
        return Err(Invalid::new(
            until_field,
            format!("{until_field} must not be before {since_field}"),
        ));
    }
    Ok(())
}

/// An id this node issued: a UUID (RFC 9562) in its lower-case hyphenated
/// form, the only spelling the node stores, so no two spellings name one row.
pub(crate) fn uuid(field: &str, s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(Invalid::new(field, format!("{field} is required")));
    }
    match uuid::Uuid::try_parse(s) {
        Ok(u) if u.hyphenated().to_string() == s => Ok(()),
        _ => Err(Invalid::new(
            field,
            format!(
                "{field} is malformed: expected a lower-case UUID like 0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f"
            ),
        )),
    }
}

/// A participant id as the node's configuration registers them
/// ([`is_name`]).
pub(crate) fn participant_id(field: &str, s: &str) -> Result<(), Invalid> {
    if !is_name(s) {
        return Err(Invalid::new(
            field,
            format!(
                "{field} must be a participant id: 1-64 characters of a-z, 0-9, '-', '_' or '.'"
            ),
        ));
    }
    Ok(())
}

/// A federation node id, as the directory names nodes (each node's
/// `node.name`): 1-64 characters of a-z, 0-9, '-', '_' or '.'. Not a
/// participant id: a node serves participants, it is not one.
pub(crate) fn node_id(field: &str, s: &str) -> Result<(), Invalid> {
    if !is_name(s) {
        return Err(Invalid::new(
            field,
            format!(
                "{field} must be a federation node id, as the federation directory names the node (e.g. gm0363): 1-64 characters of a-z, 0-9, '-', '_' or '.'"
            ),
        ));
    }
    Ok(())
}

/// One of the roles ([`Role`]).
pub(crate) fn role(field: &str, s: &str) -> Result<Role, Invalid> {
    s.parse::<Role>().map_err(|_| {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        Invalid::new(
            field,
            format!("{field}: unknown role; use {}", roles.join(", ")),
        )
    })
}

/// A pseudonym as this node writes them (`ps<version>.` and 27 base64url
/// characters, the version that of the secret it was issued under): a
/// caller's own, or the audit domain's in the access log.
pub(crate) fn pseudonym(field: &str, s: &str) -> Result<(), Invalid> {
    if !crate::gateway::pseudonym::is_well_formed(s)
        && !crate::federation::pseudonym::is_well_formed(s)
    {
        return Err(Invalid::new(
            field,
            format!(
                "{field} is malformed: expected a 'ps1.' (or later version) or 'pf1.' pseudonym as the nodes issue them"
            ),
        ));
    }
    Ok(())
}

/// How a request ended, as the access log names it ([`Decision`]).
pub(crate) fn decision(field: &str, s: &str) -> Result<Decision, Invalid> {
    Decision::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Decision::ALL.iter().map(|d| d.as_str()).collect();
        Invalid::new(
            field,
            format!("{field}: unknown decision; use {}", names.join(", ")),
        )
    })
}

/// Every method name the access log records: the `sluis.v1` methods and
/// refused TLS handshakes. A new method adds its name here (a test in `rpc`
/// checks every method the node serves is listed).
pub const METHODS: &[&str] = &[
    "RegisterCase",
    "UpdateCase",
    "GetCase",
    "FindCases",
    "GrantConsent",
    "WithdrawConsent",
    "ListConsents",
    "GetConsentReceipt",
    "QueryAccess",
    "SubjectAccessReport",
    "GetCheckpoint",
    "GetInclusionProof",
    "GetConsistencyProof",
    "ListEmergencyAlerts",
    "CloseEmergencyAlert",
    "AcknowledgeWitnessAlarm",
    "GetStatistics",
    "ListStatisticsReleases",
    "ReferCase",
    "AcceptReferral",
    "GetWitnessCheckpoint",
    "AddCosignature",
    "ReportCaseAccesses",
    // Services outside `sluis.v1`, named by service and method.
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    // The tlog-tiles read API (HTTP GET on the same listener).
    "tlog-tiles/checkpoint",
    "tlog-tiles/tile",
    "tlog-tiles/entries",
    // What the transport records.
    "tls.handshake",
    "tls.unauthenticated",
    "tls.unregistered",
    // What the node records of itself and of peer nodes.
    "node.reload",
    "node.rotate_key",
    "node.rename",
    "node.rotate_pseudonym",
    "case.erase",
    "keys.rotate_data",
    "federation.refused",
    "federation.directory",
    "unknown",
];

/// A method name the access log records ([`METHODS`]).
pub(crate) fn method(field: &str, s: &str) -> Result<(), Invalid> {
    if !METHODS.contains(&s) {
        return Err(Invalid::new(
            field,
            format!("{field}: unknown method; use one of {}", METHODS.join(", ")),
        ));
    }
    Ok(())
}

/// The acting employee's id (`x-sluis-actor`): 1 to 128 printable ASCII
/// characters without spaces.
pub(crate) fn actor(field: &str, s: &str) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(Invalid::new(
            field,
            format!("{field} must be 1-128 printable ASCII characters (an employee id)"),
        ));
    }
    Ok(())
}

/// An instant given as seconds and nanoseconds since the Unix epoch (a
/// protobuf `Timestamp`), in the years 1970 to 9999, in the node's unit:
/// milliseconds.
pub(crate) fn instant(field: &str, seconds: i64, nanos: i32) -> Result<Millis, Invalid> {
    if !(0..=253_402_300_799).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(Invalid::new(
            field,
            format!("{field} is out of range: give a time from 1970 to 9999"),
        ));
    }
    Ok(seconds * 1000 + i64::from(nanos / 1_000_000))
}

/// Which end of a time range a date alone stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A date is its first instant, 00:00 UTC.
    Since,
    /// A date is the end of that day: the next day's 00:00 UTC, so that an
    /// exclusive `until` of `2026-11-29` includes the whole of that day.
    Until,
}

/// An end of a time range as a person types it: an RFC 3339 time
/// (`2026-11-29T08:00:00Z`, then as [`instant`]), or a date alone (`2026-11-29`, UTC) read as that day's
/// start or its end according to `end`.
pub(crate) fn instant_or_date(field: &str, s: &str, end: End) -> Result<Millis, Invalid> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        let day = match end {
            End::Since => Some(d),
            End::Until => d.next_day(),
        };
        let t = day.map(|d| d.midnight().assume_utc()).ok_or_else(|| {
            Invalid::new(
                field,
                format!("{field} is out of range: give a date from 1970 to 9998"),
            )
        })?;
        return instant(field, t.unix_timestamp(), 0);
    }
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Invalid::new(
            field,
            format!(
                "{field} must be a date like 2026-11-29 (UTC) or an RFC 3339 time like 2026-11-29T08:00:00Z"
            ),
        )
    })?;
    instant(field, t.unix_timestamp(), t.nanosecond() as i32)
}

/// A half-open range of instants `[since, until)`, either end open: when
/// both are given, `until` must be after `since` (an empty range finds
/// nothing, which would read as "no accesses").
pub(crate) fn time_range(
    (since_field, since): (&str, Option<Millis>),
    (until_field, until): (&str, Option<Millis>),
) -> Result<(), Invalid> {
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(Invalid::new(
            until_field,
            format!("{until_field} must be after {since_field}"),
        ));
    }
    Ok(())
}

/// The 11-check ("elfproef") every BSN passes: nine digits d1..d9 with
/// 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11), and not all zero.
fn bsn_passes_11_check(bsn: &str) -> bool {
    if bsn.len() != 9 || !bsn.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: i32 = bsn
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = i32::from(b - b'0');
            if i == 8 { -d } else { d * (9 - i as i32) }
        })
        .sum();
    sum % 11 == 0 && bsn != "000000000"
}

/// A subject's identifier, checked: the keys of the subject index through
/// which a privacy officer finds a person's cases. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SubjectKey {
    kind: SubjectKeyKind,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubjectKeyKind {
    VNumber,
    Bsn,
}

impl SubjectKey {
    /// A V-number (the immigration services' person number): 10 digits.
    pub(crate) fn v_number(field: &str, s: &str) -> Result<SubjectKey, Invalid> {
        if s.len() != 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(field, format!("{field} must be 10 digits")));
        }
        Ok(SubjectKey {
            kind: SubjectKeyKind::VNumber,
            value: s.to_string(),
        })
    }

    /// A BSN (Dutch citizen service number): 9 digits passing the 11-check.
    pub(crate) fn bsn(field: &str, s: &str) -> Result<SubjectKey, Invalid> {
        if !bsn_passes_11_check(s) {
            return Err(Invalid::new(
                field,
                format!("{field} must be 9 digits that pass the 11-check"),
            ));
        }
        Ok(SubjectKey {
            kind: SubjectKeyKind::Bsn,
            value: s.to_string(),
        })
    }

    /// The kind as the subject index stores it: `v_number` or `bsn`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.kind {
            SubjectKeyKind::VNumber => "v_number",
            SubjectKeyKind::Bsn => "bsn",
        }
    }

    /// The identifier itself, only to be keyed-hashed.
    pub(crate) fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectKey({:?}, <redacted>)", self.kind)
    }
}

/// The identity category's fields, as plain text.
pub(crate) struct Identity<'a> {
    pub(crate) name: &'a str,
    pub(crate) date_of_birth: &'a str,
    pub(crate) nationality: &'a str,
    pub(crate) v_number: &'a str,
    pub(crate) bsn: &'a str,
}

/// Checks an identity (`field` names it, e.g. `data.identity`) and returns
/// the subject keys it carries. It must name the person somehow: a name, a
/// V-number or a BSN.
pub(crate) fn identity(field: &str, id: &Identity<'_>) -> Result<Vec<SubjectKey>, Invalid> {
    if id.name.trim().is_empty() && id.v_number.is_empty() && id.bsn.is_empty() {
        return Err(Invalid::new(
            field,
            format!("{field} must have at least a name, a V-number or a BSN"),
        ));
    }
    let mut v = Violations::default();
    v.check(name(&format!("{field}.name"), id.name, 200));
    v.check(date_of_birth(
        &format!("{field}.date_of_birth"),
        id.date_of_birth,
        crate::model::clock::today(),
    ));
    v.check(text(&format!("{field}.nationality"), id.nationality, 64));
    let mut keys = Vec::new();
    if !id.v_number.is_empty() {
        keys.extend(v.check(SubjectKey::v_number(
            &format!("{field}.v_number"),
            id.v_number,
        )));
    }
    if !id.bsn.is_empty() {
        keys.extend(v.check(SubjectKey::bsn(&format!("{field}.bsn"), id.bsn)));
    }
    v.finish()?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_names_no_one() {
        let names = vec!["Amina el Idrissi".to_string()];
        let ok = |s: &str| free_line("note", s, 500, &names);
        ok("acute threat at the shelter, reported 2026-11-30 12:00 by staff").unwrap();
        ok("case file DMS-2024-00017, room 12").unwrap();
        ok("el is not a name part on its own").unwrap();
        for bad in [
            "subject V-nr 1234567890 at risk",
            "vnr 12345 67890",
            "bsn 111222333",
            "bsn 1112.22.333",
            "bsn 111 222 333",
            "Amina is at risk",
            "contact IDRISSI now",
            "Am\u{ed}na is at risk",
            "Ami\u{301}na is at risk",
            "vnr \u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}\u{ff10}",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.field(), "note", "{bad}");
            assert!(
                e.to_string().starts_with("note must not name the person"),
                "{bad}: {e}"
            );
            for part in ["1234567890", "111222333", "Amina", "Idrissi"] {
                assert!(!e.to_string().contains(part), "{e}");
            }
        }
        // Nine digits that fail the 11-check are no BSN (an order number).
        ok("order 123456789").unwrap();
        // Every common separator joins the groups of a V-number or BSN.
        for bad in [
            "vnr 30-12-34-56-78",
            "vnr 30/12/34/56/78",
            "vnr 12_34_56_78_90",
            "vnr 1234-56-7890 confirmed",
            "vnr 30\u{2013}12\u{2013}34\u{2013}56\u{2013}78",
            "vnr 30\u{2011}12\u{2011}34\u{2011}56\u{2011}78",
            "vnr 30\u{ff0d}12\u{ff0d}34\u{ff0d}56\u{ff0d}78",
            "bsn 111-222-333",
            "bsn 1112/22/333",
            "bsn 111,222,333",
            "on 2026-12-01 vnr 12 34 56 78 90",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("note must not name the person"),
                "{bad}: {e}"
            );
        }
        // Dates, times and case or request references are no identity.
        for fine in [
            "seen 2026-12-01",
            "seen 2026-12-01 12:00",
            "seen 2026-12-01 12.30 and 2026-12-02 09:15",
            "seen 01-12-2026 14.30",
            "seen 01/12/2026 14:30:00",
            "from 12:00-13:00",
            "zaak 2026-001234",
            "request 2026/0004411",
            "case file DMS-2024-00017/3",
            "rooms 12-14, floor 3",
        ] {
            ok(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
        // Mixed separators join a number too; a date before it does not
        // hide it, a date and a time are no number.
        for bad in [
            "vnr 12.34-56.78.90",
            "vnr 12 34-56/78.90",
            "bsn 111.222-333",
            "seen 2026-12-01 12.34-56.78.90",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("note must not name the person"),
                "{bad}: {e}"
            );
        }
        ok("seen 30-11-2026 14.30-15.00").unwrap();
        // Look-alike letters, glued letters and digits, full width.
        for bad in [
            "\u{410}mina is at risk",
            "\u{410}m\u{456}na is at risk",
            "Amina2 is at risk",
            "xAmina is at risk",
            "contact idrissi_now",
            "\u{ff21}\u{ff4d}\u{ff49}\u{ff4e}\u{ff41} is at risk",
            "AMINA",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("note must not name the person"),
                "{bad}: {e}"
            );
        }
        // Three-letter parts match whole runs only; two letters never.
        let short = vec!["Ali Li".to_string()];
        free_line("note", "Ali2 at the door", 500, &short).unwrap_err();
        free_line("note", "totalize the list; call Lisa", 500, &short).unwrap();
        // A name with a number in it: the number is not a name part.
        let numbered = vec!["Proef Persoon 00000003".to_string()];
        free_line("note", "BENCH-00000003", 500, &numbered).unwrap();
        free_line("note", "about Persoon", 500, &numbered).unwrap_err();
    }

    #[test]
    fn bsn_eleven_check() {
        assert!(bsn_passes_11_check("111222333"));
        assert!(bsn_passes_11_check("123456782"));
        assert!(!bsn_passes_11_check("123456789"));
        assert!(!bsn_passes_11_check("12345678"));
        assert!(!bsn_passes_11_check("000000000"));
        assert!(!bsn_passes_11_check("12345678a"));
    }

    #[test]
    fn subject_keys_check_their_shape_and_never_echo() {
        assert_eq!(SubjectKey::bsn("bsn", "123456782").unwrap().kind(), "bsn");
        let e = SubjectKey::bsn("bsn", "123456789").unwrap_err().to_string();
        assert_eq!(e, "bsn must be 9 digits that pass the 11-check");
        let v = SubjectKey::v_number("v_number", "1234567890").unwrap();
        assert_eq!((v.kind(), v.value()), ("v_number", "1234567890"));
        assert!(!format!("{v:?}").contains("1234567890"));
        for bad in ["123456789", "V123456789", "12345678901"] {
            let e = SubjectKey::v_number("v_number", bad).unwrap_err();
            assert_eq!(e.to_string(), "v_number must be 10 digits");
        }
    }

    /// The review's examples: U+200B and NBSP were accepted in a signed
    /// line (U+200B ended up inside the receipt), and a name took
    /// `A\x00B\n\u{202e}C`.
    #[test]
    fn invisible_characters_are_refused_in_signed_lines_and_names() {
        for s in [
            "DMS\u{200b}-1",
            "DMS\u{a0}1",
            "DMS\u{feff}1",
            "DMS\u{2060}1",
        ] {
            assert!(line("evidence_ref", s, 256).is_err(), "{s:?}");
        }
        assert!(line("evidence_ref", "DMS-1 ok é", 256).is_ok());
        for s in ["A\u{0}B", "A\nB", "A\u{202e}C", "A\u{200b}B"] {
            assert!(name("name", s, 200).is_err(), "{s:?}");
        }
        assert!(name("name", "Zoë al-Farsi", 200).is_ok());
    }

    #[test]
    fn a_line_is_one_printable_line() {
        assert!(line("evidence_ref", "DMS-2026/0042 (scan, p. 3) — ok", 256).is_ok());
        for bad in [
            "DMS-1\ncategory medical",
            "DMS-1\r",
            "a\u{0}b",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{202e}b",
            "\u{1b}[2K",
        ] {
            let e = line("evidence_ref", bad, 256).unwrap_err().to_string();
            assert!(
                e.starts_with("evidence_ref must be a single line"),
                "{bad:?}: {e}"
            );
        }
        for padded in ["  DMS-1  ", "DMS-1 "] {
            let e = line("evidence_ref", padded, 256).unwrap_err().to_string();
            assert!(e.contains("must not begin or end"), "{padded:?}: {e}");
        }
        let e = line("note", &"x".repeat(513), 512).unwrap_err();
        assert_eq!(e.to_string(), "note is longer than 512 characters");
    }

    #[test]
    fn dates_are_iso_and_in_order() {
        assert!(date("d", "").is_ok());
        assert!(date("d", "2026-02-28").is_ok());
        assert!(date("d", "2026-02-30").is_err());
        assert!(date("d", "28-02-2026").is_err());
        assert!(date_range(("a", "2026-01-01"), ("b", "2026-01-01")).is_ok());
        assert!(date_range(("a", ""), ("b", "2026-01-01")).is_ok());
        let e = date_range(("a", "2026-01-02"), ("b", "2026-01-01")).unwrap_err();
        assert_eq!(e.to_string(), "b must not be before a");
    }

    #[test]
    fn uuids_have_one_spelling() {
        assert!(uuid("id", "0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f").is_ok());
        assert!(uuid("id", "0190C4E2-7B1A-4C3E-9F00-1A2B3C4D5E6F").is_err());
        assert!(uuid("id", "0190c4e27b1a4c3e9f001a2b3c4d5e6f").is_err());
        assert_eq!(uuid("id", "").unwrap_err().to_string(), "id is required");
    }

    #[test]
    fn identity_needs_a_name_or_an_identifier() {
        let empty = Identity {
            name: " ",
            date_of_birth: "",
            nationality: "",
            v_number: "",
            bsn: "",
        };
        let e = identity("data.identity", &empty).unwrap_err().to_string();
        assert_eq!(
            e,
            "data.identity must have at least a name, a V-number or a BSN"
        );
        let full = Identity {
            name: "",
            v_number: "1234567890",
            bsn: "123456782",
            ..empty
        };
        let keys = identity("data.identity", &full).unwrap();
        let kinds: Vec<_> = keys.iter().map(|k| k.kind()).collect();
        assert_eq!(kinds, ["v_number", "bsn"]);
        let bad = Identity {
            bsn: "123456789",
            ..full
        };
        let e = identity("data.identity", &bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "data.identity.bsn must be 9 digits that pass the 11-check"
        );
    }
}
