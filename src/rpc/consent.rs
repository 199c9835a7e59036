//! `ConsentService`: the case owner grants, withdraws, lists consents and
//! gets signed receipts of them.

use tonic::{Request, Response, Status};

use crate::gateway::NewConsent;
use crate::gateway::validate;
use crate::rpc::Api;
use crate::rpc::convert::{categories, consent_pb, idempotency_key, invalid, millis, recipients};
use crate::rpc::proto::v1 as pb;

#[tonic::async_trait]
impl pb::consent_service_server::ConsentService for Api {
    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        self.call(
            "GrantConsent",
            req,
            |mut m| {
                let key = idempotency_key(std::mem::take(&mut m.request_id), &m);
                validate::line("evidence_ref", &m.evidence_ref, 256)?;
                if m.purposes.len() > 32 {
                    return Err(invalid("purposes", "purposes: at most 32"));
                }
                let consent = NewConsent {
                    case_id: m.case_id,
                    recipients: recipients(m.recipients)?,
                    categories: categories("categories", &m.categories)?,
                    purposes: m.purposes,
                    valid_from: m
                        .valid_from
                        .as_ref()
                        .map(|t| millis("valid_from", t))
                        .transpose()?,
                    valid_until: m
                        .valid_until
                        .as_ref()
                        .map(|t| millis("valid_until", t))
                        .transpose()?,
                    evidence_ref: m.evidence_ref,
                };
                Ok((consent, key))
            },
            async |ex, ctx, (c, key)| {
                ex.grant_consent(ctx, c, Some(key))
                    .await?
                    .try_map(|consent| {
                        Ok(pb::GrantConsentResponse {
                            consent: Some(consent_pb(&consent, ex.now())),
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        self.call(
            "WithdrawConsent",
            req,
            |mut m| {
                let key = idempotency_key(std::mem::take(&mut m.request_id), &m);
                validate::line("note", &m.note, 512)?;
                Ok((m.consent_id, m.note, key))
            },
            async |ex, ctx, (id, note, key)| {
                ex.withdraw_consent(ctx, id, note, Some(key))
                    .await?
                    .try_map(|consent| {
                        Ok(pb::WithdrawConsentResponse {
                            consent: Some(consent_pb(&consent, ex.now())),
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn list_consents(
        &self,
        req: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        self.call(
            "ListConsents",
            req,
            |m| Ok(m.case_id),
            async |ex, ctx, case_id| {
                ex.list_consents(ctx, case_id).await?.try_map(|consents| {
                    let now = ex.now();
                    Ok(pb::ListConsentsResponse {
                        consents: consents.iter().map(|c| consent_pb(c, now)).collect(),
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn get_consent_receipt(
        &self,
        req: Request<pb::GetConsentReceiptRequest>,
    ) -> Result<Response<pb::GetConsentReceiptResponse>, Status> {
        self.call(
            "GetConsentReceipt",
            req,
            |m| Ok(m.consent_id),
            async |ex, ctx, id| {
                ex.consent_receipt(ctx, id).await?.try_map(|r| {
                    Ok(pb::GetConsentReceiptResponse {
                        signed_note: r.signed_note,
                        verifier_key: r.verifier_key,
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}
