//! Pages that grow as messages arrive: a server stream's answers, a service's logs followed.
//! The page is sent in pieces (chunked), so the browser shows each message when it comes, with
//! no script. The stream behind it ends when the visitor leaves (the connection closes and the
//! call is cancelled), when the service ends it, or when the platform does (a revoked token,
//! the server stopping).

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use futures::{Stream, StreamExt, stream};

use super::{html, session::Visit};

/// A page titled `title` whose body is `head`, then each of `pieces` as it comes.
pub(crate) fn page<S>(visit: &Visit, title: &str, head: String, pieces: S) -> Response
where
    S: Stream<Item = String> + Send + 'static,
{
    let opening = html::opening(title, &visit.who()) + &head;
    let body = stream::once(async move { opening })
        .chain(pieces)
        .chain(stream::once(async { html::CLOSING.to_owned() }))
        .map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Shown as it arrives, not held back for sniffing or caching.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    visit.respond(response)
}
