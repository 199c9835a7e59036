//! Refusals by the transport, recorded like any other.

use std::sync::Arc;

use crate::gateway::{Exchange, ExchangeError, RequestCtx};
use crate::net::tls::ConnectionInfo;
use crate::rpc::status::status;

/// tonic refuses a message beyond its decoding cap before any handler runs,
/// with OUT_OF_RANGE and without our request id or an access record. This
/// layer turns that answer into RESOURCE_EXHAUSTED with an `x-request-id`
/// and records the refusal like any other, so no refusal goes unrecorded.
#[derive(Clone)]
pub struct TransportRefusals {
    ex: Arc<Exchange>,
    max_message_bytes: usize,
}

impl TransportRefusals {
    pub(super) fn new(ex: Arc<Exchange>, max_message_bytes: usize) -> Self {
        TransportRefusals {
            ex,
            max_message_bytes,
        }
    }
}

impl<S> tower::Layer<S> for TransportRefusals {
    type Service = RefusalService<S>;
    fn layer(&self, inner: S) -> RefusalService<S> {
        RefusalService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RefusalService<S> {
    inner: S,
    layer: TransportRefusals,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RefusalService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .map(|c| c.peer.clone());
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        // The clone is not ready; the original is: take it, leave the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let refused_by_decoder = resp
                .headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"11");
            let Some(peer) = peer.filter(|_| refused_by_decoder) else {
                return Ok(resp);
            };
            let request_id = uuid::Uuid::now_v7().to_string();
            let ctx = RequestCtx {
                request_id: request_id.clone(),
                peer,
                actor: None,
            };
            let e = layer
                .ex
                .refuse(
                    &ctx,
                    &method,
                    ExchangeError::TooLarge(format!(
                        "request is larger than this node accepts: at most {} bytes per message",
                        layer.max_message_bytes
                    )),
                )
                .await;
            Ok(status(e, &request_id).into_http())
        })
    }
}
