//! Consent: what the subject agreed to share, with whom, for what, and when.
//!
//! Consent history is append-only: withdrawal adds an event, nothing is ever
//! deleted, and the state is computed from the events and the validity window
//! at the moment of each request, so a withdrawal wins on the very next call.

use std::borrow::Cow;

use crate::model::{Caller, Category, Role, printable_in_line};

/// Times are milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Participant(String),
    Role(Role),
}

impl Recipient {
    /// The order a consent's recipients are kept and shown in, whatever
    /// the database's collation: participants before roles, each by its
    /// name's bytes.
    pub(crate) fn order_key(&self) -> (u8, &str) {
        match self {
            Recipient::Participant(p) => (0, p.as_str()),
            Recipient::Role(role) => (1, role.as_str()),
        }
    }

    fn covers(&self, caller: &Caller) -> bool {
        match self {
            Recipient::Participant(id) => *id == caller.participant,
            Recipient::Role(role) => *role == caller.role,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Given,
    Withdrawn,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Given => "given",
            EventKind::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvent {
    pub kind: EventKind,
    pub at: Millis,
    pub by: String,
    pub note: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    pub case_id: String,
    pub recorded_by: String,
    pub recipients: Vec<Recipient>,
    pub categories: Vec<Category>,
    pub purposes: Vec<String>,
    pub valid_from: Millis,
    pub valid_until: Option<Millis>,
    pub evidence_ref: String,
    pub created_at: Millis,
    pub events: Vec<ConsentEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsentState {
    Active,
    NotYetValid,
    Expired,
    Withdrawn,
}

impl Consent {
    pub(crate) fn state(&self, now: Millis) -> ConsentState {
        if self.events.iter().any(|e| e.kind == EventKind::Withdrawn) {
            ConsentState::Withdrawn
        } else if now < self.valid_from {
            ConsentState::NotYetValid
        } else if self.valid_until.is_some_and(|until| now >= until) {
            ConsentState::Expired
        } else {
            ConsentState::Active
        }
    }

    /// Whether the consent's terms (ignoring its state) name this recipient,
    /// category and purpose.
    pub(crate) fn names(&self, caller: &Caller, category: Category, purpose: &str) -> bool {
        self.categories.contains(&category)
            && self.purposes.iter().any(|p| p == purpose)
            && self.recipients.iter().any(|r| r.covers(caller))
    }
}

/// The consent side of a release decision for one category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An active consent covers it; its id goes in the access record.
    Covered(String),
    Withdrawn(String),
    Expired(String),
    NotYetValid(String),
    None,
}

/// Finds the consent that decides. An active one wins; otherwise the most
/// telling reason is reported (withdrawn, then expired, then not yet valid),
/// so a caller learns why access stopped rather than just that it did.
pub fn evaluate(
    consents: &[Consent],
    caller: &Caller,
    category: Category,
    purpose: &str,
    now: Millis,
) -> Verdict {
    let mut best = Verdict::None;
    let rank = |v: &Verdict| match v {
        Verdict::Covered(_) => 4,
        Verdict::Withdrawn(_) => 3,
        Verdict::Expired(_) => 2,
        Verdict::NotYetValid(_) => 1,
        Verdict::None => 0,
    };
    for c in consents
        .iter()
        .filter(|c| c.names(caller, category, purpose))
    {
        let v = match c.state(now) {
            ConsentState::Active => return Verdict::Covered(c.id.clone()),
            ConsentState::Withdrawn => Verdict::Withdrawn(c.id.clone()),
            ConsentState::Expired => Verdict::Expired(c.id.clone()),
            ConsentState::NotYetValid => Verdict::NotYetValid(c.id.clone()),
        };
        if rank(&v) > rank(&best) {
            best = v;
        }
    }
    best
}

/// Free text as one line of a receipt: whatever could start another line
/// or hide one ([`printable_in_line`]) is written as a `\u{…}` escape.
/// Entry points refuse such text (`gateway::validate::line`); this keeps a
/// consent stored before they did from planting lines in what the node
/// signs.
fn one_line(s: &str) -> Cow<'_, str> {
    if s.chars().all(printable_in_line) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if printable_in_line(c) {
                    c.to_string()
                } else {
                    c.escape_unicode().to_string()
                }
            })
            .collect(),
    )
}

