//! A small RFC 4180 reader and writer: comma-separated, fields optionally in
//! double quotes (a quote inside doubled), records ending in `\n` or `\r\n`.
//!
//! Written here rather than taken from a crate because an import needs two
//! things general readers do not give together: the physical line each
//! record starts on (errors name the file's lines, and a quoted field may
//! span lines) and a record-by-record verdict on bad quoting, so one broken
//! row is reported and the rows after it are still read.

use std::ops::Range;

/// One record: the line it starts on (1-based, the header is line 1), its
/// bytes in the text (for splitting a file into chunks) and its fields, or
/// why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub span: Range<usize>,
    pub fields: Result<Vec<String>, String>,
}

/// Every record of `text`, blank lines skipped. A leading UTF-8 byte order
/// mark (spreadsheets write one) is not part of the first field.
pub fn records(text: &str) -> Vec<Record> {
    let bytes = text.as_bytes();
    let mut pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut line = 1;
    let mut out = Vec::new();
    while pos < bytes.len() {
        // A blank line is no record.
        if bytes[pos] == b'\n' {
            pos += 1;
            line += 1;
            continue;
        }
        if bytes[pos..].starts_with(b"\r\n") {
            pos += 2;
            line += 1;
            continue;
        }
        let (start, start_line) = (pos, line);
        let mut fields = Vec::new();
        let mut error: Option<String> = None;
        loop {
            let field;
            if bytes.get(pos) == Some(&b'"') {
                // Quoted: up to the quote not followed by another.
                let mut value = String::new();
                let mut p = pos + 1;
                let closed = loop {
                    match bytes[p..].iter().position(|&b| b == b'"') {
                        None => break false,
                        Some(i) => {
                            value.push_str(&text[p..p + i]);
                            line += text[p..p + i].matches('\n').count();
                            p += i + 1;
                            if bytes.get(p) == Some(&b'"') {
                                value.push('"');
                                p += 1;
                            } else {
                                break true;
                            }
                        }
                    }
                };
                if !closed {
                    line += text[p..].matches('\n').count();
                    error = Some(format!(
                        "a quoted field opened on line {start_line} is never closed; \
                         end it with '\"' (and double the quotes inside it)"
                    ));
                    pos = bytes.len();
                    break;
                }
                pos = p;
                if !matches!(bytes.get(pos), None | Some(b',' | b'\n'))
                    && !bytes[pos..].starts_with(b"\r\n")
                {
                    error = Some(
                        "text after the closing quote of a field; quote the whole field \
                         and double the quotes inside it"
                            .into(),
                    );
                }
                field = value;
            } else {
                let end = bytes[pos..]
                    .iter()
                    .position(|&b| b == b',' || b == b'\n')
                    .map_or(bytes.len(), |i| pos + i);
                let mut value = &text[pos..end];
                if bytes.get(end) == Some(&b'\n') {
                    value = value.strip_suffix('\r').unwrap_or(value);
                }
                if value.contains('"') && error.is_none() {
                    error = Some(
                        "a quote inside a field that does not start with one; put the \
                         field in quotes and double the quote"
                            .into(),
                    );
                }
                pos = end;
                field = value.to_string();
            }
            fields.push(field);
            if error.is_some() && pos < bytes.len() {
                // Skip the rest of this physical line: the next record starts after it.
                match bytes[pos..].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        pos += i + 1;
                        line += 1;
                    }
                    None => pos = bytes.len(),
                }
                break;
            }
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b'\r') => {
                    pos += 2;
                    line += 1;
                    break;
                }
                Some(b'\n') => {
                    pos += 1;
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        out.push(Record {
            line: start_line,
            span: start..pos,
            fields: match error {
                Some(e) => Err(e),
                None => Ok(fields),
            },
        });
    }
    out
}

/// Appends one record: fields quoted when they hold a comma, quote, line
/// break or leading/trailing space, and the record ended with `\n`.
pub fn write_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let quote = field.contains([',', '"', '\n', '\r'])
            || field.starts_with(' ')
            || field.ends_with(' ');
        if quote {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(usize, Result<Vec<String>, String>)> {
        records(text)
            .into_iter()
            .map(|r| (r.line, r.fields))
            .collect()
    }

    fn ok(v: &[&str]) -> Result<Vec<String>, String> {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn plain_quoted_and_multiline() {
        let got = fields("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"two\nlines\",z\nlast,");
        assert_eq!(
            got,
            vec![
                (1, ok(&["a", "b"])),
                (2, ok(&["x,1", "say \"hi\""])),
                (4, ok(&["two\nlines", "z"])),
                (6, ok(&["last", ""])),
            ]
        );
    }

    #[test]
    fn bad_quoting_is_one_record_and_reading_goes_on() {
        let got = fields("h\n\"a\"b,c\nok\nx\"y\nfine\n\"open\nmore\n");
        assert_eq!(got[0], (1, ok(&["h"])));
        assert_eq!(got[1].0, 2);
        assert!(got[1]
            .1
            .as_ref()
            .unwrap_err()
            .contains("after the closing quote"));
        assert_eq!(got[2], (3, ok(&["ok"])));
        assert_eq!(got[3].0, 4);
        assert!(got[3].1.as_ref().unwrap_err().contains("quote inside"));
        assert_eq!(got[4], (5, ok(&["fine"])));
        assert_eq!(got[5].0, 6);
        assert!(got[5].1.as_ref().unwrap_err().contains("never closed"));
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn spans_cover_records() {
        let text = "\u{feff}h,i\n\"a\nb\",c\r\nd,e";
        let recs = records(text);
        assert_eq!(recs[0].fields, ok(&["h", "i"]));
        assert_eq!(&text[recs[1].span.clone()], "\"a\nb\",c\r\n");
        assert_eq!(&text[recs[2].span.clone()], "d,e");
        assert_eq!(recs[2].line, 4);
    }

    #[test]
    fn written_records_read_back() {
        let rows = [
            vec!["plain", "with,comma", "with \"quote\""],
            vec![" lead", "line\nbreak", ""],
        ];
        let mut out = String::new();
        for r in &rows {
            write_record(&mut out, r.iter().copied());
        }
        let back: Vec<Vec<String>> = records(&out)
            .into_iter()
            .map(|r| r.fields.unwrap())
            .collect();
        assert_eq!(
            back,
            rows.map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        );
    }
}
