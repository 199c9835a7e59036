//! The node's release policy: may a caller in this role receive this category
//! of a case for this purpose?
//!
//! The policy is written in Cedar so that a privacy officer can read and
//! review it without reading Rust, and so that every decision names the rules
//! that made it (the audit record needs those names). Cedar itself knows
//! nothing of sluis; this module adds what the exchange layer needs on top:
//!
//! - a schema built from [`Role::ALL`], [`Category::ALL`] and the node's
//!   purposes, against which the file is validated strictly at load, so a typo
//!   stops the node at start-up instead of silently never matching;
//! - rule names taken from `@id` annotations rather than Cedar's positional
//!   `policy0`, `policy1`, which would change meaning whenever a rule is
//!   inserted and would make old audit records lie;
//! - `@legal_basis`, `@break_glass` and `@reason` annotations turned into
//!   the fields the exchange layer and the audit record use (an emergency
//!   rule, `@break_glass`, releases only to a request that carries a written
//!   justification and names the acting employee; the gateway checks that);
//! - fail-closed evaluation: Cedar skips a policy that errors and may still
//!   allow; here any error denies.
//!
//! Cedar decides per request, not per field, so the gateway calls
//! [`Policy::decide`] once per category.
//!
//! It exposes [`Policy`] (load, decide, the node's purposes), the
//! [`Query`] and its [`Decision`], and [`DEFAULT_POLICY`], the file
//! `sluis init` writes.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    ActionConstraint, AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect,
    Entities, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::model::{Category, Role};

/// The policy `sluis init` writes for a development node. Kept as a file in
/// the repository so that it is reviewed as Cedar, not as a Rust string.
pub const DEFAULT_POLICY: &str = include_str!("default.cedar");

/// Cedar entity type names used in the schema and in policies. They are the
/// words a privacy officer types, so they are the domain's words.
const ROLE_TYPE: &str = "Role";
const CATEGORY_TYPE: &str = "Category";
const PURPOSE_TYPE: &str = "Purpose";
const ACTION_TYPE: &str = "Action";
/// The action of every case read: releasing a category of one case to a
/// caller. Keeping to it keeps the policy about who and why, not about verbs.
const ACTION_ID: &str = "receive";
/// The one other action: counting cases by a category for protected
/// statistics (no person's data leaves). Separate, so that no rule written
/// for releasing a case's data ever allows statistics, or the reverse.
const AGGREGATE_ID: &str = "aggregate";

/// Annotations the module understands. Anything else is refused: a misspelt
/// `@legal_basis` would otherwise silently turn a legal-basis rule into a
/// consent rule, and nobody would notice until an audit.
const KNOWN_ANNOTATIONS: [&str; 5] = ["id", "legal_basis", "break_glass", "reason", "description"];

/// Longest accepted `@id`; ids are stored in every audit record.
const MAX_ID_LEN: usize = 64;

/// Why a category was withheld, as told to the caller and recorded in the
/// audit log. The caller can act on `ActorRequired` (retry naming the acting
/// employee); on the other it cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    NotPermittedForRoleAndPurpose,
    ActorRequired,
}

impl DenyReason {
    /// The spelling used in `@reason(...)`, the audit log and the API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DenyReason::NotPermittedForRoleAndPurpose => "not_permitted_for_role_and_purpose",
            DenyReason::ActorRequired => "actor_required",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DenyReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            DenyReason::NotPermittedForRoleAndPurpose,
            DenyReason::ActorRequired,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            format!(
                "unknown @reason(\"{s}\"): expected \"actor_required\" or \
                 \"not_permitted_for_role_and_purpose\""
            )
        })
    }
}

/// The policy's answer for one category. Consent is not part of it: an
/// allowed category still needs the subject's consent unless `legal_basis`
/// is set (and `identity` always needs consent; the exchange layer enforces
/// that).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub(crate) allowed: bool,
    /// Ids of the determining policies (sorted), empty for default deny.
    /// An evaluation error appears as `error:<policy id>`.
    pub(crate) rules: Vec<String>,
    /// Some(text) when allowed and a determining permit carries @legal_basis.
    pub(crate) legal_basis: Option<String>,
    /// Some when denied.
    pub(crate) deny_reason: Option<DenyReason>,
    /// Ids of the determining permits that are emergency rules
    /// (`@break_glass`), sorted; empty when denied.
    pub(crate) emergency: Vec<String>,
    /// Some determining permit is an ordinary rule (not `@break_glass`):
    /// the category is allowed without an emergency. False when denied.
    pub(crate) ordinary: bool,
}

impl Decision {
    /// No permit matched (or the question could not be asked at all).
    fn default_deny() -> Decision {
        Decision {
            allowed: false,
            rules: Vec::new(),
            legal_basis: None,
            deny_reason: Some(DenyReason::NotPermittedForRoleAndPurpose),
            emergency: Vec::new(),
            ordinary: false,
        }
    }
}

/// One question to the policy. Borrowed so the hot path allocates nothing to
/// ask it.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub role: Role,
    pub category: Category,
    pub purpose: &'a str,
    /// The caller registered the case: it is the controller of the data.
    pub is_owner: bool,
    /// The request names the employee acting, so the audit log shows a person.
    pub actor_present: bool,
}

/// Everything that stops a policy from loading. Messages name the file, the
/// line and the rule, because the person reading them edits a text file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The text is not Cedar. One line per broken rule.
    #[error("policy syntax error:\n{0}")]
    Parse(String),
    /// The text is Cedar but not a valid sluis policy (unknown role, category
    /// or purpose, missing or duplicate `@id`, bad annotation, a rule that can
    /// never apply). One line per problem.
    #[error("policy rejected:\n{0}")]
    Invalid(String),
    /// The node's purposes cannot form a schema (none, duplicates, ...).
    /// A configuration problem rather than a policy one.
    #[error("cannot build the policy schema: {0}")]
    Schema(#[from] SchemaError),
}

/// Why the node's purposes cannot form the Cedar schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("no purposes configured; a node needs at least one")]
    NoPurposes,
    #[error("a configured purpose is empty")]
    EmptyPurpose,
    #[error("purpose \"{0}\" is configured twice")]
    DuplicatePurpose(String),
    /// Cedar refused the schema, or a request or context built from it
    /// (a purpose Cedar cannot take as an entity id).
    #[error("{0}")]
    Cedar(Box<dyn std::error::Error + Send + Sync>),
}

impl SchemaError {
    /// Cedar's error as the [`PolicyError`] it ends in, for `map_err`.
    fn cedar(e: impl std::error::Error + Send + Sync + 'static) -> PolicyError {
        PolicyError::Schema(SchemaError::Cedar(Box::new(e)))
    }
}

