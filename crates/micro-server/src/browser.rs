//! What browsers send on their own, read the one way every HTTP door reads it (the gateway and
//! the dashboard): cookies, bounded in length, and whether a request comes from the door's own
//! origin — a cookie counts, and a form may act, only for a request that does.

use http::{HeaderMap, header};

/// The longest cookie value read (a token or session id is far shorter).
pub(crate) const MAX_COOKIE: usize = 8 * 1024;

/// The value of cookie `name`, if the request carries one, not empty and of sane length.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= MAX_COOKIE)
}

/// Whether the request comes from the door's own origin, as far as the browser says: its
/// `Sec-Fetch-Site` is `same-origin` or `none` (typed or bookmarked) or absent (an older
/// browser, or no browser), and its `Origin`, if any, names the request's host (`Host`, else
/// `authority`, the URI's). A link from another site is `cross-site` even for a GET, which
/// sends no `Origin`.
pub(crate) fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let fetched_here = text(header::HeaderName::from_static("sec-fetch-site"))
        .is_none_or(|s| s == "same-origin" || s == "none");
    let host = text(header::HOST).or(authority);
    fetched_here
        && match text(header::ORIGIN) {
            None => true,
            Some(origin) => origin.split_once("://").map(|(_, h)| h) == host,
        }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn cookies_are_read_by_name_and_bounded() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; micro-token=abc; micro-csrf="),
        );
        assert_eq!(cookie(&headers, "micro-token"), Some("abc"));
        assert_eq!(cookie(&headers, "micro-csrf"), None);
        assert_eq!(cookie(&headers, "micro-tok"), None);
        let long = format!("micro-session={}", "x".repeat(MAX_COOKIE + 1));
        headers.insert(header::COOKIE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(cookie(&headers, "micro-session"), None);
    }

    #[test]
    fn another_origin_is_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8082"));
        assert!(same_origin(&headers, None));
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:8082"));
        assert!(same_origin(&headers, None));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&headers, None));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&headers, None));
        headers.remove("sec-fetch-site");
        headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(!same_origin(&headers, None));
        // Without `Host` (HTTP/2), the URI's authority is the host.
        headers.remove("host");
        assert!(same_origin(&headers, Some("127.0.0.1:8080")));
        assert!(!same_origin(&headers, None));
    }
}
