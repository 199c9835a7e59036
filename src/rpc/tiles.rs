//! The C2SP tlog-tiles read API (<https://c2sp.org/tlog-tiles>) over HTTPS
//! on the node's one mTLS listener: `GET /checkpoint`,
//! `GET /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`, with
//! the log's prefix the listener's root.
//!
//! Why on the gRPC listener rather than a port of its own: the same TLS
//! acceptor, CRLs, reloads, connection caps and identity apply without a
//! second copy of any of them, and [`Edge`](super::Edge) — which every
//! request on that listener passes — applies the identity rules, the
//! requests-in-flight bounds and the access record to these requests as to
//! every other. The paths cannot collide: gRPC's are `/<package>.<Service>/`.
//! The listener speaks HTTP/2 (ALPN `h2`), as gRPC needs.
//!
//! Answers, per the spec: the checkpoint as `text/plain; charset=utf-8`,
//! not cached; tiles and bundles as `application/octet-stream`, full ones
//! cacheable as immutable; a tile past the latest checkpoint 404. Every
//! answer is `private` (it depends on who asks) and carries `x-request-id`;
//! an error is its message as text, with the HTTP status of its gRPC code
//! ([`super::status::http_error`]).

use bytes::Bytes;

use crate::gateway::{Exchange, ExchangeError, RequestCtx, Served, tiles_method, validate};
use crate::rpc::REQUEST_ID_HEADER;
use crate::rpc::status::http_error;
use crate::tlog::tiles::{self, Resource};

type HttpResponse = http::Response<tonic::body::Body>;

/// Whether a request is for the read API (by path alone; a gRPC path is
/// `/<package>.<Service>/<Method>`).
pub(super) fn is_tiles_path(path: &str) -> bool {
    path == "/checkpoint" || path.starts_with("/tile/")
}

/// How the access record names the request.
pub(super) fn label(path: &str) -> &'static str {
    tiles_method(parse(path).ok().as_ref())
}

fn parse(path: &str) -> Result<Resource, ExchangeError> {
    tiles::parse(path.strip_prefix('/').unwrap_or(path))
        .map_err(|e| ExchangeError::Invalid(validate::Invalid::new("path", e.to_string())))
}

/// Answers one request of a caller the edge admitted (its identity rules
/// passed): refused if it is not a GET of a path of the API, else what
/// [`Exchange::read_tiles`] gives. Recorded either way. Returns the
/// answer and its gRPC code (for telemetry).
pub(super) async fn serve(
    ex: &Exchange,
    ctx: &RequestCtx,
    method: &http::Method,
    path: &str,
) -> (HttpResponse, i32) {
    let label = label(path);
    let asked = if method == http::Method::GET {
        parse(path)
    } else {
        Err(ExchangeError::Malformed(format!(
            "the tlog-tiles read API answers GET only, not {method}"
        )))
    };
    let resource = match asked {
        Ok(r) => r,
        Err(e) => {
            let not_get = method != http::Method::GET;
            let e = ex.refuse(ctx, label, e).await;
            let code = e.code() as i32;
            let mut resp = http_error(e, &ctx.request_id);
            if not_get {
                *resp.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            }
            return (resp, code);
        }
    };
    match ex.read_tiles(ctx, resource).await {
        Ok(served) => (ok(served.into_inner(), &ctx.request_id), 0),
        Err(e) => {
            let code = e.code() as i32;
            (http_error(e, &ctx.request_id), code)
        }
    }
}

/// A year, the longest `max-age` caches are asked to honour (RFC 9111).
const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// The checkpoint changes with every one signed.
const MUTABLE: &str = "private, no-cache";

fn ok(served: Served, request_id: &str) -> HttpResponse {
    let (body, content_type, cache) = match served {
        Served::Checkpoint(note) => (Bytes::from(note), "text/plain; charset=utf-8", MUTABLE),
        // A partial tile of a given width never changes either, but the
        // spec lets a log drop it once the full tile exists.
        Served::Tile { bytes, full } => (
            Bytes::from(bytes),
            "application/octet-stream",
            if full { IMMUTABLE } else { MUTABLE },
        ),
    };
    let mut resp = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(body)));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}
