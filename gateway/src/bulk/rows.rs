//! The rows of an import and an export: one code each, as the create body
//! of `POST /api/v1/codes` ([`CodeInput`]), read from and written to CSV
//! and JSON lines.
//!
//! The CSV shape (README, "Codes in bulk"): a header naming the columns, in
//! any order; `code`, `destination` and `owner` are required, every other
//! column may be left out, and an empty cell means the create body's
//! default. Channels are `channel:<name>` columns whose cell is the
//! channel's UTM parameters as a query string (`utm_source=yt&utm_medium=video`;
//! a lone `?` for a channel without parameters; empty: no such channel),
//! or one `channels` column holding the create body's JSON object. The
//! commission plan is four columns, `qr`, `app_links` and `routes` hold
//! JSON.

use super::csv;
use crate::error::ApiError;
use codelink_shared::{
    AppLinks, CodeRecord, CommissionPlan, QrStyle, RouteRule, Utm, ValidationError,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One code as a client writes it: the body of `POST /api/v1/codes`, one
/// line of a JSON lines import, one line of a JSON lines export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    pub code: String,
    pub destination: String,
    pub owner: String,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub channels: BTreeMap<String, Utm>,
    #[serde(default)]
    pub commission: Option<CommissionPlan>,
    #[serde(default = "default_window")]
    pub attribution_window_days: u32,
    #[serde(default)]
    pub qr: Option<QrStyle>,
    #[serde(default)]
    pub fallback_url: Option<String>,
    #[serde(default)]
    pub app_links: Option<AppLinks>,
    #[serde(default)]
    pub in_app_escape: bool,
    #[serde(default)]
    pub visitor_token: bool,
    #[serde(default)]
    pub routes: Vec<RouteRule>,
}

fn default_window() -> u32 {
    codelink_shared::record::DEFAULT_WINDOW_DAYS
}

fn yes() -> bool {
    true
}

impl CodeInput {
    /// The record this input describes, not validated yet; its times 0 and
    /// no logo. `expires_at` must be an RFC 3339 time (whether it is in the
    /// future is for the caller: an import keeps a past expiry it does not
    /// change).
    pub fn into_record(self) -> Result<CodeRecord, ValidationError> {
        let expires_at = match self.expires_at.as_deref() {
            None => None,
            Some(raw) => Some(
                OffsetDateTime::parse(raw, &Rfc3339)
                    .map(OffsetDateTime::unix_timestamp)
                    .map_err(|_| {
                        ValidationError::new(
                            "expires_at",
                            format!("'{raw}' is not an RFC 3339 time such as 2027-01-31T23:59:59Z"),
                        )
                    })?,
            ),
        };
        Ok(CodeRecord {
            code: self.code,
            destination: self.destination,
            owner: self.owner,
            expires_at,
            enabled: self.enabled,
            channels: self.channels,
            commission: self.commission,
            attribution_window_days: self.attribution_window_days,
            qr: self.qr,
            fallback_url: self.fallback_url,
            app_links: self.app_links,
            in_app_escape: self.in_app_escape,
            visitor_token: self.visitor_token,
            qr_logo: None,
            routes: self.routes,
            created_at: 0,
            updated_at: 0,
        })
    }

    /// What a client would send to create `r` again (its logo, which is
    /// uploaded apart, and its times aside).
    pub fn from_record(r: &CodeRecord) -> Self {
        Self {
            code: r.code.clone(),
            destination: r.destination.clone(),
            owner: r.owner.clone(),
            expires_at: r.expires_at.and_then(format_time),
            enabled: r.enabled,
            channels: r.channels.clone(),
            commission: r.commission.clone(),
            attribution_window_days: r.attribution_window_days,
            qr: r.qr.clone(),
            fallback_url: r.fallback_url.clone(),
            app_links: r.app_links.clone(),
            in_app_escape: r.in_app_escape,
            visitor_token: r.visitor_token,
            routes: r.routes.clone(),
        }
    }
}

