//! The dashboard: a page, a script and a style sheet embedded in the binary (no build
//! step, nothing fetched from elsewhere), using the JSON routes and the event stream next
//! to them. The Content-Security-Policy allows scripts and styles from this origin only,
//! with no inline code at all.

use axum::extract::OriginalUri;
use axum::http::header;
use axum::response::{Html, IntoResponse};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Only files of this origin run or style the page, and it may only talk to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-cache"),
];

/// The path the page's files are under: the page's own path as a directory, so the
/// dashboard works at `/` and under a prefix, opened as `/prefix` or `/prefix/`. A path
/// with characters outside the plain set falls back to relative links.
fn base_of(path: &str) -> String {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~%".contains(&b));
    if !plain || !path.starts_with('/') {
        return "./".to_owned();
    }
    if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    }
}

/// `GET /`. The page itself needs no token: it holds no data, and asks for the token when
/// the API answers 401.
pub(crate) async fn serve(OriginalUri(uri): OriginalUri) -> impl IntoResponse {
    let page = PAGE.replace("{{base}}", &base_of(uri.path()));
    (HEADERS, Html(page))
}

/// `GET /dashboard/app.js`.
pub(crate) async fn script() -> impl IntoResponse {
    (
        HEADERS,
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

/// `GET /dashboard/app.css`.
pub(crate) async fn style() -> impl IntoResponse {
    (
        HEADERS,
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_found_under_the_pages_path() {
        assert_eq!(base_of("/"), "/");
        assert_eq!(base_of("/ops"), "/ops/");
        assert_eq!(base_of("/ops/"), "/ops/");
        assert_eq!(base_of("/a\"><script>"), "./", "no markup from the path");
    }

    #[test]
    fn the_page_has_no_inline_code() {
        assert!(!PAGE.contains("<script>"), "scripts come from app.js");
        assert!(!PAGE.contains("<style"), "styles come from app.css");
        assert!(!PAGE.contains(" style="), "no style attributes");
        assert!(!PAGE.contains(" onclick="), "no inline handlers");
    }
}
