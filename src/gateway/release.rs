//! The release decision for one read, per category: policy × consent ×
//! presence → a plan of what is released and what is withheld, and why.
//!
//! A pure function of what the gateway has loaded (the policy, the case's
//! consents, which categories the case holds) and of the request, so the
//! rules can be read and tested here without a store, a node or a clock.
//! The order of the checks is the order of the reasons a caller can act on:
//!
//! 1. the policy (Cedar, per category): default deny; a `forbid` wins;
//!    `actor_required` when the rule wants the acting employee named;
//! 2. consent, unless a deciding permit declares a `@legal_basis` — never
//!    for `identity`, which needs the subject's consent except for the owner
//!    who registered it; withdrawn, expired and not-yet-valid consents are
//!    told apart ([`consent::evaluate`]);
//! 3. presence: a permitted, consented category the case does not hold is
//!    withheld as `not_present`.
//!
//! An emergency rule (`@break_glass`) is a permit that counts only for a
//! request with a written justification and the acting employee named
//! (`Asker::justification`, `actor_present`): then a category it permits
//! is released without consent where the ordinary rules and consent would
//! not release it (never `identity`, which needs consent). Without both, a
//! category that only an emergency rule permits is withheld as
//! `justification_required`. Each released category carries its basis
//! (`CategoryBasis`) for the access record.

use crate::model::consent::{self, Consent, Millis, Verdict};
use crate::model::{Caller, Category, Role, WithholdReason};
use crate::policy::{DenyReason, Policy, Query};
use crate::tlog::{BasisKind, CategoryBasis, Decision};

/// A category not released, why (the code the API and the log carry), and
/// the detail in words: the deciding rules or consent, never request content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Withheld {
    pub(crate) category: Category,
    pub(crate) reason: WithholdReason,
    pub(crate) detail: String,
}

/// Who asks, for what, and when: the request's side of the decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asker<'a> {
    pub(crate) caller: &'a Caller,
    /// A purpose the policy knows (checked before).
    pub(crate) purpose: &'a str,
    /// The caller registered the case.
    pub(crate) is_owner: bool,
    /// The request names the acting employee (`x-sluis-actor`).
    pub(crate) actor_present: bool,
    /// The instant consent is evaluated at (ms since the epoch, UTC).
    pub(crate) now: Millis,
    /// The emergency justification the request carries, checked
    /// (`validate::justification`); it counts only with `actor_present`.
    pub(crate) justification: Option<&'a str>,
}

impl Asker<'_> {
    /// The request may invoke an emergency rule: a justification and the
    /// acting employee.
    fn emergency(&self) -> Option<&str> {
        self.justification.filter(|_| self.actor_present)
    }
}

/// The case's side of the decision: what it holds and who consented to what.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holdings<'a> {
    /// Categories the case holds data in.
    pub(crate) present: &'a [Category],
    /// Every consent recorded for the case, with its events.
    pub(crate) consents: &'a [Consent],
}

/// What to release and what to withhold, with what the access record
/// needs: the deciding rules and consents (sorted, without repeats) and the
/// decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReleasePlan {
    /// In the order asked.
    pub(crate) released: Vec<Category>,
    /// In the order asked.
    pub(crate) withheld: Vec<Withheld>,
    pub(crate) rules: Vec<String>,
    pub(crate) consents: Vec<String>,
    /// Per released category, in the order released, why.
    pub(crate) bases: Vec<CategoryBasis>,
    /// Allowed (all released), partial, or denied (none released).
    pub(crate) decision: Decision,
}

/// The categories a read asks for: as given, or all when none are named;
/// sorted, without repeats.
pub(crate) fn asked(categories: &[Category]) -> Vec<Category> {
    let mut asked = if categories.is_empty() {
        Category::ALL.to_vec()
    } else {
        categories.to_vec()
    };
    asked.sort();
    asked.dedup();
    asked
}

