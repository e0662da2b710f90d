//! The dashboard's markup: one layout for every page (title, navigation, who is signed in),
//! escaping, and the small pieces pages repeat (a form's CSRF field, a table). Server-rendered
//! HTML with no script: every page works without JavaScript, and every input has a label.

use std::fmt::Write;

/// Escapes `s` for HTML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `s` for a URL's query value or path segment.
pub(crate) fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The style every page shares: plain, readable, no external resource.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}\
header{background:#1d2330;color:#fff;padding:.6em 2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#cfe0ff;text-decoration:none}header a:hover{text-decoration:underline}\
header .who{margin-left:auto;display:flex;gap:1em;align-items:center}\
header form{margin:0}main{padding:1em 2em;max-width:72em}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}h3{font-size:1.05em}\
table{border-collapse:collapse;background:#fff;margin:.5em 0}\
td,th{padding:.3em 1em;text-align:left;border-bottom:1px solid #e3e6ea;vertical-align:top}\
pre{background:#fff;border:1px solid #e3e6ea;padding:.6em;overflow:auto;max-height:40em}\
label{display:block;margin:.4em 0 .1em;font-weight:600}\
input,select,textarea{font:inherit;padding:.25em;min-width:18em}textarea{width:40em;height:6em}\
fieldset{border:1px solid #d5d9df;margin:.5em 0}button{font:inherit;padding:.3em 1em;cursor:pointer}\
.error{background:#fdecec;border:1px solid #e9a3a3;padding:.6em}\
.note{color:#5a6270}.inline{display:inline}.inline label{display:inline}\
.charts{display:flex;gap:1em;flex-wrap:wrap}.chart{margin:.3em 0}figcaption{font-size:.85em;color:#5a6270}\
td pre{margin:0;max-height:12em}";

/// What the layout says about the visitor.
pub(crate) struct Who<'a> {
    /// The signed-in account's name, if any.
    pub(crate) name: Option<&'a str>,
    /// The namespace the pages show.
    pub(crate) namespace: &'a str,
    /// The CSRF token forms carry.
    pub(crate) csrf: &'a str,
    /// Whether the platform checks callers (with auth off, nobody signs in).
    pub(crate) auth: bool,
}

/// A whole page: `title` (also the `<h1>` the body starts with is the page's own), the
/// navigation, and `body`.
pub(crate) fn page(title: &str, who: &Who<'_>, body: &str) -> String {
    let mut out = opening(title, who);
    out.push_str(body);
    out.push_str(CLOSING);
    out
}

/// A page up to where its body starts (a page that grows as messages arrive sends this first,
/// then the body, then [`CLOSING`]).
pub(crate) fn opening(title: &str, who: &Who<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · Micro</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    out.push_str(&header(who));
    out.push_str("<main>");
    out
}

/// What ends every page.
pub(crate) const CLOSING: &str = "</main></body></html>";

/// The top bar: the sections, and who is signed in (with a log-out button) or a log-in link.
pub(crate) fn header(who: &Who<'_>) -> String {
    let ns = url(who.namespace);
    let mut out = String::from("<header><nav aria-label=\"sections\">");
    for (path, label) in [
        ("/", "Services"),
        ("/store", "Store"),
        ("/config", "Config"),
        ("/events", "Events"),
        ("/runtime", "Runtime"),
        ("/auth", "Auth"),
    ] {
        let _ = write!(out, "<a href=\"{path}?namespace={ns}\">{label}</a> ");
    }
    out.push_str("</nav><div class=\"who\">");
    let _ = write!(
        out,
        "<span>namespace <strong>{}</strong></span>",
        escape(who.namespace)
    );
    match (who.auth, who.name) {
        (false, _) => out.push_str("<span class=\"note\">auth is off</span>"),
        (true, Some(name)) => {
            let _ = write!(
                out,
                "<span>signed in as <strong>{}</strong></span>\
                 <form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Log out</button></form>",
                escape(name),
                csrf_field(who.csrf)
            );
        }
        (true, None) => out.push_str("<a href=\"/login\">Log in</a>"),
    }
    out.push_str("</div></header>");
    out
}

/// The hidden field every form posts, checked against the visitor's CSRF cookie.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// A table with `headings` and `rows`, every cell escaped.
pub(crate) fn table(caption: &str, headings: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "<table><caption class=\"note\">{}</caption><tr>",
        escape(caption)
    );
    for h in headings {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// An error box saying `status` and `detail`.
pub(crate) fn error_box(status: &str, detail: &str) -> String {
    // Cut as every door cuts an error's texts: they often quote what the caller sent.
    use micro_core::error::bounded;
    format!(
        "<div class=\"error\" role=\"alert\"><strong>{}</strong>: {}</div>",
        escape(&bounded(status)),
        escape(&bounded(detail))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b&c/d"), "a+b%26c%2Fd");
    }
}