fn format_time(t: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// One row read from a file: its line (1-based; a CSV's header is line 1)
/// and the code, or why the row is refused.
#[derive(Debug)]
pub struct Row {
    pub line: usize,
    /// The code the row names, as written, when it can be read (so a
    /// refused row still says which code it was).
    pub code: Option<String>,
    pub input: Result<CodeInput, ApiError>,
}

fn row_error(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    row_error("invalid_field", format!("{field}: {message}"))
}

/// Every column a CSV may have besides `channel:<name>`.
pub const COLUMNS: &[&str] = &[
    "code",
    "destination",
    "owner",
    "enabled",
    "expires_at",
    "attribution_window_days",
    "commission_currency",
    "commission_signup_flat",
    "commission_purchase_bps",
    "commission_cap",
    "fallback_url",
    "in_app_escape",
    "visitor_token",
    "channels",
    "qr",
    "app_links",
    "routes",
];

/// The prefix of a channel's column.
const CHANNEL: &str = "channel:";

/// An export writes one `channel:<name>` column per channel name while the
/// codes use at most this many names in all; past it, the `channels`
/// column (JSON) instead, so the file does not grow a column per placement.
const MAX_CHANNEL_COLUMNS: usize = 64;

/// Reads a CSV import. `Err` for the file as a whole (no header, an
/// unknown, repeated or missing column: line 1), else one row per record.
pub fn read_csv(text: &str) -> Result<Vec<Row>, ApiError> {
    let mut records = csv::records(text).into_iter();
    let header = records
        .next()
        .ok_or_else(|| row_error("invalid_csv", "the file is empty; start it with a header line naming the columns (code,destination,owner,…)"))?;
    let names = header
        .fields
        .map_err(|e| row_error("invalid_csv", format!("line {}: {e}", header.line)))?;
    let columns = header_columns(&names)?;
    let code_at = columns
        .iter()
        .position(|c| matches!(c, Column::Field("code")));
    Ok(records
        .map(|record| Row {
            line: record.line,
            code: match (&record.fields, code_at) {
                (Ok(f), Some(i)) if f.len() == columns.len() => {
                    Some(f[i].clone()).filter(|c| !c.is_empty())
                }
                _ => None,
            },
            input: match record.fields {
                Err(e) => Err(row_error("invalid_csv", e)),
                Ok(fields) if fields.len() != columns.len() => Err(row_error(
                    "invalid_csv",
                    format!(
                        "{} fields, but the header names {} columns; quote fields that hold a comma",
                        fields.len(),
                        columns.len()
                    ),
                )),
                Ok(fields) => csv_row(&columns, fields),
            },
        })
        .collect())
}

enum Column {
    Field(&'static str),
    Channel(String),
}

fn header_columns(names: &[String]) -> Result<Vec<Column>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut columns = Vec::with_capacity(names.len());
    for raw in names {
        let name = raw.trim().to_ascii_lowercase();
        let column = if let Some(channel) = name.strip_prefix(CHANNEL) {
            let channel = codelink_shared::ChannelName::parse(channel).map_err(|e| {
                row_error(
                    "invalid_csv",
                    format!("line 1: column '{raw}': {}", e.message),
                )
            })?;
            Column::Channel(channel.into_string())
        } else if let Some(known) = COLUMNS.iter().find(|c| **c == name) {
            Column::Field(known)
        } else {
            return Err(row_error(
                "invalid_csv",
                format!(
                    "line 1: column '{raw}' is unknown; the columns are {} and channel:<name>",
                    COLUMNS.join(", ")
                ),
            ));
        };
        if !seen.insert(name.clone()) {
            return Err(row_error(
                "invalid_csv",
                format!("line 1: column '{raw}' is named twice"),
            ));
        }
        columns.push(column);
    }
    for required in ["code", "destination", "owner"] {
        if !seen.contains(required) {
            return Err(row_error(
                "invalid_csv",
                format!("line 1: the header has no '{required}' column; code, destination and owner are required"),
            ));
        }
    }
    Ok(columns)
}

fn csv_row(columns: &[Column], fields: Vec<String>) -> Result<CodeInput, ApiError> {
    let mut input = CodeInput {
        code: String::new(),
        destination: String::new(),
        owner: String::new(),
        expires_at: None,
        enabled: true,
        channels: BTreeMap::new(),
        commission: None,
        attribution_window_days: default_window(),
        qr: None,
        fallback_url: None,
        app_links: None,
        in_app_escape: false,
        visitor_token: false,
        routes: Vec::new(),
    };
    let mut commission: [Option<&str>; 4] = [None; 4];
    let mut column_channels = BTreeMap::new();
    for (column, cell) in columns.iter().zip(&fields) {
        let name = match column {
            Column::Channel(channel) => {
                if !cell.is_empty() {
                    column_channels.insert(channel.clone(), utm_cell(channel, cell)?);
                }
                continue;
            }
            Column::Field(name) => *name,
        };
        if cell.is_empty() {
            continue;
        }
        match name {
            "code" => input.code = cell.clone(),
            "destination" => input.destination = cell.clone(),
            "owner" => input.owner = cell.clone(),
            "enabled" => input.enabled = bool_cell(name, cell)?,
            "in_app_escape" => input.in_app_escape = bool_cell(name, cell)?,
            "visitor_token" => input.visitor_token = bool_cell(name, cell)?,
            "expires_at" => input.expires_at = Some(cell.clone()),
            "fallback_url" => input.fallback_url = Some(cell.clone()),
            "attribution_window_days" => {
                input.attribution_window_days = cell
                    .trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("'{cell}' is not a whole number of days")))?
            }
            "commission_currency" => commission[0] = Some(cell),
            "commission_signup_flat" => commission[1] = Some(cell),
            "commission_purchase_bps" => commission[2] = Some(cell),
            "commission_cap" => commission[3] = Some(cell),
            "channels" => input.channels = json_cell(name, cell)?,
            "qr" => input.qr = Some(json_cell(name, cell)?),
            "app_links" => input.app_links = Some(json_cell(name, cell)?),
            "routes" => input.routes = json_cell(name, cell)?,
            _ => {}
        }
    }
    for (name, utm) in column_channels {
        if input.channels.insert(name.clone(), utm).is_some() {
            return Err(invalid(
                "channels",
                format!("channel '{name}' is in both the channels column and channel:{name}"),
            ));
        }
    }
    if commission.iter().any(Option::is_some) {
        let number = |i: usize, field: &str| -> Result<Option<u64>, ApiError> {
            commission[i]
                .map(|c| {
                    c.trim().parse::<u64>().map_err(|_| {
                        invalid(field, format!("'{c}' is not a whole number (minor units)"))
                    })
                })
                .transpose()
        };
        let currency = commission[0].ok_or_else(|| {
            invalid(
                "commission_currency",
                "a commission needs its currency (e.g. EUR) next to its amounts",
            )
        })?;
        let bps = number(2, "commission_purchase_bps")?.unwrap_or(0);
        input.commission = Some(CommissionPlan {
            currency: currency.trim().to_string(),
            signup_flat: number(1, "commission_signup_flat")?.unwrap_or(0),
            purchase_bps: u32::try_from(bps)
                .map_err(|_| invalid("commission_purchase_bps", "must be at most 10000"))?,
            cap: number(3, "commission_cap")?,
        });
    }
    Ok(input)
}

