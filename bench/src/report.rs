//! Results: a JSON object per scenario, printed as a table (or as JSON with `--json`), and the
//! helpers that turn histograms and /proc readings into figures.

use std::io::IsTerminal;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

/// Latencies in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().max(1) as u64);
}

/// count, mean, p50, p99, p99.9 and max, in milliseconds.
pub fn latency(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "mean_ms": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

pub fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

/// Server CPU microseconds per unit and seconds per 1,000 units, when both are known.
pub fn cpu_per(cpu_secs: Option<f64>, units: u64) -> (Value, Value) {
    match cpu_secs {
        Some(c) if units > 0 => (
            json!(round(c * 1e6 / units as f64, 2)),
            json!(round(c * 1000.0 / units as f64, 4)),
        ),
        _ => (Value::Null, Value::Null),
    }
}

/// Adds `extra`'s keys to the object `result` (new keys beside the existing ones).
pub fn merge(result: &mut Value, extra: Map<String, Value>) {
    if let Value::Object(m) = result {
        m.extend(extra);
    }
}

pub fn merge_one(result: &mut Value, key: &str, value: Value) {
    if let Value::Object(m) = result {
        m.insert(key.to_owned(), value);
    }
}

/// Prints the result: a table on stdout, or JSON on stdout and the table on stderr.
pub fn emit(result: &Value, as_json: bool) {
    let table = render(result);
    if as_json {
        eprint!("{table}");
        println!(
            "{}",
            serde_json::to_string_pretty(result).unwrap_or_default()
        );
    } else {
        print!("{table}");
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push((prefix.to_owned(), items.join("; ")));
        }
        Value::Array(_) => {} // tables, rendered separately
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

/// Top-level scalars and objects become `key  value` rows; arrays of objects become tables.
pub fn render(result: &Value) -> String {
    let mut s = String::new();
    let mut rows = Vec::new();
    let mut tables = Vec::new();
    if let Value::Object(m) = result {
        for (k, v) in m {
            match v {
                Value::Array(a) if a.iter().any(|x| x.is_object()) => tables.push((k, a)),
                _ => flatten(k, v, &mut rows),
            }
        }
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    s.push_str(&format!("{:-<1$}\n", "", w + 30));
    for (k, v) in &rows {
        s.push_str(&format!("{k:<w$}  {v}\n"));
    }
    for (name, items) in tables {
        let mut cols: Vec<String> = Vec::new();
        let mut lines: Vec<Map<String, Value>> = Vec::new();
        for item in items {
            let mut flat = Vec::new();
            flatten("", item, &mut flat);
            let mut m = Map::new();
            for (k, v) in flat {
                if !cols.contains(&k) {
                    cols.push(k.clone());
                }
                m.insert(k, Value::String(v));
            }
            lines.push(m);
        }
        let widths: Vec<usize> = cols
            .iter()
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l.get(c).map(scalar).unwrap_or_default().len())
                    .max()
                    .unwrap_or(0)
                    .max(c.len())
            })
            .collect();
        s.push_str(&format!("\n{name}:\n"));
        for (c, w) in cols.iter().zip(&widths) {
            s.push_str(&format!("{c:>w$}  "));
        }
        s.push('\n');
        for l in &lines {
            for (c, w) in cols.iter().zip(&widths) {
                let v = l.get(c).map(scalar).unwrap_or_else(|| "-".into());
                s.push_str(&format!("{v:>w$}  "));
            }
            s.push('\n');
        }
    }
    s
}

/// A progress bar on stderr, hidden when stderr is not a terminal or `--no-progress`.
pub fn progress(len: u64, enabled: bool) -> ProgressBar {
    let target = if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(5)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_and_tables() {
        let v = json!({"a": 1, "b": {"c": "x"}, "steps": [{"rate": 1, "p": {"q": 2}}]});
        let t = render(&v);
        assert!(t.contains("b.c"));
        assert!(t.contains("steps:"));
        assert!(t.contains("p.q"));
    }
}
