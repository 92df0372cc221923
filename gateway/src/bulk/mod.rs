//! Codes in bulk: importing a file of codes (CSV or JSON lines) and
//! exporting every code in the same shapes.
//!
//! An import is planned before anything is written: each row is read,
//! validated as `POST /api/v1/codes` validates a body, and compared with the
//! stored code of that name (read from the store, not the table, so a code
//! another instance wrote is seen): no such code → created; the same fields
//! → unchanged (so a re-run of a file, or an export re-imported, changes
//! nothing); other fields → updated (`mode=upsert`, the default) or refused
//! (`mode=create_only`). A row that fails is reported with its line and does
//! not stop the others (unless `atomic`, which then writes nothing). The
//! writes go to the store in chunks ([`crate::store::BULK_CHUNK`]), each
//! code written only if it is still as read, then into the code table in
//! one swap.

pub mod cli;
mod csv;
mod rows;

pub use rows::{read_csv, read_jsonl, write_csv, write_jsonl, CodeInput, Row};

use crate::admin;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{BulkWrite, StoreError};
use codelink_shared::{CodeName, CodeRecord, Principal, ValidationError};
use http::StatusCode;
use std::collections::HashMap;

/// What an import does with a code that exists with other fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Update it to the row's fields.
    Upsert,
    /// Refuse the row (`code_taken`); new codes are created.
    CreateOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Plan and report, write nothing.
    pub dry_run: bool,
    pub mode: Mode,
    /// Write nothing if any row fails.
    pub atomic: bool,
}

/// Why one row was not imported.
#[derive(Debug)]
pub struct RowError {
    pub line: usize,
    /// The row's code, when it could be read.
    pub code: Option<String>,
    pub error: ApiError,
}

/// What an import did (or, in a dry run or a refused atomic import, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub errors: Vec<RowError>,
    /// Whether anything was written (false in a dry run, and for an atomic
    /// import with failed rows).
    pub applied: bool,
}

enum Plan {
    Create(CodeRecord),
    /// The new record, the stored bytes it replaces, and whether the stored
    /// code was enabled.
    Update(CodeRecord, Vec<u8>, bool),
    Unchanged,
}