/// What the module needs to know about one rule at decision time; read once
/// at load so `decide` does not look annotations up by string.
#[derive(Debug)]
struct RuleMeta {
    legal_basis: Option<String>,
    /// `@break_glass("ground")`: an emergency rule, which releases only to a
    /// request with a written justification and the acting employee named.
    break_glass: bool,
    reason: DenyReason,
    /// A permit that names the action `aggregate` (and so, as loading
    /// checks, a legal basis and the roles it is for): only such a rule
    /// allows statistics.
    for_statistics: bool,
}

/// A loaded, validated policy. Immutable: reloading builds a new one, so a
/// decision never sees half of an old file and half of a new one.
pub struct Policy {
    set: PolicySet,
    authorizer: Authorizer,
    /// Empty: the schema has no hierarchy and no attributes, so Cedar needs
    /// no entity data to decide.
    entities: Entities,
    action: EntityUid,
    aggregate: EntityUid,
    /// In the order of `Role::ALL` / `Category::ALL`.
    roles: Vec<EntityUid>,
    categories: Vec<EntityUid>,
    purposes: Vec<String>,
    /// One context per (purpose, is_owner, actor_present), index
    /// `purpose * 4 + is_owner * 2 + actor_present`; built at load because the
    /// context is the costliest part of a request to build.
    contexts: Vec<Context>,
    /// One slot per possible question (purpose, role, category, is_owner,
    /// actor_present), filled on first use; see [`Policy::decide`].
    cache: Vec<OnceLock<Decision>>,
    meta: HashMap<PolicyId, RuleMeta>,
    /// SHA-256 of the policy text as read: the policy's version, named by
    /// every access record it decided and by the record of each reload.
    sha256: [u8; 32],
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.meta.len())
            .field("purposes", &self.purposes)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads and validates the policy file. `purposes` are the node's
    /// configured purposes: the policy may name no other.
    pub(crate) fn load(path: &Path, purposes: &[String]) -> Result<Policy, PolicyError> {
        let text =
            crate::files::read_to_string(path, crate::files::Kind::Policy).map_err(|source| {
                PolicyError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Policy::from_text(&text, &path.display().to_string(), purposes)
    }

    /// Parses and validates policy text; `source` names it in error messages
    /// (a file path, or e.g. `<default policy>`).
    pub fn from_text(text: &str, source: &str, purposes: &[String]) -> Result<Policy, PolicyError> {
        let vocab = Vocabulary::new(purposes)?;

        // Parse statement by statement rather than the whole file at once:
        // Cedar's error text carries no position without a miette renderer,
        // and a privacy officer needs to know which rule is broken.
        let mut syntax = Vec::new();
        let mut problems = Vec::new();
        let mut set = PolicySet::new();
        let mut meta = HashMap::new();
        let mut lines: HashMap<PolicyId, usize> = HashMap::new();
        for stmt in split_statements(text) {
            if stmt.depth > MAX_NESTING || stmt.ifs > MAX_NESTING {
                let rule = match id_hint(stmt.text) {
                    Some(id) => format!("rule \"{id}\""),
                    None => "rule".to_string(),
                };
                syntax.push(format!(
                    "{source}:{}: {rule}: nests deeper than {MAX_NESTING} levels of brackets \
                     or if-then-else; write it flatter (split it into rules)",
                    stmt.line
                ));
                continue;
            }
            if stmt.ops > MAX_OPERATORS {
                let rule = match id_hint(stmt.text) {
                    Some(id) => format!("rule \"{id}\""),
                    None => "rule".to_string(),
                };
                syntax.push(format!(
                    "{source}:{}: {rule}: has more than {MAX_OPERATORS} operators; \
                     write it shorter (split it into rules)",
                    stmt.line
                ));
                continue;
            }
            let parsed = match cedar_policy::Policy::parse(None, stmt.text) {
                Ok(p) => p,
                Err(errs) => {
                    let what = errs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    let rule = match id_hint(stmt.text) {
                        Some(id) => format!("rule \"{id}\""),
                        None => "rule".to_string(),
                    };
                    syntax.push(format!("{source}:{}: {rule}: {what}", stmt.line));
                    continue;
                }
            };
            match rule_meta(&parsed) {
                Err(what) => {
                    let rule = match parsed.annotation("id") {
                        Some(id) if !id.is_empty() => format!("rule \"{id}\""),
                        _ => "rule without @id".to_string(),
                    };
                    problems.push(format!("{source}:{}: {rule}: {what}", stmt.line));
                }
                Ok((id, rule_meta)) => {
                    let pid = PolicyId::new(&id);
                    if let Some(first) = lines.get(&pid) {
                        problems.push(format!(
                            "{source}:{}: rule \"{id}\": duplicate @id, already used by the \
                             rule at line {first}; every rule needs its own id",
                            stmt.line
                        ));
                        continue;
                    }
                    if let Err(e) = set.add(parsed.new_id(pid.clone())) {
                        problems.push(format!("{source}:{}: rule \"{id}\": {e}", stmt.line));
                        continue;
                    }
                    lines.insert(pid.clone(), stmt.line);
                    meta.insert(pid, rule_meta);
                }
            }
        }
        if !syntax.is_empty() {
            return Err(PolicyError::Parse(syntax.join("\n")));
        }

        let unknown_literals = vocab.check_literals(&set, &lines, source);
        let flagged: Vec<&PolicyId> = unknown_literals.iter().map(|(id, _)| id).collect();
        // Warnings count as errors: the ones Cedar gives (a rule that can
        // never apply, look-alike characters) are mistakes in a policy this
        // small, and a rule that silently never matches is the failure strict
        // validation exists to prevent.
        let result = Validator::new(vocab.schema.clone()).validate(&set, ValidationMode::Strict);
        let located = |id: &PolicyId, what: String| {
            let line = lines.get(id).copied().unwrap_or(0);
            format!(
                "{source}:{line}: rule \"{id}\": {}",
                strip_policy_prefix(&what, id)
            )
        };
        for e in result.validation_errors() {
            if matches!(e, cedar_policy::ValidationError::InvalidEnumEntity(_))
                && flagged.contains(&e.policy_id())
            {
                // Already reported, with the list of valid values.
                continue;
            }
            problems.push(located(e.policy_id(), e.to_string()));
        }
        for w in result.validation_warnings() {
            problems.push(located(w.policy_id(), w.to_string()));
        }
        problems.extend(unknown_literals.into_iter().map(|(_, what)| what));
        if !problems.is_empty() {
            problems.sort_by_key(|p| line_of(p, source));
            problems.dedup();
            return Err(PolicyError::Invalid(problems.join("\n")));
        }

        let mut policy = vocab.into_policy(set, meta)?;
        policy.sha256 = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        Ok(policy)
    }

    /// The policy's version: SHA-256 of its text as read (32 bytes). Two
    /// files with the same bytes are the same version; `sha256sum` of the
    /// policy file gives the same value in hex.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// The node's purposes, in configuration order.
    pub(crate) fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// Lets the exchange layer reject an unknown purpose as bad input before
    /// asking for a decision.
    pub(crate) fn knows_purpose(&self, p: &str) -> bool {
        self.purposes.iter().any(|known| known == p)
    }

    /// Decides one category. Fails closed: an unknown purpose is a default
    /// deny, and any evaluation error is a deny whose `rules` name the
    /// erroring policy as `error:<policy id>`, even where Cedar alone would
    /// have let another permit carry the decision.
    ///
    /// The answer is a pure function of the query (the schema admits no
    /// other input, the entity store is empty and Cedar has no clock), so
    /// each distinct question is evaluated by Cedar once and then answered
    /// from memory: Cedar rebuilds every policy's condition per request,
    /// some tens of microseconds for this policy, which is too much eight
    /// times per request. A result with an evaluation error is never kept,
    /// so a passing fault cannot stick.
    pub fn decide(&self, q: &Query<'_>) -> Decision {
        let Some(purpose) = self.purposes.iter().position(|p| p == q.purpose) else {
            return Decision::default_deny();
        };
        let (Some(role), Some(category)) = (
            Role::ALL.iter().position(|r| *r == q.role),
            Category::ALL.iter().position(|c| *c == q.category),
        ) else {
            return Decision::default_deny();
        };
        let flags = usize::from(q.is_owner) * 2 + usize::from(q.actor_present);
        let cell =
            ((purpose * Role::ALL.len() + role) * Category::ALL.len() + category) * 4 + flags;
        let Some(cell) = self.cache.get(cell) else {
            return Decision::default_deny();
        };
        if let Some(known) = cell.get() {
            return known.clone();
        }
        let (decision, clean) = self.evaluate(role, category, purpose * 4 + flags);
        if clean {
            // A racing thread may have set it first; both computed the same.
            let _ = cell.set(decision.clone());
        }
        decision
    }

    /// Decides whether the node may count cases by `category` for a caller
    /// in `role` asking for protected statistics for `purpose` (the action
    /// `aggregate`). Statistics need a permit that declares `@legal_basis`:
    /// there is no consent of each person for a count, so a permit without
    /// one allows nothing here. Fails closed like [`decide`](Self::decide).
    /// Not remembered: statistics are rare and costly for other reasons.
    pub(crate) fn decide_aggregate(
        &self,
        role: Role,
        category: Category,
        purpose: &str,
        actor_present: bool,
    ) -> Decision {
        let (Some(purpose), Some(role), Some(category)) = (
            self.purposes.iter().position(|p| p == purpose),
            Role::ALL.iter().position(|r| *r == role),
            Category::ALL.iter().position(|c| *c == category),
        ) else {
            return Decision::default_deny();
        };
        let context = purpose * 4 + usize::from(actor_present);
        let (decision, _) = self.evaluate_action(&self.aggregate, role, category, context);
        let for_statistics = decision.rules.iter().any(|id| {
            self.meta
                .get(&PolicyId::new(id))
                .is_some_and(|m| m.for_statistics)
        });
        if decision.allowed && (decision.legal_basis.is_none() || !for_statistics) {
            return Decision {
                allowed: false,
                deny_reason: Some(DenyReason::NotPermittedForRoleAndPurpose),
                ..decision
            };
        }
        decision
    }

    /// Asks Cedar; the flag says whether the answer is free of errors and so
    /// may be remembered.
    fn evaluate(&self, role: usize, category: usize, context: usize) -> (Decision, bool) {
        self.evaluate_action(&self.action, role, category, context)
    }

    fn evaluate_action(
        &self,
        action: &EntityUid,
        role: usize,
        category: usize,
        context: usize,
    ) -> (Decision, bool) {
        let (Some(principal), Some(resource), Some(context)) = (
            self.roles.get(role),
            self.categories.get(category),
            self.contexts.get(context),
        ) else {
            return (Decision::default_deny(), false);
        };
        // No schema here: the parts were checked against it at load.
        let request = match Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            context.clone(),
            None,
        ) {
            Ok(r) => r,
            Err(_) => {
                let d = Decision {
                    rules: vec!["error:request".to_string()],
                    ..Decision::default_deny()
                };
                return (d, false);
            }
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &self.entities);
        let clean = response.diagnostics().errors().next().is_none();
        (
            self.interpret(response.decision(), response.diagnostics()),
            clean,
        )
    }

    fn interpret(&self, decision: CedarDecision, diag: &cedar_policy::Diagnostics) -> Decision {
        let mut determining: Vec<&PolicyId> = diag.reason().collect();
        determining.sort();
        let mut errors: Vec<String> = diag
            .errors()
            .map(|e| match e {
                AuthorizationError::PolicyEvaluationError(e) => format!("error:{}", e.policy_id()),
            })
            .collect();

        if decision == CedarDecision::Allow && errors.is_empty() {
            let mut bases: Vec<&str> = Vec::new();
            let mut emergency = Vec::new();
            let mut ordinary = false;
            for id in &determining {
                let meta = self.meta.get(*id);
                if meta.is_some_and(|m| m.break_glass) {
                    emergency.push(id.to_string());
                    continue;
                }
                ordinary = true;
                if let Some(basis) = meta.and_then(|m| m.legal_basis.as_deref())
                    && !bases.contains(&basis)
                {
                    bases.push(basis);
                }
            }
            return Decision {
                allowed: true,
                rules: determining.iter().map(ToString::to_string).collect(),
                legal_basis: (!bases.is_empty()).then(|| bases.join("; ")),
                deny_reason: None,
                emergency,
                ordinary,
            };
        }

        // Denied. With an error, the permits Cedar found are not a decision,
        // only the forbids are.
        let forbids: Vec<&PolicyId> = if decision == CedarDecision::Deny {
            determining
        } else {
            Vec::new()
        };
        // Only say "name the actor" when that alone is what stood in the way:
        // any other forbid makes the advice false.
        let reason = if !forbids.is_empty()
            && errors.is_empty()
            && forbids
                .iter()
                .all(|id| self.meta.get(*id).map(|m| m.reason) == Some(DenyReason::ActorRequired))
        {
            DenyReason::ActorRequired
        } else {
            DenyReason::NotPermittedForRoleAndPurpose
        };
        let mut rules: Vec<String> = forbids.iter().map(ToString::to_string).collect();
        rules.append(&mut errors);
        rules.sort();
        Decision {
            allowed: false,
            rules,
            legal_basis: None,
            deny_reason: Some(reason),
            emergency: Vec::new(),
            ordinary: false,
        }
    }
}

