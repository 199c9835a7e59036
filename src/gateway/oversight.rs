//! What privacy officers (and, through them, the migrant) get out of the
//! access log: queries, the subject access report (GDPR art. 15), signed
//! checkpoints, and inclusion and consistency proofs anyone can check
//! offline.
//!
//! The proofs themselves are the log's ([`crate::tlog::proof`]); the report
//! is made here from stored records and the node's registry. The methods on
//! [`Exchange`] add the role check and an access record of their own; the
//! `sluis audit` commands call the report and proofs directly on a node's
//! database.

use std::fmt::Write as _;

use crate::gateway::network_report::{self, AskPart};
use crate::gateway::pseudonym::Pseudonymiser;
use crate::gateway::referral::Asking;
use crate::gateway::validate::{self, SubjectKey};
use crate::gateway::{Exchange, ExchangeError, RequestCtx, Resource};
use crate::model::{Category, Role};
use crate::net::identity::Registry;
use crate::store::{CaseMeta, LogFilter, LogPage, LogRow, Store, StoreError, StoredCheckpoint};
use crate::tlog::proof::{self, ConsistencyProof, InclusionProof, LeafRef, ProofError};
use crate::tlog::{
    AccessRecord, BasisKind, CategoryBasis, Decision, RecordView, Recorded, Review, Verdict,
};

/// Why a subject access report could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error("entry {index} does not decode; run `sluis audit verify`")]
    Undecodable { index: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One line of a subject access report: the access as the log holds it,
/// the organisation's name from the node's registry, and the line in
/// words.
#[derive(Clone, Debug)]
pub(crate) struct ReportEntry {
    pub(crate) index: i64,
    pub(crate) access: Access,
    /// The entry in plain words, in the report's language.
    pub(crate) summary: String,
    /// The node whose log holds the entry (its directory id, or the node's
    /// name outside a federation).
    pub(crate) node: String,
    /// The entry's request id: a forwarded call's or a referral's records
    /// on two nodes share it.
    pub(crate) request_id: String,
    /// The case the entry is of, when it names one.
    pub(crate) case_id: Option<String>,
    /// The record's canonical encoding: the leaf its proof proves (empty
    /// where the line was not read from the log, e.g. an older node's
    /// answer).
    pub(crate) leaf: Vec<u8>,
    /// Its inclusion proof against its node's checkpoint (in the report's
    /// [`ReportNode`]), when one covers it.
    pub(crate) proof: Option<EntryProof>,
}

/// An entry's RFC 6962 §2.1.1 inclusion proof: its audit path in the tree
/// of `tree_size`, leaf side first.
#[derive(Clone, Debug)]
pub(crate) struct EntryProof {
    pub(crate) tree_size: u64,
    pub(crate) hashes: Vec<crate::tlog::merkle::Hash>,
}

/// A node a report covers: the checkpoint its lines are proven against and
/// the key it is signed with, or why its part is missing.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReportNode {
    pub(crate) node: String,
    /// The signed checkpoint note ("" when none covers its lines).
    pub(crate) checkpoint: String,
    /// Its verifier key (C2SP signed-note): the directory's `log-key`.
    pub(crate) verifier_key: String,
    pub(crate) answered: bool,
    /// Why its part is missing ("" when answered).
    pub(crate) missing_reason: String,
    /// The verifier keys of the node's witnesses, as the directory lists
    /// them, and how many must have cosigned `checkpoint`.
    pub(crate) quorum: crate::federation::witness::Quorum,
    /// The key names whose cosignatures on `checkpoint` verify.
    pub(crate) witnesses: Vec<String>,
    /// Whether they reach the quorum (and the directory lists witnesses).
    pub(crate) witnessed: bool,
    /// Who cosigned, or why the checkpoint is not confirmed by witnesses
    /// ("" outside a federation).
    pub(crate) witness_note: String,
    /// Why lines of this node may be missing although it answered: a
    /// witness alarm this node keeps about it, or a checkpoint older than
    /// (or inconsistent with) one this node's witness cosigned for it, in
    /// words; "" when none. The report is then incomplete.
    pub(crate) log_warning: String,
    /// Whether the reporting node has evidence its log went back or forked
    /// (a witness alarm, or a checkpoint behind or beside one its witness
    /// cosigned): then the cosignatures on `checkpoint` confirm nothing,
    /// and [`Self::check_witnesses`] says so instead of counting them.
    pub(crate) witness_alarm: bool,
}

impl ReportNode {
    /// Checks the cosignatures on the node's `checkpoint` against the
    /// witness keys of its `quorum` and sets `witnesses`, `witnessed` and
    /// `witness_note` from what verifies, so the node making the report
    /// and a client checking it ([`crate::cli`]) conclude the same from the
    /// same note. The log's own signature is checked by the caller.
    /// Errors: a cosignature line by a listed witness that does not verify
    /// (forged or altered).
    pub(crate) fn check_witnesses(
        &mut self,
    ) -> Result<(), crate::tlog::cosignature::CosignatureError> {
        let q = &self.quorum;
        self.witnesses = if self.checkpoint.is_empty() {
            vec![]
        } else {
            crate::federation::witness::cosigners_in(&self.checkpoint, &q.witness_keys)?
        };
        let have = self.witnesses.len();
        let size = crate::tlog::note::split(&self.checkpoint)
            .ok()
            .and_then(|(body, _)| crate::tlog::checkpoint::Checkpoint::parse(body).ok())
            .map(|c| c.size);
        let by = if self.witnesses.is_empty() {
            "no witness".to_string()
        } else {
            self.witnesses.join(", ")
        };
        (self.witnessed, self.witness_note) = if q.witness_keys.is_empty() {
            (
                false,
                "the federation directory lists no witnesses for this node's log, so no peer confirms its checkpoint".into(),
            )
        } else if size.is_none() {
            (false, "no signed checkpoint covers its lines yet".into())
        } else if have >= q.required as usize {
            (
                q.required > 0,
                format!(
                    "checkpoint of size {} cosigned by {by} ({} of {} required)",
                    size.unwrap_or_default(),
                    have,
                    q.required
                ),
            )
        } else {
            (
                false,
                format!(
                    "checkpoint of size {} cosigned by {by}: {} of {} witnesses' cosignatures required (its witnesses have not yet cosigned a checkpoint that covers these lines)",
                    size.unwrap_or_default(),
                    have,
                    q.required
                ),
            )
        };
        if self.witness_alarm {
            // Cosignatures given before the log went back or forked vouch
            // for a log that is not the one answering now.
            self.witnessed = false;
            self.witness_note = format!(
                "UNDER A WITNESS ALARM: its log went back or forked, so the cosignatures on its checkpoint (by {by}) confirm nothing; lines from it may be missing"
            );
            return Ok(());
        }
        if q.required == 0 && !q.witness_keys.is_empty() {
            self.witness_note = format!(
                "{}; cosignatures are not required (report_cosignatures = 0)",
                self.witness_note
            );
        }
        Ok(())
    }

