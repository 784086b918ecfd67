//! The console's bundle, built by `console/build.sh` into `console/dist/` (committed) and
//! compiled into the binary: the node serves every byte itself, nothing from outside.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The page URLs of the single-page app; each serves `index.html` to a live session.
pub(super) const PAGES: &[&str] = &[
    "/console",
    "/console/",
    "/console/status",
    "/console/peers",
    "/console/catalogue",
    "/console/map",
    "/console/datasets/{id}",
    "/console/requests",
    "/console/transfers",
    "/console/audit",
    "/console/revocations",
];

const INDEX: &str = include_str!("../../../console/dist/index.html");
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../console/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../console/dist/app.css"),
    ),
];

/// Only this node's own scripts, styles and API; images inline (Leaflet's icons); no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

fn hardened(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub(super) fn index() -> Response {
    hardened(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            INDEX,
        )
            .into_response(),
    )
}

pub(super) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => hardened(
            (
                [
                    (header::CONTENT_TYPE, *kind),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *body,
            )
                .into_response(),
        ),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