/// The schema and the pre-built request parts for one set of purposes.
struct Vocabulary {
    schema: Schema,
    purposes: Vec<String>,
    role_type: EntityTypeName,
    category_type: EntityTypeName,
    purpose_type: EntityTypeName,
}

impl Vocabulary {
    fn new(purposes: &[String]) -> Result<Vocabulary, PolicyError> {
        if purposes.is_empty() {
            return Err(SchemaError::NoPurposes.into());
        }
        for (i, p) in purposes.iter().enumerate() {
            if p.is_empty() {
                return Err(SchemaError::EmptyPurpose.into());
            }
            if purposes[..i].contains(p) {
                return Err(SchemaError::DuplicatePurpose(p.clone()).into());
            }
        }
        let schema_text = schema_text(purposes);
        let (schema, _warnings) =
            Schema::from_cedarschema_str(&schema_text).map_err(SchemaError::cedar)?;
        let type_name = |t: &str| EntityTypeName::from_str(t).map_err(SchemaError::cedar);
        Ok(Vocabulary {
            schema,
            purposes: purposes.to_vec(),
            role_type: type_name(ROLE_TYPE)?,
            category_type: type_name(CATEGORY_TYPE)?,
            purpose_type: type_name(PURPOSE_TYPE)?,
        })
    }