    /// A node whose part is missing, and why.
    pub(crate) fn missing(node: &str, why: String) -> ReportNode {
        ReportNode {
            node: node.to_string(),
            missing_reason: why,
            ..ReportNode::default()
        }
    }
}

/// What a report line says about one access: the fields of its record a
/// subject can read, with the caller's organisation by name. Built on the
/// node from the record, and by a remote officer's tools from the
/// `ReportEntry` message, so both word it the same ([`describe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Access {
    /// When, in ms since the epoch (UTC).
    pub(crate) at: i64,
    /// The caller's participant id ("-": not registered).
    pub(crate) participant: String,
    /// The organisation's name from the node's registry (the participant
    /// id when the node does not know it).
    pub(crate) organisation: String,
    /// The caller's role as the log names it (`ngo`, `privacy_officer`, "-").
    pub(crate) role: String,
    pub(crate) method: String,
    pub(crate) purpose: Option<String>,
    pub(crate) released: Vec<Category>,
    pub(crate) withheld: Vec<(Category, String)>,
    pub(crate) decision: Decision,
    /// Per released category, why (record version 5 on).
    pub(crate) bases: Vec<CategoryBasis>,
    /// An officer's review of an emergency access, on that review's line.
    pub(crate) review: Option<Review>,
    /// The log position of the access that review is about, so the line
    /// names it (#N); `None` when not known.
    pub(crate) reviewed: Option<i64>,
    /// On an erasure's line: the categories it erased (the record's
    /// `asked`), so the subject reads what is gone, not only that
    /// something is.
    pub(crate) erased: Vec<Category>,
    /// The federation node the call came from (record version 6): the
    /// node that forwarded the participant's call, or a node calling as
    /// itself (then `participant` too).
    pub(crate) from_node: Option<String>,
    /// The federation node this node forwarded the call to (the line of a
    /// forwarding record), so the caller's home node's line says where the
    /// call went.
    pub(crate) forwarded_to: Option<String>,
}

impl Access {
    pub(crate) fn of(record: &AccessRecord, registry: &Registry) -> Access {
        Access {
            at: record.at,
            participant: record.caller.clone(),
            organisation: registry
                .participant(&record.caller)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| record.caller.clone()),
            role: shown_role(&record.caller, &record.role).to_string(),
            method: record.method.clone(),
            purpose: record.purpose.clone(),
            released: record.released.clone(),
            withheld: record.withheld.clone(),
            decision: record.decision,
            bases: record.bases.clone(),
            review: record.review.clone(),
            reviewed: None,
            erased: if record.method == crate::gateway::retention::ERASE_METHOD
                && matches!(record.decision, Decision::Allowed)
            {
                record.asked.clone()
            } else {
                Vec::new()
            },
            from_node: record.from_node.clone(),
            forwarded_to: crate::gateway::forwarded::forwarded_to(&record.detail)
                .map(str::to_string),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SubjectReport {
    pub(crate) case_ids: Vec<String>,
    pub(crate) entries: Vec<ReportEntry>,
    /// The whole report, printable.
    pub(crate) text: String,
    /// Every node the report covers, this one first; those whose part is
    /// missing say why.
    pub(crate) nodes: Vec<ReportNode>,
    /// How far this node's index of the log by case had caught up when the
    /// report was read (the lowest over its reads): entries from there on
    /// were found in the log itself, so the report is complete either way.
    pub(crate) indexed_upto: Option<i64>,
}

impl SubjectReport {
    /// Whether every node that served the cases answered.
    pub(crate) fn complete(&self) -> bool {
        complete(&self.nodes)
    }

    /// Whether every node that answered proved its lines against a
    /// checkpoint cosigned by the quorum of its witnesses (never outside a
    /// federation: no witnesses).
    pub(crate) fn witnessed(&self) -> bool {
        witnessed(&self.nodes)
    }
}

/// [`SubjectReport::complete`] of a report's nodes: each answered, none
/// whose log may have lost lines.
pub(crate) fn complete(nodes: &[ReportNode]) -> bool {
    nodes.iter().all(|n| n.answered && n.log_warning.is_empty())
}

/// [`SubjectReport::witnessed`] of a report's nodes.
pub(crate) fn witnessed(nodes: &[ReportNode]) -> bool {
    nodes.iter().any(|n| n.answered) && nodes.iter().filter(|n| n.answered).all(|n| n.witnessed)
}

/// The language of a report's words: the migrant may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    /// English.
    #[default]
    En,
    /// Dutch.
    Nl,
}

impl Lang {
    /// `en` or `nl` (ISO 639-1), as the command line and the console take it.
    pub(crate) fn parse(field: &str, s: &str) -> Result<Lang, validate::Invalid> {
        match s {
            "en" => Ok(Lang::En),
            "nl" => Ok(Lang::Nl),
            _ => Err(validate::Invalid::new(
                field,
                format!("{field} must be nl (Nederlands) or en (English)"),
            )),
        }
    }

    fn pick(self, en: &'static str, nl: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Nl => nl,
        }
    }
}

/// A category in plain words.
pub(crate) fn category_words(c: Category, lang: Lang) -> &'static str {
    let (en, nl) = match c {
        Category::Identity => (
            "identity (name, date of birth, nationality, V-number, BSN)",
            "identiteit (naam, geboortedatum, nationaliteit, V-nummer, BSN)",
        ),
        Category::ResidenceProcedure => ("residence procedure", "verblijfsprocedure"),
        Category::Shelter => ("shelter", "opvang"),
        Category::Guidance => ("guidance", "begeleiding"),
        Category::Perspective => ("perspective", "toekomstperspectief"),
        Category::Medical => ("medical information", "medische gegevens"),
        Category::Safety => ("safety information", "veiligheidsinformatie"),
        Category::Outcome => ("outcome", "uitkomst"),
    };
    lang.pick(en, nl)
}

/// Why a category was withheld, in plain words (the log's reason code
/// when it is one this binary does not know).
pub(crate) fn reason_words(r: &str, lang: Lang) -> &str {
    let (en, nl) = match r {
        "not_permitted_for_role_and_purpose" => (
            "not permitted for this organisation and purpose",
            "niet toegestaan voor deze organisatie en dit doel",
        ),
        "no_consent" => ("you had not consented", "u had geen toestemming gegeven"),
        "consent_withdrawn" => (
            "you had withdrawn your consent",
            "u had uw toestemming ingetrokken",
        ),
        "consent_expired" => ("your consent had expired", "uw toestemming was verlopen"),
        "consent_not_yet_valid" => (
            "your consent was not valid yet",
            "uw toestemming gold nog niet",
        ),
        "actor_required" => (
            "the employee was not named",
            "de medewerker was niet genoemd",
        ),
        "not_present" => (
            "no such information was recorded",
            "zulke gegevens waren niet vastgelegd",
        ),
        "justification_required" => (
            "only an emergency allows it, and no emergency was stated",
            "alleen een noodgeval staat het toe, en er was geen noodgeval opgegeven",
        ),
        other => return other,
    };
    lang.pick(en, nl)
}

