//! Output for a person (aligned tables, `key: value` lines) or for a script
//! (`--json`: the API's JSON answer as sent, pretty-printed).

use std::fmt::Write as _;
use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Where and how to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `raw` as JSON under `--json`, else calls `person`.
    pub fn emit(&self, raw: &Value, person: impl FnOnce() -> String) {
        if self.json {
            print_json(raw);
        } else {
            print_text(&person());
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    print_text(&text);
}

/// Prints `text` (adding a final newline when missing); a closed stdout (`| head`)
/// is not an error worth a panic.
pub fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// An aligned text table.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Columns separated by two spaces, each as wide as its widest cell; no
    /// trailing blanks.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    text.push_str("  ");
                }
                let _ = write!(text, "{cell:<width$}");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let key = format!("{key}:");
        let _ = writeln!(out, "{key:<width$} {value}");
    }
    out
}

/// `key: value` lines of every field of a JSON object, in the API's order; nested
/// values as compact JSON, null as `-`.
pub fn object_lines(value: &Value, skip: &[&str]) -> String {
    let Some(map) = value.as_object() else {
        return format!("{}\n", cell(value));
    };
    let pairs: Vec<(&str, String)> = map
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), cell(v)))
        .collect();
    key_values(&pairs)
}

/// One JSON value as a table cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as RFC 3339 in UTC, to the second.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["ID", "STATUS"]);
        t.row(vec!["a".into(), "PENDING".into()]);
        t.row(vec!["long-id".into(), "X".into()]);
        assert_eq!(
            t.render(),
            "ID       STATUS\na        PENDING\nlong-id  X\n"
        );
    }

    #[test]
    fn key_values_align() {
        let text = key_values(&[("id", "1".into()), ("status", "OK".into())]);
        assert_eq!(text, "id:     1\nstatus: OK\n");
    }
}
