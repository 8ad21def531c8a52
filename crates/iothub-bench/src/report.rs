//! The result of a run: an ordered list of named values, printed as a human summary and as one
//! flat JSON object on one line.
//!
//! The JSON is written by hand: keys are fixed ASCII identifiers, values are integers, finite
//! numbers, strings or `null` (non-finite numbers become `null`), and the line always starts
//! with `{"scenario":`. Nothing here measures anything.

use std::fmt::Write as _;

/// One reported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A rate, a duration or a ratio.
    Float(f64),
    /// Free text.
    Text(String),
    /// Not measured in this run.
    Null,
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The subcommand that ran: "conn", "fanin", "fanout", "pairs" or "latency".
    pub scenario: &'static str,
    /// One sentence with the headline numbers.
    pub headline: String,
    /// Every value, in the order printed.
    pub fields: Vec<(&'static str, Value)>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Report {
        Report { scenario, headline: String::new(), fields: Vec::new() }
    }

    /// Appends a value.
    pub fn push(&mut self, key: &'static str, value: impl Into<Value>) {
        self.fields.push((key, value.into()));
    }

    /// The value named `key`, if reported.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value named `key` as a number, if it is one.
    #[allow(clippy::cast_precision_loss)] // For reading results, not for exact arithmetic.
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Int(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            Value::Text(_) | Value::Null => None,
        }
    }

    /// The human summary: the headline, then one aligned `key  value` line per field.
    pub fn summary(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== iothub-bench {} ==\n{}\n", self.scenario, self.headline);
        for (key, value) in &self.fields {
            let shown = match value {
                Value::Int(v) => v.to_string(),
                Value::Float(v) => format!("{v:.3}"),
                Value::Text(v) => v.clone(),
                Value::Null => "-".to_owned(),
            };
            let _ = writeln!(out, "  {key:<width$}  {shown}");
        }
        out
    }

    /// The whole report as one line of JSON, starting with `{"scenario":`.
    pub fn json_line(&self) -> String {
        let mut out = String::from("{\"scenario\":");
        put_json_string(&mut out, self.scenario);
        for (key, value) in &self.fields {
            out.push(',');
            put_json_string(&mut out, key);
            out.push(':');
            match value {
                Value::Int(v) => {
                    let _ = write!(out, "{v}");
                }
                Value::Float(v) if v.is_finite() => {
                    let _ = write!(out, "{v:.3}");
                }
                Value::Float(_) | Value::Null => out.push_str("null"),
                Value::Text(v) => put_json_string(&mut out, v),
            }
        }
        out.push('}');
        out
    }
}

/// Appends `text` as a JSON string literal (RFC 8259, section 7).
fn put_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_flat_and_escaped() {
        let mut report = Report::new("pairs");
        report.push("delivered", 12u64);
        report.push("rate", 1.5);
        report.push("nan", f64::NAN);
        report.push("note", "a \"b\"\n\\c\u{1}");
        report.push("cpu", None::<f64>);
        assert_eq!(
            report.json_line(),
            r#"{"scenario":"pairs","delivered":12,"rate":1.500,"nan":null,"note":"a \"b\"\n\\c\u0001","cpu":null}"#
        );
    }

    #[test]
    fn summary_aligns_values_and_lookups_work() {
        let mut report = Report::new("conn");
        report.headline = "ok".to_owned();
        report.push("a", 1u64);
        report.push("longer", None::<u64>);
        assert_eq!(report.summary(), "== iothub-bench conn ==\nok\n  a       1\n  longer  -\n");
        assert_eq!(report.number("a"), Some(1.0));
        assert_eq!(report.number("longer"), None);
        assert_eq!(report.get("missing"), None);
    }
}