/// The role an officer's view shows for a record's caller: the record's
/// role; for a record without one (`-`), [`NODE_ROLE`] when it names a
/// caller (the node's own steps: `node.reload`, rotations, erasures,
/// federation records carry the node's name and no role), else `-` (a
/// caller that is not registered).
pub(crate) fn shown_role<'a>(caller: &str, role: &'a str) -> &'a str {
    let none = |s: &str| s.is_empty() || s == "-";
    match (none(role), none(caller)) {
        (true, true) => "-",
        (true, false) => NODE_ROLE,
        (false, _) => role,
    }
}

/// What [`shown_role`] calls the node itself: no participant role is
/// spelled so.
pub(crate) const NODE_ROLE: &str = "node";

/// The role a record gives a peer federation node calling as itself
/// (witnessing, asking for a subject access report's lines; record
/// version 6, with its id in `from_node` and `caller`): no participant
/// role is spelled so.
pub(crate) const PEER_NODE_ROLE: &str = "peer_node";

/// A role in plain words ("-": not registered; [`NODE_ROLE`]: the node
/// itself).
pub(crate) fn role_words(role: &str, lang: Lang) -> &str {
    let (en, nl) = match role {
        "municipality" => ("municipality", "gemeente"),
        "ind" => ("immigration service", "immigratiedienst"),
        "dtv" => ("return service", "terugkeerdienst"),
        "avim" => ("aliens police", "vreemdelingenpolitie"),
        "ngo" => ("civil-society organisation", "maatschappelijke organisatie"),
        "monitor" => ("national monitor", "landelijke monitor"),
        "privacy_officer" => ("privacy officer", "functionaris gegevensbescherming"),
        "-" => ("not registered", "niet geregistreerd"),
        NODE_ROLE => ("this node itself", "dit knooppunt zelf"),
        PEER_NODE_ROLE => ("federation node", "knooppunt van de federatie"),
        other => return other,
    };
    lang.pick(en, nl)
}

/// A purpose in plain words; one the node's policy names but this binary
/// does not know is written with spaces for its underscores.
pub(crate) fn purpose_words(p: &str, lang: Lang) -> String {
    let (en, nl) = match p {
        "case_consultation" => ("case consultation", "casusoverleg"),
        "return" => ("return", "terugkeer"),
        "onward_migration" => ("onward migration", "doormigratie"),
        "legalisation" => ("legalisation of stay", "legalisering van verblijf"),
        "shelter" => ("shelter", "opvang"),
        "monitoring" => ("monitoring", "monitoring"),
        other => return other.replace('_', " "),
    };
    lang.pick(en, nl).to_string()
}

/// What a method did, in plain words, about "you" (the subject).
pub(crate) fn method_words(m: &str, lang: Lang) -> &str {
    let (en, nl) = match m {
        "RegisterCase" => ("registered your case", "heeft uw dossier geregistreerd"),
        "UpdateCase" => ("updated your case", "heeft uw dossier bijgewerkt"),
        "GetCase" => ("asked to see your case", "vroeg om uw dossier in te zien"),
        "FindCases" => (
            "listed cases, yours among them",
            "heeft dossiers opgesomd, het uwe erbij",
        ),
        "QueryAccess" | "tlog-tiles/entries" => (
            "read entries of this access log about you",
            "las regels van dit toegangslogboek over u",
        ),
        "GetInclusionProof" => (
            "proved an entry about you is in this access log",
            "bewees dat een regel over u in dit toegangslogboek staat",
        ),
        "GrantConsent" => ("recorded your consent", "legde uw toestemming vast"),
        "WithdrawConsent" => (
            "recorded the withdrawal of your consent",
            "legde de intrekking van uw toestemming vast",
        ),
        "ListConsents" => ("looked at your consents", "bekeek uw toestemmingen"),
        "GetConsentReceipt" => (
            "made a receipt of your consent",
            "maakte een bewijs van uw toestemming",
        ),
        "SubjectAccessReport" => (
            "made this kind of report about you",
            "maakte een overzicht als dit over u",
        ),
        "ReferCase" => (
            "referred your case to another municipality's node",
            "droeg uw dossier over aan het knooppunt van een andere gemeente",
        ),
        // Recorded on the receiving node with the referring owner as the
        // caller: the line names who handed the case over.
        "AcceptReferral" => (
            "handed your case over to this municipality's node",
            "droeg uw dossier over aan het knooppunt van deze gemeente",
        ),
        // Recorded on a node that served the case, with the node that
        // made a report of it as the caller.
        "ReportCaseAccesses" => (
            "gave its part of a report like this about you to another node",
            "gaf zijn deel van een overzicht als dit over u aan een ander knooppunt",
        ),
        "ListEmergencyAlerts" => (
            "looked at the emergency accesses to your data awaiting review",
            "bekeek de noodtoegangen tot uw gegevens die op beoordeling wachten",
        ),
        "CloseEmergencyAlert" => (
            "reviewed an emergency access to your data",
            "beoordeelde een noodtoegang tot uw gegevens",
        ),
        "case.erase" => (
            "erased data of your case because its retention period ended",
            "wiste gegevens van uw dossier omdat de bewaartermijn voorbij was",
        ),
        other => return other,
    };
    lang.pick(en, nl)
}

/// A category and why it was shared, in plain words: `shelter (emergency
/// rule avim-emergency-safety: "…")`.
pub(crate) fn basis_line(b: &CategoryBasis, lang: Lang) -> String {
    let words = basis_words(b, lang);
    match b.kind {
        BasisKind::Emergency => format!(
            "{} ({words}: \"{}\")",
            category_words(b.category, lang),
            b.text
        ),
        _ => format!("{} ({words})", category_words(b.category, lang)),
    }
}

/// On what ground a category was shared, in plain words.
fn basis_words(b: &CategoryBasis, lang: Lang) -> String {
    match (b.kind, lang) {
        (BasisKind::Consent, Lang::En) => format!("your consent {}", b.text),
        (BasisKind::Consent, Lang::Nl) => format!("uw toestemming {}", b.text),
        (BasisKind::LegalBasis, Lang::En) => format!("legal basis: {}", b.text),
        (BasisKind::LegalBasis, Lang::Nl) => format!("wettelijke grondslag: {}", b.text),
        (BasisKind::Emergency, Lang::En) => format!("emergency rule {}", b.rules.join(", ")),
        (BasisKind::Emergency, Lang::Nl) => format!("noodregel {}", b.rules.join(", ")),
    }
}

