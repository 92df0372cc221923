//! `codelink import FILE` and `codelink export`: codes in bulk through a
//! running gateway's API.
//!
//! An import is sent in requests of `--chunk-rows` rows (1,000 by default),
//! each the file's header and a run of its records, so that a progress bar
//! can move and no request nears the body limit. The answers' line numbers
//! are the request's; they are mapped back to the file's. A code given
//! twice in the file is caught here (its later lines fail, as the API
//! fails them within one request), since its two lines may go in two
//! requests.

use super::csv;
use crate::remote;
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportMode {
    /// Create new codes, update those whose fields differ.
    Upsert,
    /// Create new codes; a code that exists with other fields fails.
    CreateOnly,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file: CSV with a header line, or JSON lines (one create body a line).
    pub file: PathBuf,
    /// Check every row and report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value = "upsert")]
    pub mode: ImportMode,
    /// The file's format (default: from its extension, .jsonl/.ndjson for
    /// JSON lines, else CSV).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Rows per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub chunk_rows: u32,
    #[command(flatten)]
    pub remote: crate::remote::Remote,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FileFormat,
    /// Only this creator's codes.
    #[arg(long)]
    pub owner: Option<String>,
    #[command(flatten)]
    pub remote: crate::remote::Remote,
}

/// One request's worth of the file.
struct Chunk {
    body: String,
    rows: usize,
    /// The request's line of each record → the file's line.
    lines: HashMap<usize, usize>,
}

/// A failed row, with the file's line.
struct Failed {
    line: usize,
    code: Option<String>,
    error: String,
    message: String,
}

/// The canonical code a record names, if it reads as one.
fn canonical(raw: &str) -> Option<String> {
    codelink_shared::CodeName::parse(raw)
        .ok()
        .map(codelink_shared::CodeName::into_string)
}

/// Splits the file into chunks; rows naming a code an earlier row names
/// are left out and failed here. Returns the chunks, those failures and
/// the number of rows.
fn split(text: &str, format: FileFormat, per_chunk: usize) -> (Vec<Chunk>, Vec<Failed>, usize) {
    // (file line, text, code)
    let mut rows: Vec<(usize, String, Option<String>)> = Vec::new();
    let mut header = String::new();
    match format {
        FileFormat::Csv => {
            let mut records = csv::records(text).into_iter();
            let mut code_at = None;
            if let Some(h) = records.next() {
                header = text[h.span.clone()].to_string();
                code_at = h
                    .fields
                    .ok()
                    .and_then(|f| f.iter().position(|c| c.trim().eq_ignore_ascii_case("code")));
            }
            for r in records {
                let code = match (&r.fields, code_at) {
                    (Ok(f), Some(i)) => f.get(i).and_then(|c| canonical(c)),
                    _ => None,
                };
                rows.push((r.line, text[r.span.clone()].to_string(), code));
            }
        }
        FileFormat::Jsonl => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let code = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v["code"].as_str().and_then(canonical));
                rows.push((i + 1, line.to_string(), code));
            }
        }
    }
    if !header.ends_with('\n') && !header.is_empty() {
        header.push('\n');
    }
    let header_lines = header.matches('\n').count();
    let total = rows.len();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut failed = Vec::new();
    let mut chunks = Vec::new();
    let mut current = Chunk {
        body: header.clone(),
        rows: 0,
        lines: HashMap::new(),
    };
    let mut next_line = header_lines + 1;
    for (line, mut row, code) in rows {
        if let Some(code) = code {
            if let Some(first) = seen.get(&code) {
                failed.push(Failed {
                    line,
                    message: format!(
                        "code '{code}' is also on line {first}; give each code once per file"
                    ),
                    code: Some(code),
                    error: "duplicate_code".into(),
                });
                continue;
            }
            seen.insert(code, line);
        }
        if !row.ends_with('\n') {
            row.push('\n');
        }
        current.lines.insert(next_line, line);
        next_line += row.matches('\n').count();
        current.body.push_str(&row);
        current.rows += 1;
        if current.rows == per_chunk {
            chunks.push(std::mem::replace(
                &mut current,
                Chunk {
                    body: header.clone(),
                    rows: 0,
                    lines: HashMap::new(),
                },
            ));
            next_line = header_lines + 1;
        }
    }
    if current.rows > 0 || chunks.is_empty() {
        chunks.push(current);
    }
    (chunks, failed, total)
}