fn refused(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Imports `rows` (see the module docs). `Err` only when the store cannot
/// be read (nothing written then).
pub async fn import(
    state: &AppState,
    rows: Vec<Row>,
    options: Options,
) -> Result<Report, ApiError> {
    let mut report = Report::default();
    let fail = |report: &mut Report, line: usize, code: Option<String>, error: ApiError| {
        report.failed += 1;
        report.errors.push(RowError { line, code, error });
    };
    // Read every row; a code named twice is imported from its first line.
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut candidates: Vec<(usize, CodeRecord)> = Vec::with_capacity(rows.len());
    for row in rows {
        let input = match row.input {
            Ok(input) => input,
            Err(e) => {
                fail(&mut report, row.line, row.code, e);
                continue;
            }
        };
        let shown = Some(input.code.clone()).filter(|c| !c.is_empty());
        let name = match CodeName::parse(&input.code) {
            Ok(name) => name.into_string(),
            Err(e) => {
                fail(&mut report, row.line, shown, e.into());
                continue;
            }
        };
        if let Some(first) = first_line.get(&name) {
            let message =
                format!("code '{name}' is also on line {first}; give each code once per file");
            fail(
                &mut report,
                row.line,
                shown,
                refused("duplicate_code", message),
            );
            continue;
        }
        first_line.insert(name.clone(), row.line);
        match input.into_record() {
            Ok(mut record) => {
                record.code = name;
                candidates.push((row.line, record));
            }
            Err(e) => fail(&mut report, row.line, shown, e.into()),
        }
    }
    let names: Vec<String> = candidates.iter().map(|(_, r)| r.code.clone()).collect();
    let stored = state.store.read_codes(&names).await?;
    let now = admin::now();
    let mut planned: Vec<(usize, Plan)> = Vec::with_capacity(candidates.len());
    for ((line, record), stored) in candidates.into_iter().zip(stored) {
        let code = record.code.clone();
        match plan(state, record, stored, options.mode, now).await {
            Ok(p) => planned.push((line, p)),
            Err(e) => fail(&mut report, line, Some(code), e),
        }
    }
    for (_, p) in &planned {
        match p {
            Plan::Create(_) => report.created += 1,
            Plan::Update(..) => report.updated += 1,
            Plan::Unchanged => report.unchanged += 1,
        }
    }
    if options.dry_run || (options.atomic && report.failed > 0) {
        report.errors.sort_by_key(|e| e.line);
        return Ok(report);
    }
    report.applied = true;
    let mut lines = Vec::new();
    let mut writes = Vec::new();
    let mut was_enabled = Vec::new();
    for (line, p) in planned {
        match p {
            Plan::Create(record) => writes.push(BulkWrite {
                record,
                expected: None,
            }),
            Plan::Update(record, raw, enabled) => {
                was_enabled.push((writes.len(), enabled));
                writes.push(BulkWrite {
                    record,
                    expected: Some(raw),
                })
            }
            Plan::Unchanged => continue,
        }
        lines.push(line);
    }
    let was_enabled: std::collections::HashMap<usize, bool> = was_enabled.into_iter().collect();
    let kinds: Vec<bool> = writes.iter().map(|w| w.expected.is_none()).collect();
    let records: Vec<CodeRecord> = writes.iter().map(|w| w.record.clone()).collect();
    let outcome = state.store.write_codes(writes).await;
    let mut written = Vec::with_capacity(records.len());
    let mut created = Vec::new();
    let mut disabled = Vec::new();
    for (i, (record, line)) in records.into_iter().zip(lines).enumerate() {
        let is_create = kinds[i];
        let error = match outcome.written.get(i) {
            Some(true) => {
                if is_create {
                    created.push(admin::code_facts(&record));
                } else if was_enabled.get(&i) == Some(&true) && !record.enabled {
                    disabled.push(admin::code_facts(&record));
                }
                written.push(record);
                continue;
            }
            Some(false) => ApiError::new(
                StatusCode::CONFLICT,
                "changed_meanwhile",
                format!(
                    "code '{}' was written by another request during the import; run the import again",
                    record.code
                ),
            ),
            None => {
                let why = outcome
                    .error
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string);
                tracing::warn!(error = %why, "import stopped: store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    "the code store became unreachable during the import; run it again \
                     (rows already written are then unchanged)",
                )
            }
        };
        if is_create {
            report.created -= 1;
        } else {
            report.updated -= 1;
        }
        fail(&mut report, line, Some(record.code.clone()), error);
    }
    state.codes.upsert_many(written);
    // `code.created` and `code.disabled` webhook events, in one outbox write.
    state.analytics.codes_changed(&created, &disabled).await;
    report.errors.sort_by_key(|e| e.line);
    Ok(report)
}

/// What to do with one row's record, checked as `POST /api/v1/codes` (a new
/// code) or `PATCH` (a changed one) checks it.
async fn plan(
    state: &AppState,
    mut record: CodeRecord,
    stored: Option<crate::store::StoredCode>,
    mode: Mode,
    now: i64,
) -> Result<Plan, ApiError> {
    let future = |t: Option<i64>| {
        if t.is_some_and(|t| t <= now) {
            Err(ValidationError::new("expires_at", "must be in the future"))
        } else {
            Ok(())
        }
    };
    let Some(stored) = stored else {
        future(record.expires_at)?;
        record.validate()?;
        record.created_at = now;
        record.updated_at = now;
        admin::check_code_qr(state, &record).await?;
        return Ok(Plan::Create(record));
    };
    let old = &stored.record;
    record.created_at = old.created_at;
    record.updated_at = old.updated_at;
    record.qr_logo = old.qr_logo.clone();
    record.validate_update(&old.destination)?;
    if record == *old {
        return Ok(Plan::Unchanged);
    }
    if mode == Mode::CreateOnly {
        return Err(StoreError::Conflict(record.code).into());
    }
    // A past expiry the row keeps as stored is no change (an export of
    // an expired code imports as unchanged); a new one must be ahead.
    if record.expires_at != old.expires_at {
        future(record.expires_at)?;
    }
    record.updated_at = now;
    admin::check_code_qr(state, &record).await?;
    let was_enabled = old.enabled;
    Ok(Plan::Update(record, stored.raw, was_enabled))
}

/// Every stored code `who` sees (of `owner`, when given), by name: the
/// store's records, so an export right after an import on another
/// instance has it.
pub async fn export(
    state: &AppState,
    who: &Principal,
    owner: Option<&str>,
) -> Result<Vec<CodeRecord>, StoreError> {
    let mut records: Vec<CodeRecord> = state
        .store
        .load_all()
        .await?
        .into_iter()
        .filter(|r| who.sees(&r.owner) && owner.is_none_or(|o| r.owner == o))
        .collect();
    records.sort_unstable_by(|a, b| a.code.cmp(&b.code));
    Ok(records)
}
