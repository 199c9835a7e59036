//! A request this node forwards to the federation node that holds the case
//! (ARCHITECTURE.md, "Federation"). The holding node decides, pseudonymises
//! and records; this node records the forwarding under the same request id,
//! and, as for every answer, makes that record durable before the answer
//! leaves: the result is a `Recorded` like any other.

use std::sync::Arc;

use crate::federation::Federation;
use crate::gateway::exchange::{Exchange, RequestCtx};
use crate::gateway::{ExchangeError, validate};
use crate::model::{Caller, Category};
use crate::tlog::{Decision, Recorded};

/// What the holding node said it released and withheld (with the reason
/// codes of `WithholdReason`), for this node's record.
pub(crate) struct Relayed {
    pub(crate) released: Vec<Category>,
    pub(crate) withheld: Vec<(Category, String)>,
    /// The case the holding node answered about (its id, which the caller
    /// receives anyway), so this node's record names it: the subject access
    /// report finds the forwarding by it.
    pub(crate) case_id: Option<String>,
}

/// Where a forwarded call goes: the federation node that holds the case,
/// and the case's id when the caller named it.
pub(crate) struct Target<'a> {
    pub(crate) node: &'a str,
    pub(crate) case_id: Option<&'a str>,
}

/// How a forwarding record's detail begins; the node's id and a `'`
/// follow ([`forwarded_to`] reads it back).
const FORWARDED_TO: &str = "forwarded to federation node '";

/// How the detail of a record of a call that did not reach node's answer
/// begins (this node refused it first, or the node could not be asked).
const NOT_ANSWERED_BY: &str = "not answered by federation node '";

/// The node a forwarding record's `detail` names (see
/// [`Exchange::forwarded`]); `None` for any other record.
pub(crate) fn forwarded_to(detail: &str) -> Option<&str> {
    detail.strip_prefix(FORWARDED_TO)?.split('\'').next()
}

impl Exchange {
    /// Whether `node` is this node's own id in its federation.
    pub(crate) fn is_this_node(&self, node: &str) -> bool {
        self.federation
            .as_ref()
            .is_some_and(|f| f.node_id() == node)
    }

    /// Forwards `method` to federation node `node` for the caller: checks
    /// here what this node can check (the node id, the purpose, that the
    /// directory is valid), so bad input never leaves; runs `call` (the
    /// gRPC call, made by `rpc`) with the federation and the caller; records
    /// what came back, or how it failed, under this request's id.
    ///
    /// The record names the case: `case_id` when the caller named it, else
    /// the one the holding node answered about.
    ///
    /// Errors: `Invalid` (`x-sluis-holding-node`, case id, purpose), `FailedPrecondition` (no
    /// federation, or its directory not valid now), whatever `call` returns
    /// (`PeerNode` for the holding node's own answer), `AuditUnavailable`.
    pub(crate) async fn forwarded<T>(
        &self,
        ctx: &RequestCtx,
        method: &str,
        Target { node, case_id }: Target<'_>,
        purpose: &str,
        asked: &[Category],
        call: impl AsyncFnOnce(&Federation, &Caller) -> Result<(T, Relayed), ExchangeError>,
    ) -> Result<Recorded<T>, ExchangeError> {
        let mut rec = self.record(ctx, method);
        rec.asked = super::release::asked(asked);
        let result = async {
            let caller = self.caller(ctx)?;
            validate::node_id("x-sluis-holding-node", node)?;
            let federation: &Arc<Federation> = self.federation.as_ref().ok_or_else(|| {
                ExchangeError::FailedPrecondition(
                    "this node is not in a federation: send no x-sluis-holding-node".into(),
                )
            })?;
            if let Some(id) = case_id {
                validate::uuid("case_id", id)?;
                rec.case_id = Some(id.to_string());
            }
            self.check_purpose(purpose)?;
            rec.purpose = Some(purpose.to_string());
            federation
                .current(self.now())
                .map_err(|e| ExchangeError::FailedPrecondition(e.to_string()))?;
            let result = call(federation, caller).await;
            // The record says the call was forwarded only once the holding
            // node answered it (its records hold the call too): the report
            // made here expects that node's line of every such call, and
            // flags it when one is missing.
            if matches!(
                &result,
                Ok(_) | Err(ExchangeError::PeerNode { .. } | ExchangeError::Referred(_))
            ) {
                rec.detail = format!("{FORWARDED_TO}{node}'");
            } else {
                rec.detail = format!("{NOT_ANSWERED_BY}{node}'");
            }
            if let Err(e) = &result {
                // The operator's side of a failed forwarding: which node, the
                // code, and why (node ids and codes only, never whom it was for).
                tracing::warn!(
                    request_id = %ctx.request_id,
                    holding_node = node,
                    code = e.code().name(),
                    error = %e,
                    "forwarded call failed"
                );
            }
            result
        }
        .await;
        let result = result.map(|(answer, relayed)| {
            rec.decision = if relayed.released.is_empty() {
                Decision::Denied
            } else if relayed.withheld.is_empty() {
                Decision::Allowed
            } else {
                Decision::Partial
            };
            if let Some(id) = relayed
                .case_id
                .filter(|id| validate::uuid("case_id", id).is_ok())
            {
                rec.case_id = Some(id);
            }
            rec.released = relayed.released;
            rec.withheld = relayed.withheld;
            answer
        });
        self.finish(rec, result).await
    }
}
