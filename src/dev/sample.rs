//! The sample LVV case: what the demo registers once and the benchmark
//! registers by the thousand, and the two consents both record for it. One
//! builder, so that the case the benchmark measures is the case the demo
//! shows, and a change to the case data reaches both.

use tonic::Request;

use crate::model::Category;
use crate::rpc::proto::v1 as pb;

/// The dev participant that registers (owns) the sample cases.
pub const OWNER: &str = "gemeente-utrecht";
/// The owner's employee acting in the demo and the benchmark; sent as
/// `x-sluis-actor`, which the default policy requires of municipalities.
pub const OWNER_ACTOR: &str = "mw-0042";
/// The NGO that guides the migrant and receives what the migrant consents to.
pub const NGO: &str = "ngo-vluchtelingenwerk";

/// Sample case `i`, every category filled. The fields that vary with `i`
/// (name, V-number) have a fixed width, so every sample case encodes to the
/// same size and so does every answer to a given participant: the
/// benchmark's baseline replays one answer for all cases. The identity is
/// fictional.
pub fn case_data(i: u64) -> pb::CaseData {
    pb::CaseData {
        identity: Some(pb::Identity {
            name: format!("Proef Persoon {:08}", i % 100_000_000),
            date_of_birth: "1990-04-01".into(),
            nationality: "ERI".into(),
            v_number: v_number(i),
            bsn: String::new(),
        }),
        residence_procedure: Some(pb::ResidenceProcedure {
            status: "regular application rejected; no procedure pending".into(),
            last_decision_date: "2026-03-15".into(),
            pending: false,
        }),
        shelter: Some(pb::Shelter {
            location: "LVV Utrecht, locatie Oost".into(),
            since: "2026-04-01".into(),
            until: String::new(),
            notes: "shares a room".into(),
        }),
        guidance: Some(pb::Guidance {
            organisation: NGO.into(),
            notes: "weekly talks about the future".into(),
        }),
        perspective: Some(pb::Perspective {
            kind: pb::PerspectiveKind::Return as i32,
            milestones: vec![pb::Milestone {
                description: "travel document requested".into(),
                date: "2026-10-01".into(),
                reached: false,
            }],
            ..Default::default()
        }),
        medical: Some(pb::Medical {
            notes: "needs regular care".into(),
        }),
        safety: Some(pb::Safety {
            notes: "no incidents".into(),
        }),
        outcome: Some(pb::Outcome {
            reached: false,
            kind: pb::PerspectiveKind::Unspecified as i32,
            date: String::new(),
            ..Default::default()
        }),
    }
}

/// Case `i` of a population for the statistics demo: sample case data with
/// an intake in the 180 days before `end` and, for about two in three, an
/// outcome between intake and `end`, skewed as LVV outcomes are (many
/// legalisations and independent departures, few forced departures and
/// onward migrations). The identities are fictional.
pub(crate) fn population_case(i: u64, end: time::Date) -> pb::CaseData {
    use pb::OutcomeKind as K;
    use pb::PerspectiveKind as P;
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 13;
    let mut d = case_data(1_000_000 + i);
    let intake = end - time::Duration::days(1 + (h % 180) as i64);
    let scenario = [
        P::Undetermined,
        P::Return,
        P::Legalisation,
        P::Legalisation,
        P::OnwardMigration,
    ][(h / 180 % 5) as usize];
    d.perspective = Some(pb::Perspective {
        kind: scenario as i32,
        intake_scenario: scenario as i32,
        intake_date: intake.to_string(),
        milestones: vec![],
    });
    let kind = match h / 900 % 20 {
        0..=5 => K::Legalisation,
        6..=9 => K::DepartureIndependent,
        10..=13 => K::OutOfSight,
        14..=16 => K::DepartureUnsupervised,
        17..=18 => K::OnwardMigration,
        _ => K::DepartureForced,
    };
    let days_left = (end - intake).whole_days().max(1);
    d.outcome = (!(h / 9000).is_multiple_of(3)).then(|| pb::Outcome {
        outcome_kind: kind as i32,
        date: (intake + time::Duration::days((h / 27_000) as i64 % days_left)).to_string(),
        ..Default::default()
    });
    d
}

/// The V-number of sample case `i`: ten digits, distinct for the first
/// 10⁹ cases.
pub fn v_number(i: u64) -> String {
    format!("{:010}", 3_000_000_000u64 + i % 1_000_000_000)
}

/// What one consent of a sample case covers.
#[derive(Clone, Debug)]
pub struct ConsentTerms {
    pub recipient: pb::recipient::Recipient,
    pub categories: Vec<Category>,
    pub purposes: Vec<&'static str>,
}

impl ConsentTerms {
    /// The `GrantConsent` request that records these terms for `case_id`,
    /// valid from now on, without an end, under a fresh `request_id` (a
    /// client resends the same request to retry it safely).
    pub fn request(&self, case_id: &str, evidence_ref: String) -> pb::GrantConsentRequest {
        pb::GrantConsentRequest {
            case_id: case_id.to_string(),
            recipients: vec![pb::Recipient {
                recipient: Some(self.recipient.clone()),
            }],
            categories: self.categories.iter().map(|c| c.code().into()).collect(),
            purposes: self.purposes.iter().map(|p| p.to_string()).collect(),
            valid_from: None,
            valid_until: None,
            evidence_ref,
            request_id: uuid::Uuid::now_v7().to_string(),
        }
    }
}

/// The two consents a sample case gets: (a) identity, perspective and
/// shelter to the NGO by name, for case consultation, shelter and guidance;
/// (b) perspective to DT&V as a role, for return. Together with the default
/// policy's legal bases, five readers then each receive a different set of
/// categories.
pub fn consents() -> [ConsentTerms; 2] {
    [
        ConsentTerms {
            recipient: pb::recipient::Recipient::Participant(NGO.into()),
            categories: vec![Category::Identity, Category::Perspective, Category::Shelter],
            purposes: vec!["case_consultation", "shelter", "guidance"],
        },
        ConsentTerms {
            recipient: pb::recipient::Recipient::Role(pb::Role::Dtv as i32),
            categories: vec![Category::Perspective],
            purposes: vec!["return"],
        },
    ]
}

/// `msg` as a request on behalf of the employee `actor` (`x-sluis-actor`).
/// An actor that cannot be a header value is left out, as if none was given.
pub fn with_actor<T>(msg: T, actor: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(a) = actor
        && let Ok(v) = a.parse()
    {
        r.metadata_mut().insert(crate::rpc::ACTOR_HEADER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_sample_case_encodes_to_the_same_size() {
        let size = case_data(0).encoded_len();
        for i in [1, 42, 99_999_999, 999_999_999, 1_000_000_000, u64::MAX] {
            assert_eq!(case_data(i).encoded_len(), size, "case {i}");
        }
        assert_eq!(v_number(7).len(), 10);
    }
}