/// Whether the policy releases some category other than `identity` to a
/// non-owner in `role` for `purpose` on a legal basis, without consent: then
/// every case of another owner holds something that role may read for that
/// purpose (`FindCases` with scope VISIBLE lists them all).
pub(crate) fn legal_basis_reaches(
    policy: &Policy,
    role: Role,
    purpose: &str,
    actor_present: bool,
) -> bool {
    Category::ALL
        .iter()
        .filter(|c| **c != Category::Identity)
        .any(|&category| {
            let d = policy.decide(&Query {
                role,
                category,
                purpose,
                is_owner: false,
                actor_present,
            });
            d.allowed && d.legal_basis.is_some()
        })
}

/// Whether the policy releases anything of a case it does not own to
/// `role`, for any purpose and category, with or without the acting
/// person named: a consent to a role that cannot could never let anything
/// through.
pub(crate) fn can_ever_receive(policy: &Policy, role: Role) -> bool {
    policy.purposes().iter().any(|purpose| {
        Category::ALL.iter().any(|&category| {
            [false, true].into_iter().any(|actor_present| {
                policy
                    .decide(&Query {
                        role,
                        category,
                        purpose,
                        is_owner: false,
                        actor_present,
                    })
                    .allowed
            })
        })
    })
}

/// Decides each category in `asked` (see the module doc for the rules).
pub(crate) fn plan(
    policy: &Policy,
    asker: &Asker<'_>,
    case: &Holdings<'_>,
    asked: &[Category],
) -> ReleasePlan {
    let mut released = Vec::new();
    let mut withheld = Vec::new();
    let mut rules = Vec::new();
    let mut consents = Vec::new();
    let mut bases = Vec::new();
    for &category in asked {
        let d = policy.decide(&Query {
            role: asker.caller.role,
            category,
            purpose: asker.purpose,
            is_owner: asker.is_owner,
            actor_present: asker.actor_present,
        });
        rules.extend(d.rules.iter().cloned());
        let mut withhold = |reason: WithholdReason, detail: String| {
            withheld.push(Withheld {
                category,
                reason,
                detail,
            })
        };
        if !d.allowed {
            let reason = match d.deny_reason {
                Some(DenyReason::ActorRequired) => WithholdReason::ActorRequired,
                _ => WithholdReason::NotPermittedForRoleAndPurpose,
            };
            let detail = if d.rules.is_empty() {
                "no policy rule permits it (default deny)".to_string()
            } else {
                format!("policy: {}", d.rules.join(", "))
            };
            withhold(reason, detail);
            continue;
        }
        // An emergency rule applies only to an emergency request, and never
        // to identity (consent only, whatever the policy says).
        let emergency = match asker.emergency() {
            Some(justification) if !d.emergency.is_empty() && category != Category::Identity => {
                Some(CategoryBasis {
                    category,
                    kind: BasisKind::Emergency,
                    rules: d.emergency.clone(),
                    text: justification.to_string(),
                })
            }
            _ => None,
        };
        if !d.ordinary && emergency.is_none() {
            withhold(
                WithholdReason::JustificationRequired,
                format!(
                    "only the emergency rule {} permits it: a written justification and the acting employee are needed",
                    d.emergency.join(", ")
                ),
            );
            continue;
        }
        // Identity is never released on a legal basis alone: it needs the
        // subject's explicit consent, except to the owner who registered it.
        let legal = d.ordinary
            && d.legal_basis.is_some()
            && (category != Category::Identity || asker.is_owner);
        let ordinary_rules = || -> Vec<String> {
            d.rules
                .iter()
                .filter(|r| !d.emergency.contains(r))
                .cloned()
                .collect()
        };
        let mut basis = if legal {
            Some(CategoryBasis {
                category,
                kind: BasisKind::LegalBasis,
                rules: ordinary_rules(),
                text: d.legal_basis.clone().unwrap_or_default(),
            })
        } else {
            None
        };
        if !legal && d.ordinary {
            let verdict = consent::evaluate(
                case.consents,
                asker.caller,
                category,
                asker.purpose,
                asker.now,
            );
            let refused = match verdict {
                Verdict::Covered(id) => {
                    basis = Some(CategoryBasis {
                        category,
                        kind: BasisKind::Consent,
                        rules: ordinary_rules(),
                        text: id.clone(),
                    });
                    consents.push(id);
                    None
                }
                Verdict::Withdrawn(id) => Some((
                    WithholdReason::ConsentWithdrawn,
                    format!("consent {id} was withdrawn"),
                )),
                Verdict::Expired(id) => Some((
                    WithholdReason::ConsentExpired,
                    format!("consent {id} has expired"),
                )),
                Verdict::NotYetValid(id) => Some((
                    WithholdReason::ConsentNotYetValid,
                    format!("consent {id} is not valid yet"),
                )),
                Verdict::None => Some((
                    WithholdReason::NoConsent,
                    "no consent covers this recipient, category and purpose".into(),
                )),
            };
            // Where consent does not cover it, an emergency may.
            if let Some((reason, detail)) = refused
                && emergency.is_none()
            {
                withhold(reason, detail);
                continue;
            }
        }
        if !case.present.contains(&category) {
            withhold(
                WithholdReason::NotPresent,
                "the case holds no data in this category".into(),
            );
            continue;
        }
        released.push(category);
        if let Some(b) = basis.or(emergency) {
            bases.push(b);
        }
    }
    rules.sort();
    rules.dedup();
    consents.sort();
    consents.dedup();
    let decision = if released.is_empty() {
        Decision::Denied
    } else if withheld.is_empty() {
        Decision::Allowed
    } else {
        Decision::Partial
    };
    ReleasePlan {
        released,
        withheld,
        rules,
        consents,
        bases,
        decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::model::consent::{ConsentEvent, EventKind, Recipient};

    /// A small policy with one rule of each kind the plan treats apart.
    const POLICY: &str = r#"
@id("owner")
@legal_basis("case owner")
permit (principal, action == Action::"receive", resource)
when { context.is_owner };

@id("dtv-residence-law")
@legal_basis("a law")
permit (principal == Role::"dtv", action == Action::"receive", resource)
when {
  context.purpose == Purpose::"return" &&
  resource in [Category::"residence_procedure", Category::"identity"]
};

@id("dtv-perspective-consent")
permit (
  principal == Role::"dtv",
  action == Action::"receive",
  resource == Category::"perspective"
)
when { context.purpose == Purpose::"return" };

@id("municipality-consent")
permit (principal == Role::"municipality", action == Action::"receive", resource)
when { context.purpose == Purpose::"case_consultation" };

@id("municipality-names-actor")
@reason("actor_required")
forbid (principal == Role::"municipality", action == Action::"receive", resource)
unless { context.actor_present };
"#;

    const NOW: Millis = 1_000_000;

    fn policy() -> Policy {
        let purposes: Vec<String> = crate::model::DEFAULT_PURPOSES
            .iter()
            .map(|p| p.to_string())
            .collect();
        Policy::from_text(POLICY, "test.cedar", &purposes).expect("test policy loads")
    }

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            participant: id.into(),
            role,
            oin: None,
            node: None,
        }
    }

    fn consent(id: &str, to: Role, cats: &[Category], purpose: &str) -> Consent {
        Consent {
            id: id.into(),
            case_id: "case".into(),
            recorded_by: "owner".into(),
            recipients: vec![Recipient::Role(to)],
            categories: cats.to_vec(),
            purposes: vec![purpose.into()],
            valid_from: 0,
            valid_until: None,
            evidence_ref: String::new(),
            created_at: 0,
            events: vec![],
        }
    }

    fn ask(
        who: &Caller,
        purpose: &str,
        is_owner: bool,
        consents: &[Consent],
        asked: &[Category],
    ) -> ReleasePlan {
        plan(
            &policy(),
            &Asker {
                caller: who,
                purpose,
                is_owner,
                actor_present: true,
                now: NOW,
                justification: None,
            },
            &Holdings {
                present: &Category::ALL,
                consents,
            },
            asked,
        )
    }

    fn reasons(p: &ReleasePlan) -> Vec<(Category, WithholdReason)> {
        p.withheld.iter().map(|w| (w.category, w.reason)).collect()
    }

    #[test]
    fn asked_defaults_to_all_sorted_once() {
        assert_eq!(asked(&[]), Category::ALL.to_vec());
        assert_eq!(
            asked(&[Category::Shelter, Category::Identity, Category::Shelter]),
            [Category::Identity, Category::Shelter]
        );
    }

    #[test]
    fn default_deny_names_no_rule() {
        let ngo = caller("ngo-1", Role::Ngo);
        let p = ask(&ngo, "shelter", false, &[], &[Category::Shelter]);
        assert!(p.released.is_empty());
        assert_eq!(
            reasons(&p),
            [(
                Category::Shelter,
                WithholdReason::NotPermittedForRoleAndPurpose
            )]
        );
        assert_eq!(
            p.withheld[0].detail,
            "no policy rule permits it (default deny)"
        );
        assert!(p.rules.is_empty());
        assert_eq!(p.decision, Decision::Denied);
    }

    #[test]
    fn legal_basis_replaces_consent_but_never_for_identity() {
        let dtv = caller("dtv", Role::Dtv);
        let p = ask(
            &dtv,
            "return",
            false,
            &[],
            &[Category::Identity, Category::ResidenceProcedure],
        );
        assert_eq!(p.released, [Category::ResidenceProcedure]);
        assert_eq!(
            reasons(&p),
            [(Category::Identity, WithholdReason::NoConsent)]
        );
        assert_eq!(p.rules, ["dtv-residence-law"]);
        assert_eq!(p.decision, Decision::Partial);

        // With consent, identity goes too, and the consent is named.
        let c = consent("c1", Role::Dtv, &[Category::Identity], "return");
        let p = ask(&dtv, "return", false, &[c], &[Category::Identity]);
        assert_eq!(p.released, [Category::Identity]);
        assert_eq!(p.consents, ["c1"]);
        assert_eq!(p.decision, Decision::Allowed);
    }

    #[test]
    fn the_owner_reads_identity_on_its_legal_basis() {
        let owner = caller("gemeente", Role::Municipality);
        let p = ask(
            &owner,
            "case_consultation",
            true,
            &[],
            &[Category::Identity],
        );
        assert_eq!(p.released, [Category::Identity]);
        assert!(p.consents.is_empty());
        assert!(p.rules.contains(&"owner".to_string()));
    }

    #[test]
    fn consent_withdrawn_expired_or_not_yet_valid_is_told_apart() {
        let dtv = caller("dtv", Role::Dtv);
        let perspective = [Category::Perspective];
        let mut withdrawn = consent("w", Role::Dtv, &perspective, "return");
        withdrawn.events.push(ConsentEvent {
            kind: EventKind::Withdrawn,
            at: NOW - 1,
            by: "owner".into(),
            note: String::new(),
        });
        let mut expired = consent("e", Role::Dtv, &perspective, "return");
        expired.valid_until = Some(NOW);
        let mut early = consent("n", Role::Dtv, &perspective, "return");
        early.valid_from = NOW + 1;
        for (c, reason, detail) in [
            (
                withdrawn,
                WithholdReason::ConsentWithdrawn,
                "consent w was withdrawn",
            ),
            (
                expired,
                WithholdReason::ConsentExpired,
                "consent e has expired",
            ),
            (
                early,
                WithholdReason::ConsentNotYetValid,
                "consent n is not valid yet",
            ),
        ] {
            let p = ask(&dtv, "return", false, &[c], &perspective);
            assert_eq!(reasons(&p), [(Category::Perspective, reason)]);
            assert_eq!(p.withheld[0].detail, detail);
            assert!(p.consents.is_empty());
            assert_eq!(p.decision, Decision::Denied);
        }
        // Consent for another purpose covers nothing.
        let other = consent("o", Role::Dtv, &perspective, "shelter");
        let p = ask(&dtv, "return", false, &[other], &perspective);
        assert_eq!(
            reasons(&p),
            [(Category::Perspective, WithholdReason::NoConsent)]
        );
    }

    #[test]
    fn a_rule_that_wants_the_actor_named_withholds_until_it_is() {
        let gemeente = caller("gemeente-2", Role::Municipality);
        let c = consent(
            "c",
            Role::Municipality,
            &[Category::Shelter],
            "case_consultation",
        );
        let mut asker = Asker {
            caller: &gemeente,
            purpose: "case_consultation",
            is_owner: false,
            actor_present: false,
            now: NOW,
            justification: None,
        };
        let case = Holdings {
            present: &Category::ALL,
            consents: std::slice::from_ref(&c),
        };
        let p = plan(&policy(), &asker, &case, &[Category::Shelter]);
        assert_eq!(
            reasons(&p),
            [(Category::Shelter, WithholdReason::ActorRequired)]
        );
        assert_eq!(p.withheld[0].detail, "policy: municipality-names-actor");
        asker.actor_present = true;
        let p = plan(&policy(), &asker, &case, &[Category::Shelter]);
        assert_eq!(p.released, [Category::Shelter]);
        assert_eq!(p.consents, ["c"]);
    }

    #[test]
    fn permitted_and_consented_but_absent_is_not_present() {
        let dtv = caller("dtv", Role::Dtv);
        let c = consent("c", Role::Dtv, &[Category::Perspective], "return");
        let p = plan(
            &policy(),
            &Asker {
                caller: &dtv,
                purpose: "return",
                is_owner: false,
                actor_present: true,
                now: NOW,
                justification: None,
            },
            &Holdings {
                present: &[Category::Identity],
                consents: &[c],
            },
            &[Category::Perspective],
        );
        assert_eq!(
            reasons(&p),
            [(Category::Perspective, WithholdReason::NotPresent)]
        );
        // The consent decided, even though nothing was there to release.
        assert_eq!(p.consents, ["c"]);
    }

    /// An emergency rule counts only with a justification and the actor;
    /// it releases without consent (where consent would not), never
    /// identity, and each released category says on what ground.
    #[test]
    fn an_emergency_rule_needs_a_justification_and_the_actor() {
        let text = format!(
            "{POLICY}\n{}",
            r#"
@id("dtv-emergency")
@break_glass("acute danger")
permit (principal == Role::"dtv", action == Action::"receive", resource)
when { resource in [Category::"shelter", Category::"perspective", Category::"identity"] };
"#
        );
        let purposes: Vec<String> = crate::model::DEFAULT_PURPOSES
            .iter()
            .map(|p| p.to_string())
            .collect();
        let policy = Policy::from_text(&text, "test.cedar", &purposes).unwrap();
        let dtv = caller("dtv", Role::Dtv);
        let c = consent("c", Role::Dtv, &[Category::Perspective], "return");
        let consents = [c];
        let case = Holdings {
            present: &Category::ALL,
            consents: &consents,
        };
        let asked = [
            Category::Identity,
            Category::ResidenceProcedure,
            Category::Shelter,
            Category::Perspective,
        ];
        let mut asker = Asker {
            caller: &dtv,
            purpose: "return",
            is_owner: false,
            actor_present: true,
            now: NOW,
            justification: None,
        };
        // No justification: shelter (emergency only) is withheld as such.
        let p = plan(&policy, &asker, &case, &asked);
        assert_eq!(
            p.released,
            [Category::ResidenceProcedure, Category::Perspective]
        );
        assert_eq!(
            reasons(&p),
            [
                (Category::Identity, WithholdReason::NoConsent),
                (Category::Shelter, WithholdReason::JustificationRequired),
            ]
        );
        // A justification without the actor is no emergency either.
        asker.justification = Some("threat");
        asker.actor_present = false;
        let p = plan(&policy, &asker, &case, &asked);
        assert!(!p.released.contains(&Category::Shelter));
        // Both: shelter on the emergency; perspective still on its consent
        // and residence on its legal basis; identity never.
        asker.actor_present = true;
        let p = plan(&policy, &asker, &case, &asked);
        assert_eq!(
            p.released,
            [
                Category::ResidenceProcedure,
                Category::Shelter,
                Category::Perspective
            ]
        );
        assert_eq!(
            reasons(&p),
            [(Category::Identity, WithholdReason::NoConsent)]
        );
        let bases: Vec<(Category, BasisKind, &str)> = p
            .bases
            .iter()
            .map(|b| (b.category, b.kind, b.text.as_str()))
            .collect();
        assert_eq!(
            bases,
            [
                (Category::ResidenceProcedure, BasisKind::LegalBasis, "a law"),
                (Category::Shelter, BasisKind::Emergency, "threat"),
                (Category::Perspective, BasisKind::Consent, "c"),
            ]
        );
        assert_eq!(p.bases[0].rules, ["dtv-residence-law"]);
        assert_eq!(p.bases[1].rules, ["dtv-emergency"]);
        assert_eq!(p.bases[2].rules, ["dtv-perspective-consent"]);
    }
}