/// A privacy officer's verdict on an emergency access, in plain words.
pub(crate) fn verdict_words(v: Verdict, lang: Lang) -> &'static str {
    match v {
        Verdict::Justified => lang.pick("justified", "gerechtvaardigd"),
        Verdict::NotJustified => lang.pick("not justified", "niet gerechtvaardigd"),
    }
}

/// How a request ended, in plain words.
pub(crate) fn decision_words(d: Decision, lang: Lang) -> &'static str {
    let (en, nl) = match d {
        Decision::Allowed => ("allowed", "toegestaan"),
        Decision::Partial => ("partly allowed", "deels toegestaan"),
        Decision::Denied => ("refused: not permitted", "geweigerd: niet toegestaan"),
        Decision::Invalid => ("refused: invalid request", "geweigerd: ongeldig verzoek"),
        Decision::NotFound => ("refused: not found", "geweigerd: niet gevonden"),
        Decision::HandshakeFailed => (
            "refused: the connection was not accepted",
            "geweigerd: de verbinding werd niet aanvaard",
        ),
        Decision::Error => (
            "failed: the node could not answer, nothing was shared",
            "mislukt: het knooppunt kon niet antwoorden, er is niets gedeeld",
        ),
    };
    lang.pick(en, nl)
}

/// ", through node X" for a call a peer node forwarded for a participant;
/// nothing for a node calling as itself (its role says so) or for the
/// node's own participants.
pub(crate) fn via_node(from_node: Option<&str>, caller: &str, lang: Lang) -> String {
    match from_node {
        Some(n) if n != caller => match lang {
            Lang::En => format!(", through node {n}"),
            Lang::Nl => format!(", via knooppunt {n}"),
        },
        _ => String::new(),
    }
}

/// ", forwarded to node X" on the line of a call this node forwarded.
fn forwarded_words(forwarded_to: Option<&str>, lang: Lang) -> String {
    match (forwarded_to, lang) {
        (Some(n), Lang::En) => format!(", forwarded to node {n}"),
        (Some(n), Lang::Nl) => format!(", doorgestuurd naar knooppunt {n}"),
        (None, _) => String::new(),
    }
}

/// One access in plain words.
pub(crate) fn describe(a: &Access, lang: Lang) -> String {
    let mut s = format!(
        "{} ({}{}) {}{}",
        a.organisation,
        role_words(&a.role, lang),
        via_node(a.from_node.as_deref(), &a.participant, lang),
        method_words(&a.method, lang),
        forwarded_words(a.forwarded_to.as_deref(), lang)
    );
    if let Some(p) = &a.purpose {
        let _ = match lang {
            Lang::En => write!(s, " for the purpose \"{}\"", purpose_words(p, lang)),
            Lang::Nl => write!(s, " met als doel \"{}\"", purpose_words(p, lang)),
        };
    }
    s.push('.');
    if a.method == "GetCase"
        && matches!(
            a.decision,
            Decision::Allowed | Decision::Partial | Decision::Denied
        )
    {
        if a.released.is_empty() {
            s.push_str(lang.pick(" Nothing was shared.", " Er is niets gedeeld."));
        } else {
            let shared: Vec<&str> = a
                .released
                .iter()
                .map(|c| category_words(*c, lang))
                .collect();
            let _ = write!(
                s,
                " {} {}.",
                lang.pick("Shared:", "Gedeeld:"),
                shared.join(", ")
            );
        }
        // Why each category was shared; an emergency access plainly first.
        if let Some(e) = a.bases.iter().find(|b| b.kind == BasisKind::Emergency) {
            let _ = write!(
                s,
                " {} \"{}\".",
                lang.pick(
                    "EMERGENCY ACCESS, without your consent; justification:",
                    "NOODTOEGANG, zonder uw toestemming; rechtvaardiging:"
                ),
                e.text
            );
        }
        if !a.bases.is_empty() {
            let why: Vec<String> = a
                .bases
                .iter()
                .map(|b| {
                    format!(
                        "{} ({})",
                        category_words(b.category, lang),
                        basis_words(b, lang)
                    )
                })
                .collect();
            let _ = write!(
                s,
                " {} {}.",
                lang.pick("Basis:", "Grondslag:"),
                why.join("; ")
            );
        }
        if !a.withheld.is_empty() {
            let held: Vec<String> = a
                .withheld
                .iter()
                .map(|(c, r)| format!("{} ({})", category_words(*c, lang), reason_words(r, lang)))
                .collect();
            let _ = write!(
                s,
                " {} {}.",
                lang.pick("Not shared:", "Niet gedeeld:"),
                held.join("; ")
            );
        }
    } else if !a.erased.is_empty() {
        let erased: Vec<&str> = a.erased.iter().map(|c| category_words(*c, lang)).collect();
        let _ = write!(
            s,
            " {} {}.",
            lang.pick("Erased:", "Gewist:"),
            erased.join(", ")
        );
    } else if let Some(r) = &a.review {
        if let Some(i) = a.reviewed {
            let _ = write!(
                s,
                " {} #{i}.",
                lang.pick("The access reviewed:", "De beoordeelde toegang:")
            );
        }
        let _ = write!(
            s,
            " {} {}: \"{}\".",
            lang.pick("Verdict:", "Oordeel:"),
            verdict_words(r.verdict, lang),
            r.note
        );
    } else if !matches!(a.decision, Decision::Allowed | Decision::Partial) {
        let _ = write!(
            s,
            " {}{}.",
            lang.pick("It was ", "Dit werd "),
            decision_words(a.decision, lang)
        );
    }
    s
}