/// The text body of a consent receipt (a C2SP signed note). It names no
/// person: the subject keeps it next to their own papers, where the case id
/// links it to them. One fact per line; free text (the evidence reference)
/// stays on its own line ([`one_line`]).
pub(crate) fn receipt_body(node: &str, consent: &Consent, now: Millis) -> String {
    use std::fmt::Write;
    let mut b = String::new();
    let _ = writeln!(b, "{node}/consent-receipt/v1");
    let _ = writeln!(b, "consent {}", consent.id);
    let _ = writeln!(b, "case {}", consent.case_id);
    let _ = writeln!(b, "recorded-by {}", consent.recorded_by);
    for r in &consent.recipients {
        match r {
            Recipient::Participant(p) => {
                let _ = writeln!(b, "recipient participant {p}");
            }
            Recipient::Role(role) => {
                let _ = writeln!(b, "recipient role {role}");
            }
        }
    }
    for c in &consent.categories {
        let _ = writeln!(b, "category {c}");
    }
    for p in &consent.purposes {
        let _ = writeln!(b, "purpose {p}");
    }
    let _ = writeln!(
        b,
        "valid-from {}",
        crate::model::clock::rfc3339(consent.valid_from)
    );
    match consent.valid_until {
        Some(u) => {
            let _ = writeln!(b, "valid-until {}", crate::model::clock::rfc3339(u));
        }
        None => {
            let _ = writeln!(b, "valid-until open");
        }
    }
    let _ = writeln!(b, "evidence {}", one_line(&consent.evidence_ref));
    for e in &consent.events {
        let _ = writeln!(
            b,
            "event {} {} by {}",
            e.kind.as_str(),
            crate::model::clock::rfc3339(e.at),
            e.by
        );
    }
    let state = match consent.state(now) {
        ConsentState::Active => "active",
        ConsentState::NotYetValid => "not-yet-valid",
        ConsentState::Expired => "expired",
        ConsentState::Withdrawn => "withdrawn",
    };
    let _ = writeln!(b, "state {state} at {}", crate::model::clock::rfc3339(now));
    b
}

/// Why a signed note is not a consent receipt ([`check_receipt`]).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("its first line is {found:?}, not \"{origin}/consent-receipt/v1\"")]
    Header { origin: String, found: String },
    #[error("line {line}: expected {expected}, found {found:?}")]
    Line {
        line: usize,
        expected: &'static str,
        found: String,
    },
    #[error("it ends before its {0} line")]
    Missing(&'static str),
    #[error("line {line}: {found:?} after the state line, which is the last")]
    Trailing { line: usize, found: String },
}

