//! `micro call SERVICE ENDPOINT [JSON]`: a JSON call through the server's proxy.

use micro_proto::proxy::{CallRequest, proxy_client::ProxyClient};

use crate::{
    cli::CallArgs,
    context::Context,
    failure::{Failure, call_failure},
};

pub(crate) async fn run(ctx: &Context, args: &CallArgs) -> Result<(), Failure> {
    let request: serde_json::Value = serde_json::from_str(&args.request)
        .map_err(|e| Failure::new(format!("The request is not valid JSON: {e}")))?;
    let mut metadata = std::collections::HashMap::new();
    for pair in &args.metadata {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Failure::new(format!("--metadata takes key=value, got {pair:?}")))?;
        metadata.insert(k.trim().to_owned(), v.to_owned());
    }
    let timeout_ms = u64::try_from(args.request_timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut req = ctx.request(CallRequest {
        service: args.service.clone(),
        endpoint: args.endpoint.clone(),
        json: request.to_string(),
        address: args.address.clone().unwrap_or_default(),
        metadata,
        timeout_ms,
    })?;
    // The proxy enforces the timeout; give it a moment more to say so itself.
    req.set_timeout(args.request_timeout + std::time::Duration::from_secs(2));
    let mut proxy = ProxyClient::new(ctx.connect().await?);
    let response = proxy.call(req).await.map_err(|status| {
        if status.code() == tonic::Code::DeadlineExceeded && status.details().is_empty() {
            return Failure::with_code(1, "Request timed out");
        }
        call_failure(micro::status::from_status("micro.proxy", &status))
    })?;
    let json = response.into_inner().json;
    if args.output == "raw" {
        println!("{json}");
    } else {
        let value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| Failure::new(format!("The proxy answered invalid JSON: {e}")))?;
        let pretty = serde_json::to_string_pretty(&value).unwrap_or(json);
        println!("{pretty}");
    }
    Ok(())
}
