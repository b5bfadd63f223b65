//! Percentiles and the report (text on stdout, the same figures as JSON).

use serde_json::{Map, Value, json};

/// p50 / p99 / max of a set of latencies (nearest rank), in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Lat {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lat {
    /// From latencies in nanoseconds.
    pub fn of(mut ns: Vec<u64>) -> Option<Lat> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let rank = |q: f64| {
            let r = (q * ns.len() as f64).ceil() as usize;
            ns[r.clamp(1, ns.len()) - 1]
        };
        let ms = |v: u64| v as f64 / 1e6;
        Some(Lat {
            n: ns.len(),
            p50: ms(rank(0.50)),
            p99: ms(rank(0.99)),
            max: ms(*ns.last().unwrap()),
        })
    }

    pub fn json(&self) -> Value {
        json!({"n": self.n, "p50_ms": round(self.p50, 3), "p99_ms": round(self.p99, 3), "max_ms": round(self.max, 3)})
    }

    pub fn text(&self) -> String {
        format!(
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.p50, self.p99, self.max, self.n
        )
    }
}

pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Collects figures by section; prints each line as it comes.
#[derive(Default)]
pub struct Report {
    pub sections: Map<String, Value>,
}

impl Report {
    pub fn section(&mut self, name: &str) {
        println!("\n== {name} ==");
        self.sections
            .entry(name.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }

    /// Records `key` = `value` in `section` and prints `text`.
    pub fn put(&mut self, section: &str, key: &str, value: Value, text: &str) {
        println!("  {key:<34} {text}");
        let s = self
            .sections
            .entry(section.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = s {
            m.insert(key.to_string(), value);
        }
    }

    pub fn note(&self, text: &str) {
        println!("  ({text})");
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&Value> {
        self.sections.get(section)?.get(key)
    }
}