/// The progress of an import on stderr: a bar redrawn in place on a
/// terminal, a line per request otherwise.
struct Progress {
    tty: bool,
    total: usize,
    verb: &'static str,
}

impl Progress {
    fn show(&self, done: usize, failed: usize) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            const WIDTH: usize = 30;
            let filled = (done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
            let _ = write!(
                err,
                "\r[{}{}] {done}/{} rows {}, {failed} failed",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                self.total,
                self.verb,
            );
            if done >= self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{done}/{} rows {}", self.total, self.verb);
        }
        let _ = err.flush();
    }
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let key = remote::key_or_admin(&args.remote)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8; save it as UTF-8", args.file.display()))?;
    let format =
        args.format
            .unwrap_or_else(|| match args.file.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                    FileFormat::Jsonl
                }
                _ => FileFormat::Csv,
            });
    let (chunks, mut failed, total) = split(&text, format, args.chunk_rows as usize);
    let content_type = match format {
        FileFormat::Csv => "text/csv",
        FileFormat::Jsonl => "application/x-ndjson",
    };
    let mode = match args.mode {
        ImportMode::Upsert => "upsert",
        ImportMode::CreateOnly => "create_only",
    };
    let path = format!("/api/v1/codes/import?mode={mode}&dry_run={}", args.dry_run);
    let progress = Progress {
        tty: std::io::stderr().is_terminal(),
        total,
        verb: if args.dry_run { "checked" } else { "imported" },
    };
    let mut counts = [0u64; 3]; // created, updated, unchanged
    let mut done = failed.len();
    for chunk in chunks {
        let (status, body) = remote::call(
            &args.remote.url,
            &key,
            http::Method::POST,
            &path,
            Some((content_type, Bytes::from(chunk.body))),
        )
        .await?;
        if !status.is_success() {
            if progress.tty && done > 0 {
                eprintln!();
            }
            bail!(
                "the gateway refused the request with rows from line {}: {}",
                chunk.lines.values().min().copied().unwrap_or(1),
                remote::error_message(status, &body)
            );
        }
        let answer: Value =
            serde_json::from_slice(&body).context("the gateway's answer is not JSON")?;
        for (i, name) in ["created", "updated", "unchanged"].iter().enumerate() {
            counts[i] += answer[name].as_u64().unwrap_or(0);
        }
        for e in answer["errors"].as_array().into_iter().flatten() {
            let line = e["line"].as_u64().unwrap_or(0) as usize;
            failed.push(Failed {
                line: chunk.lines.get(&line).copied().unwrap_or(line),
                code: e["code"].as_str().map(str::to_string),
                error: e["error"]["code"].as_str().unwrap_or("").to_string(),
                message: e["error"]["message"].as_str().unwrap_or("").to_string(),
            });
        }
        done += chunk.rows;
        progress.show(done, failed.len());
    }
    if total == 0 {
        progress.show(0, 0);
    }
    failed.sort_by_key(|f| f.line);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {total} rows: {} created, {} updated, {} unchanged, {} failed{}",
        args.file.display(),
        counts[0],
        counts[1],
        counts[2],
        failed.len(),
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
    )?;
    for f in &failed {
        let code = f
            .code
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        writeln!(out, "line {}{code}: {}: {}", f.line, f.error, f.message)?;
    }
    out.flush()?;
    if !failed.is_empty() {
        bail!(
            "{} of {total} rows failed (lines listed above)",
            failed.len()
        );
    }
    Ok(())
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let key = remote::key_or_admin(&args.remote)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair(
        "format",
        match args.format {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
        },
    );
    if let Some(owner) = &args.owner {
        query.append_pair("owner", owner);
    }
    let path = format!("/api/v1/codes/export?{}", query.finish());
    let (status, body) =
        remote::call(&args.remote.url, &key, http::Method::GET, &path, None).await?;
    if !status.is_success() {
        bail!("{}", remote::error_message(status, &body));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_map_lines_back_and_drop_later_duplicates() {
        let text = "code,destination,owner\n\
                    a01,https://x.example/,al\n\
                    \"a02\",\"https://x.example/\nmore\",al\n\
                    A01,https://x.example/,al\n\
                    a03,https://x.example/,al\n";
        let (chunks, failed, total) = split(text, FileFormat::Csv, 1);
        assert_eq!(total, 4);
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].line, failed[0].code.as_deref()),
            (5, Some("a01"))
        );
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].lines[&2], 3);
        assert_eq!(chunks[2].lines[&2], 6);
        assert!(chunks[2].body.starts_with("code,destination,owner\na03"));
    }
}
