//! CSV export of query answers (the API's and the console's): one row per element of a list, one row for a
//! single object. Nested objects flatten to `parent_child` columns; money
//! lists (`[{"currency","amount"}]`) to one column per currency.

use serde_json::{Map, Value};

/// Renders `rows` (an array of objects, or one object) as CSV with a header.
pub fn csv(rows: &Value) -> String {
    let rows: Vec<Map<String, Value>> = match rows {
        Value::Array(items) => items.iter().map(flatten).collect(),
        other => vec![flatten(other)],
    };
    let mut columns: Vec<String> = Vec::new();
    for row in &rows {
        for key in row.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let mut out = String::new();
    push_row(&mut out, columns.iter().map(String::as_str));
    for row in &rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| row.get(c).map(cell).unwrap_or_default())
            .collect();
        push_row(&mut out, cells.iter().map(String::as_str));
    }
    out
}

fn flatten(value: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    flatten_into(&mut out, "", value);
    out
}

fn flatten_into(out: &mut Map<String, Value>, prefix: &str, value: &Value) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}_{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(out, &key(k), v);
            }
        }
        Value::Array(items) if items.iter().all(is_money) => {
            for m in items {
                let currency = m["currency"].as_str().unwrap_or("");
                out.insert(key(currency), m["amount"].clone());
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn is_money(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 2 && m.contains_key("currency") && m.contains_key("amount"))
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `-12`, `-0.5`, `-1e3`: a number a spreadsheet shows as one. Not `-inf`,
/// `-nan` or `-infinity`, which Rust parses as floats but a spreadsheet reads
/// as text that can start a formula.
fn is_plain_number(c: &str) -> bool {
    c.bytes().any(|b| b.is_ascii_digit())
        && c.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && c.parse::<f64>().is_ok_and(f64::is_finite)
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A leading = + - @ would run as a formula in a spreadsheet.
        let guarded = if c.starts_with(['=', '+', '@', '\t', '\r'])
            || (c.starts_with('-') && !is_plain_number(c))
        {
            format!("'{c}")
        } else {
            c.to_string()
        };
        if guarded.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&guarded.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&guarded);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::csv;
    use serde_json::json;

    #[test]
    fn rows_money_and_escaping() {
        let rows = json!([
            {"key": "yt", "scans": 3, "earnings": [{"currency": "EUR", "amount": 200}]},
            {"key": "a,\"b\"", "scans": -2, "earnings": [{"currency": "USD", "amount": -5}]},
            {"key": "=cmd()", "scans": 0, "earnings": []}
        ]);
        let out = csv(&rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "key,scans,earnings_EUR,earnings_USD");
        assert_eq!(lines[1], "yt,3,200,");
        assert_eq!(lines[2], "\"a,\"\"b\"\"\",-2,,-5");
        assert_eq!(lines[3], "'=cmd(),0,,");
    }

    #[test]
    fn words_a_float_parser_takes_are_still_guarded() {
        let rows =
            json!([{"k": "-inf"}, {"k": "-nan"}, {"k": "-Infinity"}, {"k": "-2.5e3"}, {"k": "-"}]);
        let out = csv(&rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[1..],
            ["'-inf", "'-nan", "'-Infinity", "-2.5e3", "'-"]
        );
    }

    #[test]
    fn single_object_with_nested_fields() {
        let out = csv(&json!({"scans": 1, "rate": {"signup": 0.5}}));
        assert_eq!(out, "scans,rate_signup\r\n1,0.5\r\n");
    }
}