fn bool_cell(field: &str, cell: &str) -> Result<bool, ApiError> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(invalid(field, format!("'{cell}' is not true or false"))),
    }
}

fn json_cell<T: serde::de::DeserializeOwned>(field: &str, cell: &str) -> Result<T, ApiError> {
    serde_json::from_str(cell)
        .map_err(|e| invalid(field, format!("not the JSON the create body takes: {e}")))
}

/// A `channel:<name>` cell: `utm_source=…&utm_medium=…` (a leading `?`
/// allowed), or a lone `?` for no parameters.
fn utm_cell(channel: &str, cell: &str) -> Result<Utm, ApiError> {
    let query = cell.strip_prefix('?').unwrap_or(cell);
    let mut utm = Utm::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "utm_source" => &mut utm.utm_source,
            "utm_medium" => &mut utm.utm_medium,
            "utm_campaign" => &mut utm.utm_campaign,
            "utm_content" => &mut utm.utm_content,
            other => {
                return Err(invalid(
                    "channels",
                    format!("channel:{channel}: '{other}' is not one of utm_source, utm_medium, utm_campaign, utm_content"),
                ))
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(invalid(
                "channels",
                format!("channel:{channel}: {key} is given twice"),
            ));
        }
    }
    Ok(utm)
}

fn utm_text(utm: &Utm) -> String {
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(utm.pairs())
        .finish();
    if text.is_empty() {
        "?".into()
    } else {
        text
    }
}