    /// The valid ids of one of our enumerated types, or None for other types.
    fn choices(&self, ty: &EntityTypeName) -> Option<Vec<&str>> {
        if *ty == self.role_type {
            Some(Role::ALL.iter().map(|r| r.as_str()).collect())
        } else if *ty == self.category_type {
            Some(Category::ALL.iter().map(|c| c.as_str()).collect())
        } else if *ty == self.purpose_type {
            Some(self.purposes.iter().map(String::as_str).collect())
        } else {
            None
        }
    }

    /// Reports unknown roles, categories and purposes with the valid list.
    /// Cedar finds them too, but its list of valid values is only in the
    /// miette help text, which plain `Display` does not show.
    fn check_literals(
        &self,
        set: &PolicySet,
        lines: &HashMap<PolicyId, usize>,
        source: &str,
    ) -> Vec<(PolicyId, String)> {
        let mut out = Vec::new();
        for policy in set.policies() {
            for uid in policy.entity_literals() {
                let Some(choices) = self.choices(uid.type_name()) else {
                    continue;
                };
                let eid: &str = uid.id().unescaped();
                if !choices.contains(&eid) {
                    let line = lines.get(policy.id()).copied().unwrap_or(0);
                    out.push((
                        policy.id().clone(),
                        format!(
                            "{source}:{line}: rule \"{}\": unknown {} \"{eid}\"; valid: {}",
                            policy.id(),
                            uid.type_name(),
                            choices.join(", ")
                        ),
                    ));
                }
            }
        }
        out
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn into_policy(
        self,
        set: PolicySet,
        meta: HashMap<PolicyId, RuleMeta>,
    ) -> Result<Policy, PolicyError> {
        let action_type = EntityTypeName::from_str(ACTION_TYPE).map_err(SchemaError::cedar)?;
        let action = self.uid(&action_type, ACTION_ID);
        let aggregate = self.uid(&action_type, AGGREGATE_ID);
        let roles: Vec<EntityUid> = Role::ALL
            .iter()
            .map(|r| self.uid(&self.role_type, r.as_str()))
            .collect();
        let categories: Vec<EntityUid> = Category::ALL
            .iter()
            .map(|c| self.uid(&self.category_type, c.as_str()))
            .collect();
        let mut contexts = Vec::with_capacity(self.purposes.len() * 4);
        for p in &self.purposes {
            for is_owner in [false, true] {
                for actor_present in [false, true] {
                    let ctx = Context::from_pairs([
                        (
                            "purpose".to_string(),
                            RestrictedExpression::new_entity_uid(self.uid(&self.purpose_type, p)),
                        ),
                        (
                            "is_owner".to_string(),
                            RestrictedExpression::new_bool(is_owner),
                        ),
                        (
                            "actor_present".to_string(),
                            RestrictedExpression::new_bool(actor_present),
                        ),
                    ])
                    .map_err(SchemaError::cedar)?;
                    // Checked once here so that `decide` can skip the schema.
                    for (principal, resource) in roles.iter().zip(categories.iter()) {
                        for act in [&action, &aggregate] {
                            Request::new(
                                principal.clone(),
                                act.clone(),
                                resource.clone(),
                                ctx.clone(),
                                Some(&self.schema),
                            )
                            .map_err(SchemaError::cedar)?;
                        }
                    }
                    contexts.push(ctx);
                }
            }
        }
        let cells = self.purposes.len() * Role::ALL.len() * Category::ALL.len() * 4;
        Ok(Policy {
            set,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            action,
            aggregate,
            roles,
            categories,
            purposes: self.purposes,
            cache: std::iter::repeat_with(OnceLock::new).take(cells).collect(),
            contexts,
            meta,
            sha256: [0; 32],
        })
    }
}

/// The Cedar schema for a node. Enumerated entity types (Cedar ≥ 4.3) make an
/// unknown role, category or purpose a validation error instead of a rule
/// that never matches.
fn schema_text(purposes: &[String]) -> String {
    fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
        items
            .map(|s| format!("\"{}\"", s.escape_debug()))
            .collect::<Vec<_>>()
            .join(", ")
    }
    format!(
        "entity {ROLE_TYPE} enum [{roles}];\n\
         entity {CATEGORY_TYPE} enum [{categories}];\n\
         entity {PURPOSE_TYPE} enum [{purposes}];\n\
         action {ACTION_ID}, {AGGREGATE_ID} appliesTo {{\n  \
           principal: {ROLE_TYPE},\n  \
           resource: {CATEGORY_TYPE},\n  \
           context: {{ purpose: {PURPOSE_TYPE}, is_owner: Bool, actor_present: Bool }}\n\
         }};\n",
        roles = list(Role::ALL.iter().map(|r| r.as_str())),
        categories = list(Category::ALL.iter().map(|c| c.as_str())),
        purposes = list(purposes.iter().map(String::as_str)),
    )
}

