//! `CaseService`: register, update, read and list cases.

use tonic::{Request, Response, Status};

use crate::gateway::{CaseRef, FindCases, GetCase, ReferCase, Scope};
use crate::rpc::Api;
use crate::rpc::convert::{
    case_data, case_input, categories, cleared_by_mask, idempotency_key, invalid, timestamp,
    withhold_reason,
};
use crate::rpc::proto::v1 as pb;

#[tonic::async_trait]
impl pb::case_service_server::CaseService for Api {
    async fn register_case(
        &self,
        req: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::RegisterCaseResponse>, Status> {
        self.call(
            "RegisterCase",
            req,
            |mut m| {
                let key = idempotency_key(std::mem::take(&mut m.request_id), &m);
                let data = m.data.ok_or_else(|| {
                    invalid("data", "data is required and must contain an identity")
                })?;
                let (data, subject_keys) = case_input(data)?;
                Ok((data, subject_keys, key))
            },
            async |ex, ctx, (data, subject_keys, key)| {
                ex.register_case(ctx, data, subject_keys, Some(key))
                    .await?
                    .try_map(|r| {
                        Ok(pb::RegisterCaseResponse {
                            case_id: r.case_id,
                            subject_pseudonym: r.pseudonym,
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn update_case(
        &self,
        req: Request<pb::UpdateCaseRequest>,
    ) -> Result<Response<pb::UpdateCaseResponse>, Status> {
        self.call(
            "UpdateCase",
            req,
            |mut m| {
                let key = idempotency_key(std::mem::take(&mut m.request_id), &m);
                let (data, subject_keys) = case_input(m.data.unwrap_or_default())?;
                let set: Vec<_> = data.iter().map(|(c, _)| *c).collect();
                let cleared = cleared_by_mask(m.update_mask.as_ref(), &set)?;
                Ok((m.case_id, (data, cleared), subject_keys, key))
            },
            async |ex, ctx, (case_id, (data, cleared), subject_keys, key)| {
                ex.update_case(ctx, case_id, data, cleared, subject_keys, Some(key))
                    .await?
                    .try_map(|version| {
                        Ok(pb::UpdateCaseResponse {
                            version: version as u64,
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        // A case another federation node holds (`x-sluis-holding-node`).
        let holding_node = req
            .metadata()
            .get(crate::rpc::federated::HOLDING_NODE)
            .map(|v| v.to_str().unwrap_or("-").to_string());
        // A peer node's call is answered here (one hop): never forwarded on,
        // not even to where a pseudonym's case is.
        let from_peer = crate::rpc::federated::from_peer(&req);
        self.call(
            "GetCase",
            req,
            |m| {
                let subject = match m.subject {
                    Some(pb::get_case_request::Subject::CaseId(id)) => CaseRef::Id(id),
                    Some(pb::get_case_request::Subject::SubjectPseudonym(p)) => {
                        CaseRef::Pseudonym(p)
                    }
                    None => {
                        return Err(invalid(
                            "subject",
                            "set case_id or subject_pseudonym to say which case",
                        ));
                    }
                };
                let q = GetCase {
                    subject,
                    purpose: m.purpose,
                    categories: categories("categories", &m.categories)?,
                    justification: (!m.emergency_justification.is_empty())
                        .then_some(m.emergency_justification),
                };
                Ok((q, holding_node))
            },
            async |ex, ctx, (q, holding_node)| {
                // A case another federation node holds: forwarded there,
                // to the node the caller names or, for a pseudonym it
                // received through this node, the node that issued it.
                let holding_node = match (holding_node, &q.subject) {
                    (Some(n), _) => Some(n),
                    (None, CaseRef::Pseudonym(p)) if !from_peer => {
                        crate::rpc::federated::located(ex, ctx, p).await
                    }
                    (None, _) => None,
                };
                if let Some(node) = holding_node.filter(|n| !ex.is_this_node(n)) {
                    // Boxed: the call to the peer (a gRPC client call) is by
                    // far the largest state of this method, and every
                    // local read would otherwise carry and copy its room.
                    return Box::pin(crate::rpc::federated::forward_get_case(ex, ctx, node, q))
                        .await;
                }
                ex.get_case(ctx, q).await?.try_map(|view| {
                    Ok(pb::GetCaseResponse {
                        case_id: view.case_id.unwrap_or_default(),
                        subject_pseudonym: view.pseudonym,
                        released: view
                            .released
                            .iter()
                            .map(|(c, _)| i32::from(c.code()))
                            .collect(),
                        data: Some(case_data(view.released)?),
                        withheld: view
                            .withheld
                            .into_iter()
                            .map(|w| pb::WithheldCategory {
                                category: i32::from(w.category.code()),
                                reason: withhold_reason(w.reason) as i32,
                                detail: w.detail,
                            })
                            .collect(),
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }

    async fn refer_case(
        &self,
        req: Request<pb::ReferCaseRequest>,
    ) -> Result<Response<pb::ReferCaseResponse>, Status> {
        let from_peer = crate::rpc::federated::from_peer(&req);
        self.call(
            "ReferCase",
            req,
            |m| {
                if from_peer {
                    return Err(crate::gateway::ExchangeError::Forbidden(
                        "a case is referred by its owner at its own node, not through a peer node"
                            .into(),
                    ));
                }
                Ok(ReferCase {
                    case_id: m.case_id,
                    to_node: m.to_node,
                    new_owner: m.new_owner,
                })
            },
            async |ex, ctx, r| {
                crate::rpc::federated::refer_case(ex, ctx, r)
                    .await?
                    .try_map(|holding_node| {
                        Ok(pb::ReferCaseResponse {
                            holding_node,
                            access_record_id: ctx.request_id.clone(),
                        })
                    })
            },
        )
        .await
    }

    async fn find_cases(
        &self,
        req: Request<pb::FindCasesRequest>,
    ) -> Result<Response<pb::FindCasesResponse>, Status> {
        self.call(
            "FindCases",
            req,
            |m| {
                let scope = match pb::find_cases_request::Scope::try_from(m.scope) {
                    Ok(pb::find_cases_request::Scope::Own) => Scope::Own,
                    Ok(pb::find_cases_request::Scope::Visible) => Scope::Visible,
                    _ => {
                        return Err(invalid("scope", "scope must be SCOPE_OWN or SCOPE_VISIBLE"));
                    }
                };
                Ok(FindCases {
                    scope,
                    purpose: m.purpose,
                    page_size: m.page_size,
                    after: m.page_token,
                })
            },
            async |ex, ctx, q| {
                ex.find_cases(ctx, q).await?.try_map(|(cases, next)| {
                    Ok(pb::FindCasesResponse {
                        cases: cases
                            .into_iter()
                            .map(|c| pb::CaseSummary {
                                case_id: c.case_id.unwrap_or_default(),
                                subject_pseudonym: c.pseudonym,
                                owner: c.owner,
                                version: c.version as u64,
                                updated_at: Some(timestamp(c.updated_at)),
                            })
                            .collect(),
                        next_page_token: next,
                        access_record_id: ctx.request_id.clone(),
                    })
                })
            },
        )
        .await
    }
}
