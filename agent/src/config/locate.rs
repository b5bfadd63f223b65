//! Finds the line a key path (`sources[2].baud`) is written on, so that every config error can
//! name it. Works on the file's text with toml_edit's span-keeping parser.

use toml_edit::{Document, Item, Table, Value};

/// One step of a key path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Step::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// The 1-based line of `path` in `text`: where its key is written, or, when the key is
/// missing, where the nearest enclosing table starts. `None` when the text does not parse.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = Document::parse(text).ok()?;
    let mut best: Option<usize> = None;
    let mut table: Option<&Table> = Some(doc.as_table());
    let mut item: Option<&Item> = None;
    for step in steps(path) {
        match (step, item) {
            (Step::Key(k), _) => {
                let t = match item {
                    None => table,
                    Some(Item::Table(t)) => Some(t),
                    _ => None,
                };
                if let Some(t) = t {
                    if let Some(span) = t.span() {
                        best = Some(span.start);
                    }
                    if let Some((key, value)) = t.get_key_value(k) {
                        best = key.span().map(|s| s.start).or(best);
                        item = Some(value);
                        table = None;
                        continue;
                    }
                    return best.map(|b| line_at(text, b));
                }
                if let Some(Item::Value(Value::InlineTable(t))) = item {
                    if let Some((key, value)) = t.get_key_value(k) {
                        best = key.span().map(|s| s.start).or(best);
                        // An inline table's values have no Item wrapper; stop here.
                        let _ = value;
                    }
                }
                return best.map(|b| line_at(text, b));
            }
            (Step::Index(i), Some(Item::ArrayOfTables(aot))) => match aot.get(i) {
                Some(t) => {
                    best = t.span().map(|s| s.start).or(best);
                    table = Some(t);
                    item = None;
                }
                None => return best.map(|b| line_at(text, b)),
            },
            (Step::Index(i), Some(Item::Value(Value::Array(a)))) => {
                if let Some(v) = a.get(i) {
                    best = v.span().map(|s| s.start).or(best);
                }
                return best.map(|b| line_at(text, b));
            }
            _ => return best.map(|b| line_at(text, b)),
        }
    }
    best.map(|b| line_at(text, b))
}

/// The 1-based line of a byte offset.
pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[agent]\nid = \"a\"\n\n[mqtt]\nurl = \"x\"\n\n[[sources]]\nid = \"s1\"\n\n[[sources]]\nid = \"s2\"\nbaud = 96000\nnoread = [\"A\", \"B\"]\n";

    #[test]
    fn finds_keys_tables_and_array_entries() {
        assert_eq!(line_of(TEXT, "agent.id"), Some(2));
        assert_eq!(line_of(TEXT, "mqtt.url"), Some(5));
        assert_eq!(line_of(TEXT, "sources[1].baud"), Some(12));
        assert_eq!(line_of(TEXT, "sources[0].id"), Some(8));
        assert_eq!(line_of(TEXT, "sources[1].noread[1]"), Some(13));
    }

    #[test]
    fn a_missing_key_points_at_its_table() {
        assert_eq!(line_of(TEXT, "mqtt.client_id"), Some(4));
        assert_eq!(line_of(TEXT, "sources[1].port"), Some(10));
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            steps("sources[2].noread[0]"),
            vec![
                Step::Key("sources"),
                Step::Index(2),
                Step::Key("noread"),
                Step::Index(0)
            ]
        );
    }
}