/// Checks one rule's annotations and returns its id and decision metadata.
fn rule_meta(p: &cedar_policy::Policy) -> Result<(String, RuleMeta), String> {
    for (key, _) in p.annotations() {
        if !KNOWN_ANNOTATIONS.contains(&key) {
            return Err(format!(
                "unknown annotation @{key}; known: @id, @legal_basis, @break_glass, @reason, @description"
            ));
        }
    }
    let id = match p.annotation("id") {
        None => {
            return Err(
                "missing @id(\"...\"): every rule needs a unique id, it names the rule \
                        in the audit log"
                    .to_string(),
            );
        }
        Some(id) => id,
    };
    check_id(id)?;
    let legal_basis = p.annotation("legal_basis").map(str::to_string);
    let break_glass = p.annotation("break_glass");
    let reason = p.annotation("reason");
    if let Some(ground) = break_glass {
        if p.effect() == Effect::Forbid {
            return Err("@break_glass belongs on a permit; a forbid releases nothing".to_string());
        }
        if ground.trim().is_empty() {
            return Err(
                "@break_glass is empty; name the emergency and the ground that allows it"
                    .to_string(),
            );
        }
        // An emergency rule is a permit of its own kind: a legal basis on it
        // would let it release without the justification it exists to get.
        if legal_basis.is_some() {
            return Err("@break_glass and @legal_basis on one rule: an emergency rule releases only with a justification; write two rules".to_string());
        }
    }
    match p.effect() {
        Effect::Permit => {
            if reason.is_some() {
                return Err("@reason belongs on a forbid; a permit does not deny".to_string());
            }
            if legal_basis.as_deref().is_some_and(|b| b.trim().is_empty()) {
                return Err("@legal_basis is empty; name the law or agreement".to_string());
            }
        }
        Effect::Forbid => {
            if legal_basis.is_some() {
                return Err(
                    "@legal_basis belongs on a permit; a forbid releases nothing".to_string(),
                );
            }
        }
    }
    let reason = match reason {
        Some(r) => r.parse()?,
        None => DenyReason::NotPermittedForRoleAndPurpose,
    };
    let for_statistics = p.effect() == Effect::Permit && names_aggregate(p, legal_basis.is_some())?;
    Ok((
        id.to_string(),
        RuleMeta {
            legal_basis,
            break_glass: break_glass.is_some(),
            reason,
            for_statistics,
        },
    ))
}

/// Whether a permit is one for statistics: it names the action
/// `aggregate`. Such a permit stands in for no one's consent, so a privacy
/// officer must be able to read off it whom it is for and on what ground:
/// it needs @legal_basis and must name the role or roles it is for. A
/// permit that leaves the action open allows no statistics.
fn names_aggregate(p: &cedar_policy::Policy, has_basis: bool) -> Result<bool, String> {
    let aggregate = |uid: &EntityUid| uid.id().unescaped() == AGGREGATE_ID;
    let names_it = match p.action_constraint() {
        ActionConstraint::Any => false,
        ActionConstraint::Eq(a) => aggregate(&a),
        ActionConstraint::In(list) => list.iter().any(aggregate),
    };
    if !names_it {
        return Ok(false);
    }
    if !has_basis {
        return Err(
            "a permit for action \"aggregate\" (statistics) needs @legal_basis: no one consents to a count; name the law or agreement"
                .to_string(),
        );
    }
    if !p.to_string().contains(&format!("{ROLE_TYPE}::\"")) {
        return Err(format!(
            "a permit for action \"aggregate\" (statistics) must name the roles it is for (principal == {ROLE_TYPE}::\"monitor\", or [{ROLE_TYPE}::\"monitor\", ...].contains(principal))"
        ));
    }
    Ok(true)
}

/// Ids go into every audit record and into `error:<id>` markers, so they are
/// kept short and plain.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty @id; give the rule a name".to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("@id is longer than {MAX_ID_LEN} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "@id(\"{id}\") contains {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Cedar prefixes validation messages with "for policy `id`, "; the module
/// already names the rule, so say it once.
fn strip_policy_prefix<'a>(what: &'a str, id: &PolicyId) -> &'a str {
    let prefix = format!("for policy `{id}`, ");
    what.strip_prefix(prefix.as_str()).unwrap_or(what)
}

/// The line number in a `source:line: ...` problem, for sorting.
fn line_of(problem: &str, source: &str) -> usize {
    problem
        .strip_prefix(source)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One `;`-terminated statement of a policy file, the line its first
/// token is on, and how deeply it nests.
struct Statement<'a> {
    text: &'a str,
    line: usize,
    /// Deepest nesting of `(`, `[` and `{`.
    depth: usize,
    /// `if` keywords (each may nest the next).
    ifs: usize,
    /// Operator characters (`&`, `|`, `=`, `<`, `>`, `+`, `-`, `*`, `.`):
    /// a chain of binary operators nests as deeply as it is long.
    ops: usize,
}

/// Cedar parses nested expressions recursively: a few hundred levels of
/// brackets or `if`s overflow the stack and abort the process (found by
/// the policy fuzz target). No sensible rule nests this deep; deeper ones
/// are refused before Cedar sees them, naming the rule.
const MAX_NESTING: usize = 16;

/// Cedar also recurses once per operator of a chain (`a && b && …`): 50,000
/// terms overflow the stack. No sensible rule has more than a few dozen
/// operators; a rule with more operator characters than this is refused
/// before Cedar sees it, naming the rule.
const MAX_OPERATORS: usize = 2048;

/// Splits policy text into statements the way Cedar's lexer would: `;` ends
/// a policy except inside a string literal (`"` with `\` escapes) or a `//`
/// comment, which are the only places Cedar's grammar lets it hide. A
/// trailing fragment without `;` is kept, so Cedar reports it.
fn split_statements(text: &str) -> Vec<Statement<'_>> {
    #[derive(PartialEq)]
    enum State {
        Code,
        Str,
        Escape,
        Comment,
    }
    let mut out = Vec::new();
    let mut state = State::Code;
    let mut start = 0;
    let mut line = 1;
    let mut first_line: Option<usize> = None;
    let (mut depth, mut max_depth, mut ifs, mut ops) = (0usize, 0usize, 0usize, 0usize);
    // Where the identifier being read began, to count `if`s.
    let mut word: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let in_word = state == State::Code && (c.is_alphanumeric() || c == '_');
        match (word, in_word) {
            (None, true) => word = Some(i),
            (Some(w), false) => {
                if &text[w..i] == "if" {
                    ifs += 1;
                }
                word = None;
            }
            _ => {}
        }
        match state {
            State::Code => match c {
                '"' => {
                    first_line.get_or_insert(line);
                    state = State::Str;
                }
                '/' if chars.peek().map(|&(_, n)| n) == Some('/') => state = State::Comment,
                ';' => {
                    let end = i + c.len_utf8();
                    out.push(Statement {
                        text: &text[start..end],
                        line: *first_line.get_or_insert(line),
                        depth: max_depth,
                        ifs,
                        ops,
                    });
                    start = end;
                    first_line = None;
                    (depth, max_depth, ifs, ops) = (0, 0, 0, 0);
                }
                c if c.is_whitespace() => {}
                _ => {
                    first_line.get_or_insert(line);
                    match c {
                        '(' | '[' | '{' => {
                            depth += 1;
                            max_depth = max_depth.max(depth);
                        }
                        ')' | ']' | '}' => depth = depth.saturating_sub(1),
                        '&' | '|' | '=' | '<' | '>' | '+' | '-' | '*' | '.' => ops += 1,
                        _ => {}
                    }
                }
            },
            State::Str => match c {
                '\\' => state = State::Escape,
                '"' => state = State::Code,
                _ => {}
            },
            State::Escape => state = State::Str,
            State::Comment => {
                if c == '\n' || c == '\r' {
                    state = State::Code;
                }
            }
        }
        if c == '\n' {
            line += 1;
        }
    }
    if let Some(w) = word
        && &text[w..] == "if"
    {
        ifs += 1;
    }
    if let Some(line) = first_line {
        out.push(Statement {
            text: &text[start..],
            line,
            depth: max_depth,
            ifs,
            ops,
        });
    }
    out
}