/// Reads a JSON lines import: one create body per line (blank lines skipped).
pub fn read_jsonl(text: &str) -> Vec<Row> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let value = serde_json::from_str::<serde_json::Value>(l);
            Row {
                line: i + 1,
                code: value
                    .as_ref()
                    .ok()
                    .and_then(|v| v["code"].as_str())
                    .map(str::to_string),
                input: parse_json_line(value),
            }
        })
        .collect()
}

fn parse_json_line(
    value: Result<serde_json::Value, serde_json::Error>,
) -> Result<CodeInput, ApiError> {
    match value {
        Err(e) => Err(row_error("invalid_json", format!("not a JSON object: {e}"))),
        Ok(v) if !v.is_object() => Err(row_error(
            "invalid_json",
            "each line must be one JSON object: the body of POST /api/v1/codes",
        )),
        Ok(v) => serde_json::from_value(v).map_err(|e| row_error("invalid_field", e.to_string())),
    }
}

/// The codes as CSV, in the order given, every column present (the shape
/// [`read_csv`] reads back unchanged).
pub fn write_csv(records: &[CodeRecord]) -> String {
    let names: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.channels.keys().map(String::as_str))
        .collect();
    let channel_columns = names.len() <= MAX_CHANNEL_COLUMNS;
    let mut header: Vec<String> = COLUMNS
        .iter()
        .filter(|c| channel_columns.then_some(**c) != Some("channels"))
        .map(|c| c.to_string())
        .collect();
    if channel_columns {
        header.extend(names.iter().map(|n| format!("{CHANNEL}{n}")));
    }
    let mut out = String::with_capacity(records.len() * 200);
    csv::write_record(&mut out, header.iter().map(String::as_str));
    for r in records {
        let input = CodeInput::from_record(r);
        let plan = input.commission.as_ref();
        let mut cells: Vec<String> = Vec::with_capacity(header.len());
        for column in COLUMNS {
            let cell = match *column {
                "code" => input.code.clone(),
                "destination" => input.destination.clone(),
                "owner" => input.owner.clone(),
                "enabled" => input.enabled.to_string(),
                "expires_at" => input.expires_at.clone().unwrap_or_default(),
                "attribution_window_days" => input.attribution_window_days.to_string(),
                "commission_currency" => plan.map(|p| p.currency.clone()).unwrap_or_default(),
                "commission_signup_flat" => {
                    plan.map(|p| p.signup_flat.to_string()).unwrap_or_default()
                }
                "commission_purchase_bps" => {
                    plan.map(|p| p.purchase_bps.to_string()).unwrap_or_default()
                }
                "commission_cap" => plan
                    .and_then(|p| p.cap)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                "fallback_url" => input.fallback_url.clone().unwrap_or_default(),
                "in_app_escape" => input.in_app_escape.to_string(),
                "visitor_token" => input.visitor_token.to_string(),
                "channels" if channel_columns => continue,
                "channels" if input.channels.is_empty() => String::new(),
                "channels" => json(&input.channels),
                "qr" => input.qr.as_ref().map(json).unwrap_or_default(),
                "app_links" => input.app_links.as_ref().map(json).unwrap_or_default(),
                "routes" if input.routes.is_empty() => String::new(),
                "routes" => json(&input.routes),
                _ => String::new(),
            };
            cells.push(cell);
        }
        if channel_columns {
            for name in &names {
                cells.push(input.channels.get(*name).map(utm_text).unwrap_or_default());
            }
        }
        csv::write_record(&mut out, cells.iter().map(String::as_str));
    }
    out
}

/// The codes as JSON lines: one create body per line.
pub fn write_jsonl(records: &[CodeRecord]) -> String {
    let mut out = String::with_capacity(records.len() * 200);
    for r in records {
        // Strings, numbers, maps with string keys: it always serialises.
        out.push_str(&serde_json::to_string(&CodeInput::from_record(r)).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A JSON cell: only the create body's parts, which always serialise.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