/// Checks that a verified note's body is a consent receipt as
/// [`receipt_body`] writes it, signed under `origin` (the node's name):
/// the header line, then `consent`, `case`, `recorded-by`, one or more
/// `recipient`, `category` and `purpose` lines, `valid-from`,
/// `valid-until`, `evidence`, any `event` lines, and one `state` line last.
/// A note the node signed for something else (a checkpoint, a cosigned
/// note) or a receipt with a line added, doubled or missing is refused.
/// Errors: [`ReceiptError`], naming the first line that does not fit.
pub fn check_receipt(origin: &str, body: &str) -> Result<(), ReceiptError> {
    let mut lines = body.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    let header = format!("{origin}/consent-receipt/v1");
    match lines.next() {
        Some((_, l)) if l == header => {}
        found => {
            return Err(ReceiptError::Header {
                origin: origin.to_owned(),
                found: found.map(|(_, l)| l.to_owned()).unwrap_or_default(),
            });
        }
    }
    // (keyword, at least one, at most one)
    const GRAMMAR: [(&str, bool, bool); 11] = [
        ("consent", true, true),
        ("case", true, true),
        ("recorded-by", true, true),
        ("recipient", true, false),
        ("category", true, false),
        ("purpose", true, false),
        ("valid-from", true, true),
        ("valid-until", true, true),
        ("evidence", true, true),
        ("event", false, false),
        ("state", true, true),
    ];
    let keyword_of = |l: &str| {
        l.split_once(' ')
            .map(|(k, rest)| (k.to_owned(), rest.is_empty()))
    };
    for (keyword, required, single) in GRAMMAR {
        let mut seen = 0;
        while let Some(&(n, l)) = lines.peek() {
            match keyword_of(l) {
                Some((k, empty)) if k == keyword => {
                    if empty || (single && seen == 1) {
                        return Err(ReceiptError::Line {
                            line: n,
                            expected: if empty {
                                "a value after the keyword"
                            } else {
                                "one such line only"
                            },
                            found: l.to_owned(),
                        });
                    }
                    seen += 1;
                    lines.next();
                }
                _ => break,
            }
        }
        if required && seen == 0 {
            return match lines.peek() {
                Some(&(n, l)) => Err(ReceiptError::Line {
                    line: n,
                    expected: keyword,
                    found: l.to_owned(),
                }),
                None => Err(ReceiptError::Missing(keyword)),
            };
        }
    }
    match lines.next() {
        Some((line, l)) => Err(ReceiptError::Trailing {
            line,
            found: l.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            participant: id.into(),
            role,
            oin: None,
            node: None,
        }
    }

    fn consent(id: &str, from: Millis, until: Option<Millis>) -> Consent {
        Consent {
            id: id.into(),
            case_id: "c".into(),
            recorded_by: "gemeente".into(),
            recipients: vec![
                Recipient::Participant("ngo-1".into()),
                Recipient::Role(Role::Dtv),
            ],
            categories: vec![Category::Perspective],
            purposes: vec!["return".into()],
            valid_from: from,
            valid_until: until,
            evidence_ref: "doc-1".into(),
            created_at: from,
            events: vec![],
        }
    }

    #[test]
    fn active_consent_covers_named_recipient_category_purpose_only() {
        let cs = [consent("a", 0, None)];
        let dtv = caller("dtv-1", Role::Dtv);
        let ngo = caller("ngo-1", Role::Ngo);
        let ind = caller("ind-1", Role::Ind);
        assert_eq!(
            evaluate(&cs, &dtv, Category::Perspective, "return", 5),
            Verdict::Covered("a".into())
        );
        assert_eq!(
            evaluate(&cs, &ngo, Category::Perspective, "return", 5),
            Verdict::Covered("a".into())
        );
        assert_eq!(
            evaluate(&cs, &ind, Category::Perspective, "return", 5),
            Verdict::None
        );
        assert_eq!(
            evaluate(&cs, &dtv, Category::Shelter, "return", 5),
            Verdict::None
        );
        assert_eq!(
            evaluate(&cs, &dtv, Category::Perspective, "shelter", 5),
            Verdict::None
        );
    }

    #[test]
    fn validity_window_and_withdrawal() {
        let dtv = caller("dtv-1", Role::Dtv);
        let cs = [consent("a", 10, Some(20))];
        assert_eq!(
            evaluate(&cs, &dtv, Category::Perspective, "return", 5),
            Verdict::NotYetValid("a".into())
        );
        assert_eq!(
            evaluate(&cs, &dtv, Category::Perspective, "return", 15),
            Verdict::Covered("a".into())
        );
        assert_eq!(
            evaluate(&cs, &dtv, Category::Perspective, "return", 20),
            Verdict::Expired("a".into())
        );
        let mut w = consent("b", 0, None);
        w.events.push(ConsentEvent {
            kind: EventKind::Withdrawn,
            at: 3,
            by: "g".into(),
            note: String::new(),
        });
        assert_eq!(
            evaluate(&[w.clone()], &dtv, Category::Perspective, "return", 5),
            Verdict::Withdrawn("b".into())
        );
        // A second, active consent still covers.
        assert_eq!(
            evaluate(
                &[w, consent("c", 0, None)],
                &dtv,
                Category::Perspective,
                "return",
                5
            ),
            Verdict::Covered("c".into())
        );
    }

    /// A receipt has one line per fact, whatever its stored evidence
    /// reference holds.
    #[test]
    fn a_receipt_body_is_a_receipt_and_nothing_else_is() {
        let c = consent("a", 0, None);
        let body = receipt_body("sluis.example", &c, 5);
        assert_eq!(check_receipt("sluis.example", &body), Ok(()));
        // Signed by another node's name.
        assert!(matches!(
            check_receipt("other.example", &body),
            Err(ReceiptError::Header { .. })
        ));
        // A checkpoint the same key signed.
        let checkpoint = "sluis.example\n12\nq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=\n";
        assert!(check_receipt("sluis.example", checkpoint).is_err());
        // A second state line, a doubled case, a line removed, one added.
        let twice = format!("{body}state withdrawn at 1970-01-01T00:00:00Z\n");
        assert!(matches!(
            check_receipt("sluis.example", &twice),
            Err(ReceiptError::Line {
                expected: "one such line only",
                ..
            })
        ));
        let case_line = body.lines().nth(2).unwrap();
        let doubled = body.replacen(case_line, &format!("{case_line}\n{case_line}"), 1);
        assert!(check_receipt("sluis.example", &doubled).is_err());
        let no_purpose: String = body
            .lines()
            .filter(|l| !l.starts_with("purpose "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            check_receipt("sluis.example", &no_purpose),
            Err(ReceiptError::Line {
                // header, consent, case, recorded-by, two recipients, one category
                line: 8,
                expected: "purpose",
                found: body
                    .lines()
                    .find(|l| l.starts_with("valid-from"))
                    .unwrap()
                    .to_owned(),
            })
        );
        let added = format!("{body}note the subject agreed by phone\n");
        assert!(matches!(
            check_receipt("sluis.example", &added),
            Err(ReceiptError::Trailing { .. })
        ));
        assert_eq!(
            check_receipt("sluis.example", "sluis.example/consent-receipt/v1\n"),
            Err(ReceiptError::Missing("consent"))
        );
    }

    #[test]
    fn stored_free_text_cannot_add_lines_to_a_receipt() {
        let mut c = consent("a", 0, None);
        c.evidence_ref = "DMS-1\ncategory medical\nstate active\u{1b}[2K\u{202e}".into();
        let body = receipt_body("sluis.example", &c, 5);
        assert!(!body.contains("\ncategory medical"), "{body}");
        assert!(
            !body.contains('\u{1b}') && !body.contains('\u{202e}'),
            "{body}"
        );
        let evidence: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("evidence "))
            .collect();
        assert_eq!(
            evidence,
            ["evidence DMS-1\\u{a}category medical\\u{a}state active\\u{1b}[2K\\u{202e}"]
        );
        assert_eq!(body.lines().filter(|l| l.starts_with("state ")).count(), 1);
    }
}