/// The printable report: a heading, one line per access with its time
/// (fixed-width UTC) and log position, and how to have a line proven.
pub(crate) fn report_text(
    node_name: &str,
    case_ids: &[String],
    entries: &[ReportEntry],
    nodes: &[ReportNode],
    lang: Lang,
) -> String {
    let mut text = String::new();
    let now = crate::model::clock::rfc3339_ms(crate::model::clock::now_millis());
    let _ = match lang {
        Lang::En => write!(
            text,
            "Who saw my data — access report (GDPR art. 15)\nNode: {node_name}\nMade: {now}\nCases: {}\nEntries: {}\n",
            case_ids.join(", "),
            entries.len()
        ),
        Lang::Nl => write!(
            text,
            "Wie zag mijn gegevens — inzageoverzicht (AVG art. 15)\nKnooppunt: {node_name}\nGemaakt: {now}\nDossiers: {}\nRegels: {}\n",
            case_ids.join(", "),
            entries.len()
        ),
    };
    // Across a federation: the nodes whose logs the lines come from, and
    // any that did not answer — said in the heading, never left out.
    let covered: Vec<&str> = nodes
        .iter()
        .filter(|n| n.answered)
        .map(|n| n.node.as_str())
        .collect();
    if covered.len() > 1 {
        let _ = writeln!(
            text,
            "{} {}",
            lang.pick("Nodes:", "Knooppunten:"),
            covered.join(", ")
        );
    }
    for n in nodes.iter().filter(|n| !n.answered) {
        let _ = match lang {
            Lang::En => writeln!(
                text,
                "INCOMPLETE: the accesses recorded on node {} are missing from this report: {}",
                n.node, n.missing_reason
            ),
            Lang::Nl => writeln!(
                text,
                "ONVOLLEDIG: de toegangen die knooppunt {} vastlegde ontbreken in dit overzicht: {}",
                n.node, n.missing_reason
            ),
        };
    }
    // A node that answered, but whose log went back or forked: its lines
    // may be missing, and the officer is told so first.
    for n in nodes.iter().filter(|n| !n.log_warning.is_empty()) {
        let _ = match lang {
            Lang::En => writeln!(text, "INCOMPLETE: {}", n.log_warning),
            Lang::Nl => writeln!(
                text,
                "ONVOLLEDIG: knooppunt {} staat onder een getuigenalarm of gaf een ouder logboek dan eerder gezien; regels ervan kunnen ontbreken: {}",
                n.node, n.log_warning
            ),
        };
    }
    // Across a federation: whether each node's checkpoint is confirmed by
    // its witnesses (C2SP tlog-cosignature), the unconfirmed named.
    for n in nodes
        .iter()
        .filter(|n| n.answered && !n.witness_note.is_empty())
    {
        let _ = match (lang, n.witnessed) {
            (Lang::En, true) => writeln!(text, "Witnessed: node {}: {}", n.node, n.witness_note),
            (Lang::En, false) => writeln!(
                text,
                "NOT CONFIRMED BY WITNESSES: node {}: {}",
                n.node, n.witness_note
            ),
            (Lang::Nl, true) => writeln!(
                text,
                "Bevestigd door getuigen: knooppunt {}: {}",
                n.node, n.witness_note
            ),
            (Lang::Nl, false) => writeln!(
                text,
                "NIET BEVESTIGD DOOR GETUIGEN: knooppunt {}: {}",
                n.node, n.witness_note
            ),
        };
    }
    text.push('\n');
    for e in entries {
        let _ = writeln!(
            text,
            "{}  {} #{}  {}",
            crate::model::clock::rfc3339_ms(e.access.at),
            e.node,
            e.index,
            e.summary
        );
    }
    let _ = writeln!(
        text,
        "\n{}",
        lang.pick(
            "Every entry is in the tamper-evident access log of the node it names; #N is its position, \
for which that node proves inclusion against its signed checkpoint.",
            "Elke regel staat in het onvervalsbare toegangslogboek van het knooppunt dat ze noemt; #N is de \
positie, waarvoor dat knooppunt bewijst dat de regel is opgenomen onder zijn ondertekende controlepunt."
        )
    );
    text
}

/// A report's entries and text in another language (the node words its
/// answer in English; the officer's tools reword it for the migrant).
pub(crate) fn reworded(report: SubjectReport, node_name: &str, lang: Lang) -> SubjectReport {
    let entries: Vec<ReportEntry> = report
        .entries
        .into_iter()
        .map(|e| ReportEntry {
            summary: describe(&e.access, lang),
            ..e
        })
        .collect();
    SubjectReport {
        text: report_text(node_name, &report.case_ids, &entries, &report.nodes, lang),
        case_ids: report.case_ids,
        entries,
        nodes: report.nodes,
        indexed_upto: report.indexed_upto,
    }
}

/// A case a report covers: its id and its subject's pseudonym in the audit
/// domain, under which the log names the subject.
#[derive(Clone, Debug)]
pub(crate) struct ReportedCase {
    pub(crate) case_id: String,
    pub(crate) subject: String,
}

impl ReportedCase {
    /// The case as a report covers it; `secret` is the node's pseudonym key.
    pub(crate) fn of(case: &CaseMeta, secret: &[u8; 32]) -> ReportedCase {
        ReportedCase {
            case_id: case.id.clone(),
            subject: Pseudonymiser::new(secret).audit_pseudonym(&case.subject_ref),
        }
    }
}

/// A case this node no longer holds (referred to another node) as a
/// report covers it: its audit pseudonym as the node's own entries of the
/// case name it, so the accesses made here stay reportable (GDPR art. 15)
/// after the data left. `None` when no entry of the log names the case.
pub(crate) async fn reported_from_log(
    store: &Store,
    case_id: &str,
) -> Result<Option<ReportedCase>, crate::store::StoreError> {
    let rows = store.subject_log(case_id, "", 0, 100).await?.rows;
    Ok(rows
        .into_iter()
        .filter(|r| r.case_id.as_deref() == Some(case_id))
        .find_map(|r| r.subject)
        .map(|subject| ReportedCase {
            case_id: case_id.to_string(),
            subject,
        }))
}

/// Every access to the cases of one subject, in order, with the report
/// text: each entry of a case, and each entry that names its subject among
/// others (a listing that returned it, an officer's read of the log).
pub(crate) async fn subject_report(
    store: &Store,
    registry: &Registry,
    node_name: &str,
    cases: &[ReportedCase],
) -> Result<SubjectReport, ReportError> {
    let mut entries = Vec::new();
    let mut indexed_upto: Option<i64> = None;
    for case in cases {
        let mut start = 0;
        loop {
            let page = store
                .subject_log(&case.case_id, &case.subject, start, 1000)
                .await?;
            if let Some(upto) = page.indexed_upto {
                indexed_upto = Some(indexed_upto.map_or(upto, |u| u.min(upto)));
            }
            let rows = page.rows;
            let Some(last) = rows.last() else { break };
            start = last.seq + 1;
            for row in rows {
                entries.push(report_entry(row, registry, node_name)?);
            }
        }
    }
    entries.sort_by_key(|e| e.index);
    entries.dedup_by_key(|e| e.index);
    // A review's line names the access it reviews by its position.
    for e in &mut entries {
        if let Some(r) = &e.access.review {
            e.access.reviewed = store.log_position(&r.access_record_id).await?;
            e.summary = describe(&e.access, Lang::En);
        }
    }
    let case_ids: Vec<String> = cases.iter().map(|c| c.case_id.clone()).collect();
    let nodes = vec![ReportNode {
        node: node_name.to_string(),
        answered: true,
        ..ReportNode::default()
    }];
    let text = report_text(node_name, &case_ids, &entries, &nodes, Lang::En);
    Ok(SubjectReport {
        case_ids,
        entries,
        text,
        nodes,
        indexed_upto,
    })
}