/// Best-effort `@id("...")` of a statement Cedar could not parse, so the
/// error can still name the rule.
fn id_hint(stmt: &str) -> Option<&str> {
    let rest = &stmt[stmt.find("@id(\"")? + 5..];
    let id = &rest[..rest.find('"')?];
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DEFAULT_PURPOSES;

    fn purposes() -> Vec<String> {
        DEFAULT_PURPOSES.iter().map(|p| p.to_string()).collect()
    }

    fn default_policy() -> Policy {
        Policy::from_text(DEFAULT_POLICY, "default.cedar", &purposes()).unwrap()
    }

    fn ask(p: &Policy, role: Role, category: Category, purpose: &str) -> Decision {
        p.decide(&Query {
            role,
            category,
            purpose,
            is_owner: false,
            actor_present: true,
        })
    }

    fn load_err(text: &str) -> String {
        match Policy::from_text(text, "test.cedar", &purposes()) {
            Ok(_) => panic!("policy loaded but should not have:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// The review's example: a rule with 50,000 `&&` terms overflowed the
    /// stack at start. It is refused, naming the rule; 200 terms load.
    #[test]
    fn a_chain_of_operators_too_long_is_refused_naming_the_rule() {
        let rule = |terms: usize| {
            format!(
                "@id(\"long\")\n@legal_basis(\"b\")\npermit(principal, action == Action::\"receive\", resource) when {{ {} }};",
                vec!["context.is_owner"; terms].join(" && ")
            )
        };
        let err = load_err(&rule(50_000));
        assert!(
            err.contains("test.cedar:1: rule \"long\": has more than"),
            "{err}"
        );
        Policy::from_text(&rule(200), "test.cedar", &purposes()).expect("200 terms load");
    }

    #[test]
    fn default_policy_loads() {
        let p = default_policy();
        assert_eq!(p.meta.len(), 14);
        assert!(p.meta.keys().any(|id| id.to_string() == "owner"));
        assert!(schema_text(&purposes()).contains("entity Purpose enum"));
    }

    #[test]
    fn dtv_return_gets_residence_on_legal_basis_and_perspective_on_consent() {
        let p = default_policy();
        let d = ask(&p, Role::Dtv, Category::ResidenceProcedure, "return");
        assert!(d.allowed);
        assert_eq!(d.rules, vec!["dtv-return-residence"]);
        assert_eq!(
            d.legal_basis.as_deref(),
            Some("Vreemdelingenwet 2000 art. 107 / LVV convenant")
        );
        assert_eq!(d.deny_reason, None);

        let d = ask(&p, Role::Dtv, Category::Perspective, "return");
        assert!(d.allowed);
        assert_eq!(d.rules, vec!["dtv-return-consent"]);
        assert_eq!(d.legal_basis, None);

        let d = ask(&p, Role::Dtv, Category::Identity, "return");
        assert!(d.allowed);
        assert_eq!(d.legal_basis, None);

        // Same role, other purpose: nothing.
        let d = ask(
            &p,
            Role::Dtv,
            Category::ResidenceProcedure,
            "case_consultation",
        );
        assert!(!d.allowed);
        assert!(d.rules.is_empty());
        assert_eq!(
            d.deny_reason,
            Some(DenyReason::NotPermittedForRoleAndPurpose)
        );
    }

    #[test]
    fn other_roles_get_what_the_default_policy_says() {
        let p = default_policy();
        let allowed = |r, c, purpose| ask(&p, r, c, purpose).allowed;
        assert!(allowed(
            Role::Ind,
            Category::ResidenceProcedure,
            "legalisation"
        ));
        assert!(allowed(Role::Ind, Category::Outcome, "legalisation"));
        assert!(!allowed(Role::Ind, Category::Shelter, "legalisation"));
        assert!(allowed(Role::Avim, Category::Safety, "return"));
        assert!(allowed(Role::Avim, Category::Safety, "case_consultation"));
        assert!(
            ask(&p, Role::Avim, Category::Safety, "return")
                .legal_basis
                .is_some()
        );
        assert!(!allowed(Role::Avim, Category::Perspective, "return"));
        assert!(allowed(Role::Ngo, Category::Medical, "guidance"));
        assert!(
            ask(&p, Role::Ngo, Category::Medical, "guidance")
                .legal_basis
                .is_none()
        );
        assert!(!allowed(Role::Ngo, Category::Safety, "guidance"));
        assert!(!allowed(Role::Ngo, Category::Medical, "return"));
        assert!(allowed(
            Role::Municipality,
            Category::Shelter,
            "case_consultation"
        ));
        assert!(!allowed(
            Role::Municipality,
            Category::Identity,
            "case_consultation"
        ));
    }

    #[test]
    fn forbid_beats_an_explicit_permit_for_medical() {
        let text = format!(
            "{DEFAULT_POLICY}\n@id(\"dtv-medical\")\n\
             permit (principal == Role::\"dtv\", action, resource == Category::\"medical\");\n"
        );
        let p = Policy::from_text(&text, "test.cedar", &purposes()).unwrap();
        for role in [Role::Dtv, Role::Ind, Role::Avim] {
            for purpose in DEFAULT_PURPOSES {
                let d = ask(&p, role, Category::Medical, purpose);
                assert!(!d.allowed, "{role} {purpose}");
                assert_eq!(d.rules, vec!["no-medical-for-state-agencies"]);
                assert_eq!(
                    d.deny_reason,
                    Some(DenyReason::NotPermittedForRoleAndPurpose)
                );
                assert_eq!(d.legal_basis, None);
            }
        }
    }

    #[test]
    fn monitor_and_privacy_officer_get_nothing() {
        let p = default_policy();
        for role in [Role::Monitor, Role::PrivacyOfficer] {
            for category in Category::ALL {
                for purpose in DEFAULT_PURPOSES {
                    for is_owner in [false, true] {
                        let d = p.decide(&Query {
                            role,
                            category,
                            purpose,
                            is_owner,
                            actor_present: true,
                        });
                        assert!(!d.allowed, "{role} {category} {purpose}");
                        assert_eq!(
                            d.deny_reason,
                            Some(DenyReason::NotPermittedForRoleAndPurpose)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn statistics_go_to_the_monitor_and_municipalities_on_a_legal_basis() {
        let p = default_policy();
        for role in [Role::Monitor, Role::Municipality] {
            for category in [Category::Perspective, Category::Outcome, Category::Shelter] {
                let d = p.decide_aggregate(role, category, "monitoring", false);
                assert!(d.allowed, "{role} {category}");
                assert_eq!(d.rules, vec!["statistics-monitoring"]);
                assert!(d.legal_basis.is_some());
                // Another purpose, or a category the tables do not use: no.
                assert!(!p.decide_aggregate(role, category, "return", false).allowed);
            }
            for category in [Category::Identity, Category::Medical, Category::Safety] {
                assert!(
                    !p.decide_aggregate(role, category, "monitoring", true)
                        .allowed
                );
            }
        }
        for role in [
            Role::Dtv,
            Role::Ind,
            Role::Avim,
            Role::Ngo,
            Role::PrivacyOfficer,
        ] {
            let d = p.decide_aggregate(role, Category::Outcome, "monitoring", true);
            assert!(!d.allowed, "{role}");
        }
        // A rule for statistics releases nothing of a case, and the reverse.
        let d = ask(&p, Role::Monitor, Category::Outcome, "monitoring");
        assert!(!d.allowed);
        let d = p.decide_aggregate(Role::Ind, Category::Outcome, "legalisation", true);
        assert!(!d.allowed, "ind-legalisation-consent permits receive only");
    }

    #[test]
    fn statistics_need_a_legal_basis_and_named_roles() {
        let e = load_err(
            "@id(\"stats-without-basis\")\n\
             permit (principal == Role::\"monitor\", action == Action::\"aggregate\", resource);\n",
        );
        assert!(
            e.contains("stats-without-basis") && e.contains("@legal_basis"),
            "{e}"
        );
        let e = load_err(
            "@id(\"stats-for-anyone\")\n@legal_basis(\"AVG art. 6(1)(e)\")\n\
             permit (principal, action == Action::\"aggregate\", resource);\n",
        );
        assert!(
            e.contains("stats-for-anyone") && e.contains("name the roles"),
            "{e}"
        );
        // A permit that leaves the action open allows no statistics, with a
        // legal basis or without.
        let text = "@id(\"open\")\n@legal_basis(\"AVG art. 6(1)(e)\")\n\
                    permit (principal == Role::\"monitor\", action, resource);\n";
        let p = Policy::from_text(text, "test.cedar", &purposes()).unwrap();
        let d = p.decide_aggregate(Role::Monitor, Category::Outcome, "monitoring", false);
        assert!(!d.allowed);
        assert_eq!(d.rules, vec!["open"]);
    }

    #[test]
    fn owner_gets_everything_on_a_legal_basis() {
        let p = default_policy();
        for role in [Role::Municipality, Role::Ngo] {
            for category in Category::ALL {
                let d = p.decide(&Query {
                    role,
                    category,
                    purpose: "case_consultation",
                    is_owner: true,
                    actor_present: true,
                });
                assert!(d.allowed, "{role} {category}");
                assert!(d.rules.contains(&"owner".to_string()));
                assert_eq!(
                    d.legal_basis.as_deref(),
                    Some("case owner (controller of the registration)")
                );
            }
        }
    }

    #[test]
    fn municipality_must_name_the_actor() {
        let p = default_policy();
        for is_owner in [false, true] {
            let d = p.decide(&Query {
                role: Role::Municipality,
                category: Category::Shelter,
                purpose: "case_consultation",
                is_owner,
                actor_present: false,
            });
            assert!(!d.allowed);
            assert_eq!(d.rules, vec!["municipality-names-actor"]);
            assert_eq!(d.deny_reason, Some(DenyReason::ActorRequired));
        }
        // Naming the actor would not help with a forbidden category: say so.
        let d = p.decide(&Query {
            role: Role::Municipality,
            category: Category::Safety,
            purpose: "case_consultation",
            is_owner: false,
            actor_present: false,
        });
        assert!(!d.allowed);
        assert_eq!(d.deny_reason, Some(DenyReason::ActorRequired));
    }

    #[test]
    fn typos_are_load_errors_naming_the_rule() {
        let e = load_err(
            "@id(\"dtv-return\")\n\
             permit (principal == Role::\"dtv\", action, resource == Category::\"medcal\")\n\
             when { context.purpose == Purpose::\"return\" };",
        );
        assert!(e.contains("test.cedar:1"), "{e}");
        assert!(e.contains("dtv-return"), "{e}");
        assert!(e.contains("medcal"), "{e}");

        let e = load_err(
            "// header\n\n@id(\"dtv-return\")\n\
             permit (principal == Role::\"dtv\", action, resource)\n\
             when { context.purpose == Purpose::\"retrun\" };",
        );
        assert!(e.contains("test.cedar:3"), "{e}");
        assert!(e.contains("dtv-return"), "{e}");
        assert!(e.contains("retrun"), "{e}");

        let e = load_err("@id(\"x\")\npermit (principal == Role::\"dvt\", action, resource);");
        assert!(e.contains("dvt") && e.contains("\"x\""), "{e}");

        // Attribute that does not exist in the context.
        let e =
            load_err("@id(\"ctx\")\npermit (principal, action, resource) when { context.owner };");
        assert!(e.contains("\"ctx\"") && e.contains("owner"), "{e}");

        // Wrong type in the resource slot: a rule that can never apply.
        let e = load_err(
            "@id(\"never\")\npermit (principal, action, resource == Purpose::\"return\");",
        );
        assert!(e.contains("\"never\""), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_line_and_rule() {
        let e = load_err(
            "@id(\"ok\")\npermit (principal, action, resource) when { context.is_owner };\n\n\
             @id(\"broken\")\npermit (principal, action, resource) when { context.is_owner && };\n",
        );
        assert!(e.starts_with("policy syntax error"), "{e}");
        assert!(e.contains("test.cedar:4: rule \"broken\""), "{e}");

        let e = load_err("@id(\"unterminated\")\npermit (principal, action, resource)");
        assert!(e.contains("test.cedar:1"), "{e}");
    }

    #[test]
    fn missing_and_duplicate_ids_are_errors() {
        let e = load_err("permit (principal, action, resource) when { context.is_owner };");
        assert!(e.contains("missing @id"), "{e}");

        let e = load_err(
            "@id(\"same\")\npermit (principal, action, resource) when { context.is_owner };\n\
             @id(\"same\")\nforbid (principal == Role::\"ngo\", action, resource);\n",
        );
        assert!(
            e.contains("test.cedar:3: rule \"same\": duplicate @id"),
            "{e}"
        );
        assert!(e.contains("line 1"), "{e}");
    }

    /// An emergency rule is told apart from the ordinary ones: alone it
    /// makes the decision emergency-only; beside an ordinary permit it is
    /// named but the ordinary rule carries the release. Misplaced or empty
    /// `@break_glass` does not load.
    #[test]
    fn emergency_rules_are_marked_and_checked() {
        let p = default_policy();
        let d = ask(&p, Role::Avim, Category::Shelter, "case_consultation");
        assert!(d.allowed && !d.ordinary, "{d:?}");
        assert_eq!(d.emergency, ["avim-emergency-safety"]);
        assert_eq!(
            d.legal_basis, None,
            "an emergency rule replaces no consent by itself"
        );
        let d = ask(&p, Role::Avim, Category::Safety, "return");
        assert!(d.allowed && d.ordinary, "{d:?}");
        assert_eq!(d.emergency, ["avim-emergency-safety"]);
        assert!(d.legal_basis.is_some());
        // The medical forbid still wins; the police never get medical data.
        let d = ask(&p, Role::Avim, Category::Medical, "case_consultation");
        assert!(!d.allowed && d.emergency.is_empty(), "{d:?}");
        for (text, want) in [
            (
                r#"@id("bg") @break_glass("x") forbid (principal, action, resource);"#,
                "@break_glass belongs on a permit",
            ),
            (
                r#"@id("bg") @break_glass(" ") permit (principal == Role::"avim", action, resource);"#,
                "@break_glass is empty",
            ),
            (
                r#"@id("bg") @break_glass("x") @legal_basis("y") permit (principal == Role::"avim", action, resource);"#,
                "@break_glass and @legal_basis on one rule",
            ),
            (
                r#"@id("bg") @break_glass("x") permit (principal == Role::"monitor", action == Action::"aggregate", resource);"#,
                "needs @legal_basis",
            ),
        ] {
            let e = load_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn annotations_are_checked() {
        let e = load_err("@id(\"a\")\n@legalbasis(\"x\")\npermit (principal, action, resource);");
        assert!(e.contains("@legalbasis"), "{e}");
        let e = load_err(
            "@id(\"a\")\n@reason(\"actor_missing\")\nforbid (principal, action, resource);",
        );
        assert!(e.contains("actor_missing"), "{e}");
        let e = load_err(
            "@id(\"a\")\n@reason(\"actor_required\")\npermit (principal, action, resource);",
        );
        assert!(e.contains("@reason belongs on a forbid"), "{e}");
        let e = load_err("@id(\"error:x\")\npermit (principal, action, resource);");
        assert!(e.contains("':'"), "{e}");
    }

    #[test]
    fn unknown_purpose_is_denied() {
        let p = default_policy();
        assert!(!p.knows_purpose("marketing"));
        assert!(p.knows_purpose("return"));
        let d = p.decide(&Query {
            role: Role::Dtv,
            category: Category::ResidenceProcedure,
            purpose: "marketing",
            is_owner: true,
            actor_present: true,
        });
        assert!(!d.allowed);
        assert_eq!(
            d.deny_reason,
            Some(DenyReason::NotPermittedForRoleAndPurpose)
        );
    }

    #[test]
    fn purposes_come_from_configuration() {
        // A node without "return" cannot load a policy that mentions it.
        let few = vec!["case_consultation".to_string()];
        let e = Policy::from_text(DEFAULT_POLICY, "default.cedar", &few)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown Purpose \"return\""), "{e}");

        // Purposes are quoted, not pasted, into the schema.
        let odd = vec!["a \"quoted\" \\ purpose".to_string()];
        let p = Policy::from_text(
            "@id(\"odd\")\n@legal_basis(\"test\")\n\
             permit (principal, action, resource) \
             when { context.purpose == Purpose::\"a \\\"quoted\\\" \\\\ purpose\" };",
            "t",
            &odd,
        )
        .unwrap();
        assert_eq!(p.purposes(), odd.as_slice());
        assert!(ask(&p, Role::Ngo, Category::Shelter, &odd[0]).allowed);

        assert!(matches!(
            Policy::from_text("", "t", &[]),
            Err(PolicyError::Schema(SchemaError::NoPurposes))
        ));
        let dup = vec!["x".to_string(), "x".to_string()];
        assert!(matches!(
            Policy::from_text("", "t", &dup),
            Err(PolicyError::Schema(SchemaError::DuplicatePurpose(_)))
        ));
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = Policy::from_text("// nothing yet\n", "t", &purposes()).unwrap();
        assert!(p.meta.is_empty());
        assert!(!ask(&p, Role::Ngo, Category::Shelter, "shelter").allowed);
    }

    #[test]
    fn splitter_respects_strings_and_comments() {
        let text = "// a; comment\n@id(\"a;b\")\n@description(\"semi; \\\" quote;\")\n\
                    permit (principal, action, resource);\n\n  forbid (principal, action, resource);\n";
        let stmts = split_statements(text);
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].line, 2);
        assert_eq!(stmts[1].line, 6);
    }

    #[test]
    fn load_reads_a_file_and_names_it_on_error() {
        let dir = std::env::temp_dir().join(format!("sluis-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.cedar");
        std::fs::write(&path, DEFAULT_POLICY).unwrap();
        assert_eq!(Policy::load(&path, &purposes()).unwrap().meta.len(), 14);
        let e = Policy::load(&dir.join("missing.cedar"), &purposes()).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }));
        assert!(e.to_string().contains("missing.cedar"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remembered_answers_equal_fresh_ones() {
        let p = default_policy();
        for (purpose_i, purpose) in DEFAULT_PURPOSES.iter().enumerate() {
            for (role_i, &role) in Role::ALL.iter().enumerate() {
                for (category_i, &category) in Category::ALL.iter().enumerate() {
                    for flags in 0..4 {
                        let q = Query {
                            role,
                            category,
                            purpose,
                            is_owner: flags & 2 != 0,
                            actor_present: flags & 1 != 0,
                        };
                        let (fresh, clean) = p.evaluate(role_i, category_i, purpose_i * 4 + flags);
                        assert!(clean);
                        assert_eq!(p.decide(&q), fresh);
                        assert_eq!(p.decide(&q), fresh);
                    }
                }
            }
        }
    }

    /// Prints timings; run with
    /// `cargo test --release -- --nocapture decide_timing`.
    #[test]
    fn decide_timing() {
        let p = default_policy();
        let rounds = 100u32;
        let mut allowed = 0usize;

        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for role in 0..Role::ALL.len() {
                for category in 0..Category::ALL.len() {
                    allowed += usize::from(p.evaluate(role, category, 1).0.allowed);
                }
            }
        }
        let questions = u32::try_from(Role::ALL.len() * Category::ALL.len()).unwrap();
        let cedar = start.elapsed() / (rounds * questions);

        let start = std::time::Instant::now();
        for _ in 0..rounds * 10 {
            for role in Role::ALL {
                for category in Category::ALL {
                    let q = Query {
                        role,
                        category,
                        purpose: "case_consultation",
                        is_owner: false,
                        actor_present: true,
                    };
                    allowed += usize::from(p.decide(&q).allowed);
                }
            }
        }
        let cached = start.elapsed() / (rounds * 10 * questions);
        println!("decide: Cedar evaluation {cedar:?}, remembered {cached:?} per call ({allowed})");
    }
}
