//! [`LongCall`]: what ends a stream a caller holds open before it ends by itself — its
//! caller's check made again every second ([`Recheck`]: a token revoked, a rule changed) and
//! the server stopping ([`Stopping`]). The platform's own streams and the streams every door
//! passes on to a service take both, through this one piece.

use std::pin::Pin;

use futures::Stream;
use micro_core::{Error, auth::Resource};

use crate::{
    auth::{Caller, guard::Recheck},
    proxy::ProxyService,
    stopping::Stopping,
};

/// The ends a long call is watched for; none of either lets its stream run as it is.
pub(crate) struct LongCall {
    recheck: Option<Recheck>,
    stopping: Option<Stopping>,
}

impl LongCall {
    /// What the server's guard left on `req`, a call of a platform service.
    pub(crate) fn of<T>(req: &tonic::Request<T>) -> Self {
        Self {
            recheck: Recheck::of(req),
            stopping: Stopping::of(req),
        }
    }

    /// A stream `proxy` opens for `caller` to `endpoint` of `service`: the rules for that
    /// endpoint are asked again, and the proxy's server stopping ends it.
    pub(crate) fn passed_on(
        proxy: &ProxyService,
        caller: &Caller,
        service: &str,
        endpoint: &str,
    ) -> Self {
        Self {
            recheck: proxy.authority().and_then(|authority| {
                Recheck::passed_on(authority, caller, Resource::service(service, endpoint))
            }),
            stopping: proxy.stopping(),
        }
    }

    /// Whether nothing would end the stream early (auth off, and no server to stop).
    pub(crate) fn is_unwatched(&self) -> bool {
        self.recheck.is_none() && self.stopping.is_none()
    }

    /// `stream`, ended with the refusal or the stop, made an `E` by `refuse`.
    pub(crate) fn end<T: Send + 'static, E: Send + 'static>(
        self,
        stream: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
        refuse: fn(Error) -> E,
    ) -> Pin<Box<dyn Stream<Item = Result<T, E>> + Send>> {
        let stream = Recheck::watch(self.recheck, stream, refuse);
        Stopping::end(self.stopping, stream, refuse)
    }
}