fn report_entry(row: LogRow, registry: &Registry, node: &str) -> Result<ReportEntry, ReportError> {
    let record =
        AccessRecord::decode(&row.record).ok_or(ReportError::Undecodable { index: row.seq })?;
    let access = Access::of(&record, registry);
    Ok(ReportEntry {
        index: row.seq,
        summary: describe(&access, Lang::En),
        access,
        node: node.to_string(),
        request_id: record.request_id,
        case_id: record.case_id,
        leaf: row.record,
        proof: None,
    })
}

/// Whose access report is asked for. A V-number or BSN is checked as on
/// registration ([`SubjectKey`]) after the caller is known to be an officer.
pub(crate) enum SubjectRef {
    CaseId(String),
    VNumber(String),
    Bsn(String),
}

/// Most entries one query returns; the caller resumes from the last index.
const MAX_QUERY: i64 = 10_000;
/// Most subjects one `QueryAccess` record names (beyond those of its first
/// entry): a bound on the record's size.
pub(super) const MAX_NAMED: usize = 10_000;

impl Exchange {
    pub(super) fn officer<'a>(
        &self,
        ctx: &'a RequestCtx,
    ) -> Result<&'a crate::model::Caller, ExchangeError> {
        let caller = self.caller(ctx)?;
        if caller.role != Role::PrivacyOfficer {
            return Err(ExchangeError::Forbidden(
                "only a privacy officer (role privacy_officer) may read this node's access log"
                    .into(),
            ));
        }
        Ok(caller)
    }

    /// The cases registered for a subject, through the keyed index.
    /// The subject's cases held here, for a report asked by V-number or
    /// BSN. None held, but one referred away under the same keyed lookup:
    /// `SubjectReferred` naming the node that holds it now, as a report by
    /// case id at a node that only forwarded calls names the holder — not
    /// "no case", which would hide that the subject's case was here.
    async fn cases_or_holder(&self, key: &SubjectKey) -> Result<Vec<String>, ExchangeError> {
        let held = self.cases_of(key).await?;
        if !held.is_empty() {
            return Ok(held);
        }
        let referred = self
            .store
            .referred_by_subject(key.kind(), &self.subject_digest(key))
            .await
            .map_err(internal)?;
        match referred.into_iter().last() {
            Some((_, node)) => Err(ExchangeError::SubjectReferred(node)),
            None => Ok(held),
        }
    }

    async fn cases_of(&self, key: &SubjectKey) -> Result<Vec<String>, ExchangeError> {
        self.store
            .cases_by_subject(key.kind(), &self.subject_digest(key))
            .await
            .map_err(internal)
    }

    /// Up to `limit` (0: 1000; at most 10,000) log rows matching `filter`
    /// from index `start` on; with `request_id`, only that call's entry
    /// (when it also matches the filter). Errors: `Forbidden` (not a
    /// privacy officer), `Invalid`, `NotFound` (no entry has that request
    /// id: an unknown id is said, not answered with nothing),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn query_access(
        &self,
        ctx: &RequestCtx,
        filter: LogFilter,
        request_id: Option<String>,
        start: i64,
        limit: i64,
    ) -> Result<Recorded<LogPage>, ExchangeError> {
        let mut rec = self.record(ctx, "QueryAccess");
        let result = async {
            self.officer(ctx)?;
            self.check_filter(&filter)?;
            if limit < 0 {
                return Err(ExchangeError::Invalid(validate::Invalid::new(
                    "limit",
                    "limit must not be negative: 0 asks for 1000 entries, and at most 10000 are sent",
                )));
            }
            // AIP-158: a page size above the maximum is read as the maximum.
            let limit = match limit {
                0 => 1000,
                n => n.min(MAX_QUERY),
            };
            // A query about one case concerns its subject: named with the
            // sealed id, as a read of the case is. Its entries include the
            // listings that named the case among others (their records
            // name subjects, not cases).
            let mut filter = filter;
            if let Some(id) = &filter.case_id {
                // The case's pseudonym, as `name_case` found it (its row,
                // or its entries for a case referred away).
                self.name_case(&mut rec, id).await;
                filter.case_subject = rec.subject.clone();
            }
            let (mut rows, indexed_upto) = match &request_id {
                None => {
                    let page = self
                        .store
                        .query_log_page(&filter, start, limit)
                        .await
                        .map_err(internal)?;
                    (page.rows, page.indexed_upto)
                }
                Some(id) => {
                    validate::uuid("access_record_id", id)?;
                    let Some(at) = self.store.log_position(id).await.map_err(internal)? else {
                        return Err(ExchangeError::not_found(
                            Resource::AccessEntry,
                            None,
                            "no entry of the access log has this access_record_id",
                        ));
                    };
                    let page = self
                        .store
                        .query_log_page(&filter, at.max(start), 1)
                        .await
                        .map_err(internal)?;
                    let mut rows = page.rows;
                    rows.retain(|r| r.seq == at);
                    (rows, page.indexed_upto)
                }
            };
            // A case id that names nothing is a typo or a case of another
            // node: said, rather than answered with no entries (which would
            // read as "nobody saw it").
            if rows.is_empty()
                && start == 0
                && let Some(id) = &filter.case_id
                && self.store.case_meta(id).await.map_err(internal)?.is_none()
            {
                return Err(ExchangeError::not_found(
                    Resource::Case,
                    None,
                    "no case with this case_id on this node, and no entry of the access log names it",
                ));
            }
            // The entries handed out name subjects: each of their reports
            // shows that an officer read them. One record names at most
            // MAX_NAMED: the page stops before the entry that would pass it
            // (the officer resumes from there); the first entry always goes.
            let mut named = std::collections::BTreeSet::new();
            let mut keep = 0;
            for r in &rows {
                let subjects = subjects_named(&r.record);
                let new = subjects.iter().filter(|s| !named.contains(*s)).count();
                if keep > 0 && named.len() + new > MAX_NAMED {
                    break;
                }
                named.extend(subjects);
                keep += 1;
            }
            rows.truncate(keep);
            rec.subjects = named.into_iter().collect();
            rec.decision = crate::tlog::Decision::Allowed;
            rec.detail = format!("{} entries from index {start}", rows.len());
            Ok(LogPage { rows, indexed_upto })
        }
        .await;
        self.finish(rec, result).await
    }

    /// Each filter value checked as the field is everywhere else, so a typo
    /// is an error rather than an empty answer that reads as "no accesses".
    /// `-` stands for "not registered" as caller and role.
    fn check_filter(&self, f: &LogFilter) -> Result<(), ExchangeError> {
        if let Some(c) = f.caller.as_deref().filter(|c| *c != "-") {
            validate::participant_id("caller", c)?;
        }
        if let Some(r) = f.role.as_deref().filter(|r| *r != "-") {
            validate::role("role", r)?;
        }
        if let Some(m) = &f.method {
            validate::method("method", m)?;
        }
        if let Some(p) = &f.purpose {
            self.check_purpose_at("purpose", p)?;
        }
        if let Some(d) = &f.decision {
            validate::decision("decision", d)?;
        }
        if let Some(id) = &f.case_id {
            validate::uuid("case_id", id)?;
        }
        if let Some(s) = &f.subject {
            validate::pseudonym("subject", s)?;
        }
        validate::time_range(("since", f.since), ("until", f.until))?;
        Ok(())
    }

    /// Every access to a subject's cases (GDPR art. 15), found by case id
    /// or through the keyed index by V-number or BSN. Errors: `Forbidden`,
    /// `Invalid` (checked as on registration), `NotFound`,
    /// `AuditUnavailable`, `Internal`.
    ///
    /// On a federation node the report also covers every other node that
    /// served the cases: `ask` calls one (made by `rpc`), and the links are
    /// followed as `network_report` describes; a node that does not answer
    /// is named in the report, which is then incomplete.
    pub(crate) async fn subject_access_report(
        &self,
        ctx: &RequestCtx,
        subject: SubjectRef,
        ask: &AskPart<'_>,
    ) -> Result<Recorded<SubjectReport>, ExchangeError> {
        let mut rec = self.record(ctx, "SubjectAccessReport");
        let result = async {
            self.officer(ctx)?;
            let case_ids = match subject {
                SubjectRef::CaseId(id) => match self
                    .case_by_id(self.caller(ctx)?, &id, Asking::Officer, &mut rec)
                    .await
                {
                    Ok(case) => vec![case.id],
                    // Referred away: its accesses here are still reported.
                    Err(e)
                        if self
                            .store
                            .referred_to(&id)
                            .await
                            .map_err(internal)?
                            .is_some() =>
                    {
                        let _ = e;
                        vec![id]
                    }
                    // Never held here, but this node forwarded calls about
                    // it: say where its trail starts, not "no case".
                    Err(ExchangeError::NotFound(m)) => {
                        return Err(match self.forwarded_for(&id).await? {
                            Some(node) => ExchangeError::HeldAt(node),
                            None => ExchangeError::NotFound(m),
                        });
                    }
                    Err(e) => return Err(e),
                },
                SubjectRef::VNumber(v) => {
                    self.cases_or_holder(&SubjectKey::v_number("v_number", &v)?)
                        .await?
                }
                SubjectRef::Bsn(b) => self.cases_or_holder(&SubjectKey::bsn("bsn", &b)?).await?,
            };
            if case_ids.is_empty() {
                return Err(ExchangeError::not_found(
                    Resource::Case,
                    None,
                    "no case is registered for this subject",
                ));
            }
            let mut cases = Vec::with_capacity(case_ids.len());
            for id in &case_ids {
                if let Some(meta) = self.store.case_meta(id).await.map_err(internal)? {
                    cases.push(ReportedCase {
                        case_id: meta.id.clone(),
                        subject: self.subject_for_audit(&meta),
                    });
                } else if let Some(case) =
                    reported_from_log(&self.store, id).await.map_err(internal)?
                {
                    cases.push(case);
                }
            }
            match cases.as_slice() {
                [only] => {
                    rec.subject = Some(only.subject.clone());
                    self.name_case(&mut rec, &only.case_id).await;
                }
                all => rec.subjects = all.iter().map(|c| c.subject.clone()).collect(),
            }
            let mut report = subject_report(&self.store, &self.registry(), self.node_id(), &cases)
                .await
                .map_err(report_error)?;
            self.prove_own(&mut report).await?;
            if let Some(federation) = &self.federation {
                let gathered = self
                    .gather_parts(federation, &cases, &report.entries, ask)
                    .await;
                report.entries.extend(gathered.entries);
                report.nodes.extend(gathered.nodes);
                // One story across nodes: in time order, a node's own
                // entries in log order.
                report.entries.sort_by(|a, b| {
                    (a.access.at, &a.node, a.index).cmp(&(b.access.at, &b.node, b.index))
                });
                report.text = report_text(
                    self.node_id(),
                    &report.case_ids,
                    &report.entries,
                    &report.nodes,
                    Lang::En,
                );
            }
            rec.decision = crate::tlog::Decision::Allowed;
            let missing: Vec<&str> = report
                .nodes
                .iter()
                .filter(|n| !n.answered)
                .map(|n| n.node.as_str())
                .collect();
            rec.detail = format!(
                "{} entries reported from {} nodes",
                report.entries.len(),
                report.nodes.len() - missing.len()
            );
            if !missing.is_empty() {
                rec.detail
                    .push_str(&format!("; incomplete: no part of {}", missing.join(", ")));
            }
            Ok(report)
        }
        .await;
        self.finish(rec, result).await
    }

    /// The node this node last forwarded a call about case `case_id` to,
    /// by its own records (`records_of_case`).
    async fn forwarded_for(&self, case_id: &str) -> Result<Option<String>, ExchangeError> {
        Ok(self
            .records_of_case(case_id, None)
            .await?
            .iter()
            .filter(|r| r.decision != crate::tlog::Decision::Error)
            .filter_map(|r| super::forwarded::forwarded_to(&r.detail))
            .next_back()
            .map(str::to_string))
    }

    /// This node's lines of a report with their inclusion proofs against
    /// one signed checkpoint (the latest, once it covers them; a line it
    /// does not cover yet has none), named first among the report's nodes.
    /// In a federation the checkpoint is one its witnesses cosigned
    /// (`network_report::prove_cosigned`), with their cosignatures.
    async fn prove_own(&self, report: &mut SubjectReport) -> Result<(), ExchangeError> {
        let indexes: Vec<u64> = report.entries.iter().map(|e| e.index as u64).collect();
        let running = self
            .federation
            .as_ref()
            .and_then(|f| f.current(self.now()).ok().map(|r| (f, r)));
        let (cp, paths, quorum) = match &running {
            Some((federation, running)) => {
                let quorum = federation.report_quorum(&running.directory, federation.node_id());
                let (cp, paths) = network_report::prove_cosigned(
                    &self.store,
                    &running.directory,
                    federation.node_id(),
                    quorum.required,
                    &indexes,
                )
                .await?;
                (cp, paths, Some(quorum))
            }
            None => {
                let (cp, paths) = network_report::prove(&self.store, &indexes).await?;
                (cp.map(|c| (c.note, c.size as u64)), paths, None)
            }
        };
        for (e, hashes) in report.entries.iter_mut().zip(paths) {
            if let Some((_, size)) = cp.as_ref().filter(|_| !hashes.is_empty()) {
                e.proof = Some(EntryProof {
                    tree_size: *size,
                    hashes,
                });
            }
        }
        if let Some(own) = report.nodes.first_mut() {
            own.checkpoint = cp.map(|(note, _)| note).unwrap_or_default();
            own.verifier_key = self.verifier_key();
            if let Some(quorum) = quorum {
                own.quorum = quorum;
                // Lines this node checked when they arrived; one that does
                // not verify now was altered in the database.
                if let Err(e) = own.check_witnesses() {
                    tracing::error!(error = %e, "a cosignature this node holds on its own checkpoint does not verify");
                    own.witnessed = false;
                    own.witness_note = format!(
                        "a cosignature held on this node's checkpoint does not verify: {e}"
                    );
                }
            }
        }
        Ok(())
    }

    /// The signed checkpoint of `size`, or the latest. Errors: `Forbidden`,
    /// `NotFound` (no such size), `CheckpointPending` (none yet),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_checkpoint(
        &self,
        ctx: &RequestCtx,
        size: Option<u64>,
    ) -> Result<Recorded<StoredCheckpoint>, ExchangeError> {
        let mut rec = self.record(ctx, "GetCheckpoint");
        let result = async {
            self.officer(ctx)?;
            let cp = proof::checkpoint(&self.store, size)
                .await
                .map_err(proof_error)?;
            rec.decision = crate::tlog::Decision::Allowed;
            Ok(cp)
        }
        .await;
        self.finish(rec, result).await
    }

    /// An inclusion proof for an entry (by request id or index) against a
    /// signed checkpoint. An entry written a moment ago (the common case: a
    /// caller proving the call it just made) is covered by the next
    /// checkpoint, signed within `checkpoint_interval`; rather than have
    /// every client retry, the proof waits for it, up to
    /// [`COVERAGE_WAIT`] intervals. Errors: `Forbidden`, `Invalid`,
    /// `NotFound`, `OutOfRange`, `CheckpointPending` (still not covered),
    /// `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_inclusion_proof(
        &self,
        ctx: &RequestCtx,
        leaf: LeafRef,
        tree_size: Option<u64>,
    ) -> Result<Recorded<InclusionProof>, ExchangeError> {
        let mut rec = self.record(ctx, "GetInclusionProof");
        let result = async {
            self.officer(ctx)?;
            if let LeafRef::RequestId(id) = &leaf {
                validate::uuid("access_record_id", id)?;
            }
            let wait = self.checkpoint_interval() * COVERAGE_WAIT;
            let give_up = tokio::time::Instant::now() + wait.min(MAX_COVERAGE_WAIT);
            let proof = loop {
                match proof::inclusion_proof(&self.store, leaf.clone(), tree_size).await {
                    Err(ProofError::NotCoveredYet { .. } | ProofError::NoCheckpointYet)
                        if tree_size.is_none() && tokio::time::Instant::now() < give_up =>
                    {
                        tokio::time::sleep(COVERAGE_POLL).await;
                    }
                    result => break result.map_err(proof_error)?,
                }
            };
            rec.subjects = subjects_named(&proof.leaf);
            // A proof of an entry about one case concerns that case's
            // subject: named with the sealed id (a listing's entry names
            // its subjects by pseudonym, as the listing itself does).
            if let Some(view) = RecordView::parse(&proof.leaf)
                && let Some(case_id) = view.case_id
                && view.subjects().next().is_none()
            {
                self.name_case(&mut rec, case_id).await;
            }
            rec.decision = crate::tlog::Decision::Allowed;
            rec.detail = format!("entry {} in tree of size {}", proof.index, proof.tree_size);
            Ok(proof)
        }
        .await;
        self.finish(rec, result).await
    }

    /// A consistency proof from `old` to `new` (default: the latest
    /// checkpoint's size). Errors: `Forbidden`, `Invalid` (range),
    /// `CheckpointPending` (none yet), `AuditUnavailable`, `Internal`.
    pub(crate) async fn get_consistency_proof(
        &self,
        ctx: &RequestCtx,
        old: u64,
        new: Option<u64>,
    ) -> Result<Recorded<ConsistencyProof>, ExchangeError> {
        let mut rec = self.record(ctx, "GetConsistencyProof");
        let result = async {
            self.officer(ctx)?;
            let proof = proof::consistency_proof(&self.store, old, new)
                .await
                .map_err(proof_error)?;
            rec.decision = crate::tlog::Decision::Allowed;
            Ok(proof)
        }
        .await;
        self.finish(rec, result).await
    }
}

