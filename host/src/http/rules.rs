//! What a request may carry: the headers only the host sets, and what a
//! redirect leads to and takes along.

use super::allow::origin;
use super::warnings::{HostWarnings, Severity};
use crate::printable::printable;
use crate::runtime::bindings::{HttpError, Method, Request};
use url::Url;

/// The guest's headers that a redirect carries to another origin; any other
/// (`authorization`, `cookie`, an API key under any name) stays behind.
const SAFE_ACROSS_ORIGINS: &[&str] = &["accept", "accept-language", "content-type"];

/// Where a redirect `status` with `location` from `from` leads, and what the
/// next hop sends: never from https down to http; a 303, or a 301 or 302 to
/// another origin, becomes a GET without a body; a hop to another origin
/// keeps only the guest's [`SAFE_ACROSS_ORIGINS`] headers (the config's
/// credentials are attached per hop, to the `base_url` origin only).
pub(super) fn follow_redirect(
    from: &Url,
    status: u16,
    location: &str,
    hop: &mut Request,
    warnings: &HostWarnings,
) -> Result<Url, HttpError> {
    let next = from.join(location).map_err(|e| {
        HttpError::Other(format!(
            "redirect to a bad location `{}`: {e}",
            printable(location, 1024)
        ))
    })?;
    if from.scheme() == "https" && next.scheme() == "http" {
        warnings.log(Severity::Warn, || {
            format!(
                "sandbox: refused a redirect from {} down to {}",
                printable(from.as_str(), 1024),
                printable(next.as_str(), 1024)
            )
        });
        return Err(HttpError::Denied(format!(
            "redirect from https down to http ({})",
            printable(next.as_str(), 1024)
        )));
    }
    let cross_origin = origin(&next) != origin(from);
    let to_get = status == 303 || (cross_origin && matches!(status, 301 | 302));
    if to_get && hop.method != Method::Head {
        hop.method = Method::Get;
        hop.body = None;
        hop.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    }
    if cross_origin {
        hop.headers.retain(|(k, _)| {
            SAFE_ACROSS_ORIGINS
                .iter()
                .any(|safe| k.eq_ignore_ascii_case(safe))
        });
    }
    Ok(next)
}

/// Headers the guest may not set: they pick the virtual host (`host`), frame
/// the body (`content-length`, `transfer-encoding`, `te`, `trailer`,
/// `expect`), choose how the answer is compressed (`accept-encoding`: the
/// host asks for gzip alone, the one encoding it decodes before it blanks
/// secrets), or govern the connection and proxies (`connection`,
/// `keep-alive`, `upgrade`, `proxy-*`), all of which are the host's to
/// decide.
const HOST_ONLY_HEADERS: &[&str] = &[
    "host",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "keep-alive",
    "trailer",
    "expect",
];

/// Refuses a guest header the host alone may set.
pub(super) fn check_guest_headers(headers: &[(String, String)]) -> Result<(), HttpError> {
    for (name, _) in headers {
        let host_only = HOST_ONLY_HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
            || name
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"));
        if host_only {
            return Err(HttpError::InvalidRequest(format!(
                "header `{}` is set by the host, not the connector",
                printable(name, 200)
            )));
        }
    }
    Ok(())
}
