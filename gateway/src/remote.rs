//! The subcommands' calls to a running gateway's API (`codelink report`,
//! `import`, `export`): the key to send, and one request over a fresh
//! HTTP/1.1 connection.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;

/// Where the gateway is and which key to send (the flags every such
/// subcommand takes).
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the gateway.
    #[arg(long, env = "CODELINK_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (admin, or a creator's for what it may see). Default: the
    /// admin key in --data-dir.
    #[arg(long, env = "CODELINK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Data dir to read the admin key from when --key is absent.
    #[arg(long, env = "CODELINK_DATA_DIR", default_value = "./codelink-data")]
    pub data_dir: PathBuf,
}

/// `--key`, else the admin key in `--data-dir` (as `codelink serve` wrote it).
pub fn key_or_admin(remote: &Remote) -> anyhow::Result<String> {
    match &remote.key {
        Some(k) => Ok(k.to_string()),
        None => {
            let path = remote.data_dir.join(crate::keys::ADMIN_KEY_FILE);
            Ok(std::fs::read_to_string(&path)
                .with_context(|| format!("no --key given and cannot read {}", path.display()))?
                .trim()
                .to_string())
        }
    }
}

/// One request; its status and body. `body`: content type and bytes.
pub async fn call(
    base: &str,
    key: &str,
    method: http::Method,
    path_and_query: &str,
    body: Option<(&str, Bytes)>,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    send(base, Some(key), method, path_and_query, body).await
}

/// [`call`], with the key optional (`codelink healthcheck` sends none).
pub async fn send(
    base: &str,
    key: Option<&str>,
    method: http::Method,
    path_and_query: &str,
    body: Option<(&str, Bytes)>,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let base = url::Url::parse(base).map_err(|e| anyhow!("--url {base:?}: {e}"))?;
    if base.scheme() != "http" {
        bail!("--url must be an http:// URL (put TLS in front of the gateway, not in the CLI)");
    }
    let host = base
        .host_str()
        .ok_or_else(|| anyhow!("--url has no host"))?;
    let port = base.port_or_known_default().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| {
            format!("cannot connect to {host}:{port}; is `codelink serve` running?")
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, format!("{host}:{port}"));
    if let Some(key) = key {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let payload = match body {
        Some((content_type, bytes)) => {
            req = req.header(http::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    let resp = sender.send_request(req.body(Full::new(payload))?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The API's error message in `body`, or the body itself.
pub fn error_message(status: http::StatusCode, body: &[u8]) -> String {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    match value.as_ref().and_then(|v| v["error"]["message"].as_str()) {
        Some(m) => format!("{status}: {m}"),
        None => format!("{status}: {}", String::from_utf8_lossy(body)),
    }
}