/// How many checkpoint intervals an inclusion proof waits for its entry
/// to be covered before answering `CheckpointPending`.
const COVERAGE_WAIT: u32 = 2;
/// The longest that wait, whatever the interval.
const MAX_COVERAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often the wait looks for the new checkpoint (three small reads).
const COVERAGE_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Every subject an encoded access record names: its own and its others.
pub(super) fn subjects_named(record: &[u8]) -> Vec<String> {
    RecordView::parse(record)
        .map(|v| {
            v.subject
                .into_iter()
                .chain(v.subjects())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn internal(e: StoreError) -> ExchangeError {
    ExchangeError::store("access log", &e)
}

/// A failed read of the log fails closed without saying more than that.
fn log_read_failed(e: &dyn std::error::Error) -> ExchangeError {
    ExchangeError::internal("access log", &e)
}

fn report_error(e: ReportError) -> ExchangeError {
    match e {
        ReportError::Store(e) => internal(e),
        e => log_read_failed(&e),
    }
}

/// What the asker can act on keeps its message; a damaged log does not
/// explain itself to the caller (the node's log says it).
pub(super) fn proof_error(e: ProofError) -> ExchangeError {
    match e {
        ProofError::NoCheckpointOfSize { size } => {
            let size = size.to_string();
            ExchangeError::not_found(Resource::Checkpoint, Some(&size), &e.to_string())
        }
        ProofError::NoSuchRecord => {
            ExchangeError::not_found(Resource::AccessEntry, None, &e.to_string())
        }
        ProofError::BadRange { .. } => {
            ExchangeError::Invalid(validate::Invalid::new("new_size", e.to_string()))
        }
        ProofError::PastTheEnd { .. } => {
            ExchangeError::OutOfRange(validate::Invalid::new("index", e.to_string()))
        }
        ProofError::NoCheckpointYet | ProofError::NotCoveredYet { .. } => {
            ExchangeError::CheckpointPending
        }
        ProofError::Store(e) => internal(e),
        ProofError::NodesMissing | ProofError::EntryMissing { .. } => log_read_failed(&e),
    }
}
