//! `baseline`: the smallest hyper 1.x server that answers like the gateway, so
//! that `bench.sh` can measure both on the same machine in the same run.
//!
//! ```text
//! baseline --listen 127.0.0.1:PORT --mode redirect [--max-seconds N]
//! baseline --listen 127.0.0.1:PORT --mode file --file PATH --content-type image/png [--max-seconds N]
//! ```
//!
//! Every request gets the same answer: a `302` to a fixed URL (`redirect`), or
//! `200` with the bytes of a file and the headers of a cached image (`file`).
//! The process exits on SIGTERM, on Ctrl-C, and after `--max-seconds`
//! (default 120) so that a forgotten instance never lingers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A redirect shaped like the gateway's: a 26-character scan id in the query.
const LOCATION: &str = "https://shop.example/signup?cl_scan=01JABCDEFGHJKMNPQRSTVWXYZ0";
/// What the gateway sends with a rendered QR image.
const IMAGE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

const USAGE: &str = "usage: baseline --listen ADDR --mode redirect [--max-seconds N]\n       \
                     baseline --listen ADDR --mode file --file PATH --content-type TYPE [--max-seconds N]";

enum Mode {
    Redirect,
    File {
        body: Bytes,
        content_type: HeaderValue,
        etag: HeaderValue,
    },
}

struct Args {
    listen: SocketAddr,
    mode: Mode,
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("baseline: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("baseline: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let deadline = tokio::time::sleep(Duration::from_secs(args.max_seconds));
    tokio::select! {
        () = accept_loop(listener, Arc::new(args.mode)) => {}
        () = deadline => eprintln!("baseline: --max-seconds {} reached, exiting", args.max_seconds),
        () = terminated() => {}
    }
    // Returning drops the runtime, which cancels every open connection.
    ExitCode::SUCCESS
}

async fn accept_loop(listener: TcpListener, mode: Arc<Mode>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("baseline: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mode = mode.clone();
        let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
            let resp = respond(&mode);
            async move { Ok::<_, Infallible>(resp) }
        });
        tokio::spawn(async move {
            // Client resets are routine under load; nothing to report.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(mode: &Mode) -> Response<Full<Bytes>> {
    match mode {
        Mode::Redirect => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::FOUND;
            let h = resp.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static(LOCATION));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Mode::File {
            body,
            content_type,
            etag,
        } => {
            let mut resp = Response::new(Full::new(body.clone()));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, content_type.clone());
            h.insert(header::ETAG, etag.clone());
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(IMAGE_CACHE_CONTROL),
            );
            resp
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("baseline: cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut listen, mut mode, mut file, mut content_type) = (None, None, None, None);
    let mut max_seconds = 120;
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err("help requested".into());
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {value:?}: {e}"))?,
                )
            }
            "--mode" => mode = Some(value),
            "--file" => file = Some(value),
            "--content-type" => content_type = Some(value),
            "--max-seconds" => {
                max_seconds = value
                    .parse()
                    .map_err(|e| format!("--max-seconds {value:?}: {e}"))?
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let mode = match mode.as_deref() {
        Some("redirect") => Mode::Redirect,
        Some("file") => {
            let path = file.ok_or("--mode file needs --file")?;
            let content_type = content_type.ok_or("--mode file needs --content-type")?;
            let body = std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let etag = format!("\"{:016x}\"", fnv1a64(&body));
            Mode::File {
                content_type: HeaderValue::try_from(content_type)
                    .map_err(|e| format!("--content-type: {e}"))?,
                etag: HeaderValue::try_from(etag).map_err(|e| format!("etag: {e}"))?,
                body: Bytes::from(body),
            }
        }
        Some(other) => return Err(format!("--mode must be redirect or file, not {other:?}")),
        None => return Err("--mode is required".into()),
    };
    Ok(Args {
        listen,
        mode,
        max_seconds,
    })
}

/// The same kind of tag the gateway sends: a quoted 64-bit FNV-1a hash.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
