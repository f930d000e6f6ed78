//! The dashboard: one self-contained page (no build step, nothing fetched from elsewhere)
//! that uses the JSON routes and the event stream next to it.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const PAGE: &str = include_str!("dashboard.html");

/// The page's inline script and style are its only code; it may only talk to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`. The page itself needs no token: it holds no data, and asks for the token when
/// the API answers 401.
pub(crate) async fn serve() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
}
