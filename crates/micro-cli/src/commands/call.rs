//! `micro call SERVICE ENDPOINT [JSON]` and `micro stream SERVICE ENDPOINT [JSON]`: JSON calls
//! through the server's proxy. Dynamic commands end here too.

use std::{collections::HashMap, time::Duration};

use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};
use tokio_stream::StreamExt;

use crate::{
    cli::CallArgs,
    context::Context,
    failure::{Failure, call_failure},
};

/// How a call prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Indented JSON.
    Json,
    /// The JSON as the proxy sent it.
    Raw,
}

impl Output {
    fn parse(name: &str) -> Self {
        if name == "raw" { Self::Raw } else { Self::Json }
    }

    fn print(self, json: &str) -> Result<(), Failure> {
        if self == Self::Raw {
            println!("{json}");
            return Ok(());
        }
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Failure::new(format!("The proxy answered invalid JSON: {e}")))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| json.to_owned())
        );
        Ok(())
    }
}

/// `micro call`.
pub(crate) async fn run(ctx: &Context, args: &CallArgs) -> Result<(), Failure> {
    unary(
        ctx,
        request(args)?,
        args.request_timeout,
        Output::parse(&args.output),
    )
    .await
}

/// `micro stream`.
pub(crate) async fn run_stream(ctx: &Context, args: &CallArgs) -> Result<(), Failure> {
    streaming(ctx, request(args)?, Output::parse(&args.output)).await
}

fn request(args: &CallArgs) -> Result<CallRequest, Failure> {
    let request: serde_json::Value = serde_json::from_str(&args.request)
        .map_err(|e| Failure::new(format!("The request is not valid JSON: {e}")))?;
    let metadata = pairs(&args.metadata, "--metadata")?;
    Ok(CallRequest {
        service: args.service.clone(),
        endpoint: args.endpoint.clone(),
        json: request.to_string(),
        address: args.address.clone().unwrap_or_default(),
        metadata,
        timeout_ms: u64::try_from(args.request_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
        version: args.version.clone().unwrap_or_default(),
        selector: pairs(&args.select, "--select")?,
    })
}

/// `key=value` arguments of `flag` as a map.
fn pairs(args: &[String], flag: &str) -> Result<HashMap<String, String>, Failure> {
    let mut map = HashMap::new();
    for pair in args {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Failure::new(format!("{flag} takes key=value, got {pair:?}")))?;
        map.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(map)
}

fn failure(status: &tonic::Status) -> Failure {
    if status.code() == tonic::Code::DeadlineExceeded && status.details().is_empty() {
        return Failure::with_code(1, "Request timed out");
    }
    call_failure(micro::status::from_status("micro.proxy", status))
}

/// A unary call; prints the response.
pub(crate) async fn unary(
    ctx: &Context,
    call: CallRequest,
    timeout: Duration,
    output: Output,
) -> Result<(), Failure> {
    let mut proxy = ProxyClient::new(ctx.connect().await?);
    let mut req = ctx.request(call)?;
    // The proxy enforces the timeout; give it a moment more to say so itself.
    req.set_timeout(timeout + Duration::from_secs(2));
    let response = proxy.call(req).await.map_err(|s| failure(&s))?;
    output.print(&response.into_inner().json)
}

/// A server-streaming call; prints each response as it arrives.
pub(crate) async fn streaming(
    ctx: &Context,
    call: CallRequest,
    output: Output,
) -> Result<(), Failure> {
    let mut proxy = ProxyClient::new(ctx.connect().await?);
    let req = ctx.request(call)?;
    let mut responses = proxy
        .stream(req)
        .await
        .map_err(|s| failure(&s))?
        .into_inner();
    while let Some(item) = responses.next().await {
        let response = item.map_err(|s| failure(&s))?;
        output.print(&response.json)?;
    }
    Ok(())
}
