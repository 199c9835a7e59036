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
//! cacheable as immutable, bundles gzip-compressed for a client whose
//! `Accept-Encoding` takes gzip; a tile past the latest checkpoint 404. Every
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
    headers: &http::HeaderMap,
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
            let e = ex
                .refuse(ctx, label, e, crate::gateway::Named::Nothing)
                .await;
            let code = e.code() as i32;
            let mut resp = http_error(e, &ctx.request_id);
            if not_get {
                *resp.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
            }
            // An answer to HEAD has no content (RFC 9110 §9.3.2): data on it
            // is a stream error to an HTTP/2 client.
            if method == http::Method::HEAD {
                *resp.body_mut() = tonic::body::Body::empty();
                resp.headers_mut().remove(http::header::CONTENT_LENGTH);
            }
            return (resp, code);
        }
    };
    let compress = matches!(resource, Resource::Entries(_)) && accepts_gzip(headers);
    match ex.read_tiles(ctx, resource).await {
        Ok(served) => (ok(served.into_inner(), compress, &ctx.request_id), 0),
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

/// Whether `Accept-Encoding` (RFC 9110 §12.5.3) names gzip with a
/// non-zero weight.
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `bytes` gzip-compressed (RFC 1952).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}

fn ok(served: Served, gzip_it: bool, request_id: &str) -> HttpResponse {
    let (body, content_type, cache) = match served {
        Served::Checkpoint(note) => (Bytes::from(note), "text/plain; charset=utf-8", MUTABLE),
        // A partial tile of a given width never changes either, but the
        // spec lets a log drop it once the full tile exists.
        Served::Tile { bytes, full } => (
            Bytes::from(if gzip_it { gzip(&bytes) } else { bytes }),
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
    if gzip_it {
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
    }
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_accepted() {
        let asks = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&h)
        };
        assert!(asks("gzip"));
        assert!(asks("identity, GZIP;q=0.5"));
        assert!(!asks("identity"));
        assert!(!asks("gzip;q=0, identity"));
        assert!(!asks("x-gzip2"));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
    }
}
