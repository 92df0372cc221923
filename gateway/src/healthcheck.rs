//! `codelink healthcheck`: one GET to a running gateway; exit status 0 on a
//! 2xx answer, else 1 with the reason on stderr. The container image's
//! `HEALTHCHECK`, which has neither curl nor a shell.

use anyhow::{anyhow, bail};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to GET (http://; `/readyz` to check the backends too).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// Fail when no answer comes within this long (milliseconds).
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&args.url).map_err(|e| anyhow!("--url {:?}: {e}", args.url))?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let call = crate::remote::send(url.as_str(), None, http::Method::GET, &path, None);
    let (status, body) = tokio::time::timeout(Duration::from_millis(args.timeout_ms), call)
        .await
        .map_err(|_| anyhow!("{}: no answer within {} ms", args.url, args.timeout_ms))??;
    if !status.is_success() {
        bail!(
            "{}: {}",
            args.url,
            crate::remote::error_message(status, &body)
        );
    }
    Ok(())
}
