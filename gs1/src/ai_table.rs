//! The Application Identifier table, as data.
//!
//! Each [`AiEntry`] describes one AI or a range of AIs of the same length (e.g. `3100`–`3105`):
//! its GS1 data title, its value as a sequence of [`Part`]s (format plus content check), whether it
//! is a predefined-length AI (no GS needed after it), and the pairing rules used by whole-string
//! validation. The contents follow the GS1 General Specifications / GS1 Syntax Dictionary for the
//! AIs a shop floor meets; an AI missing here is reported as unknown.
//!
//! AIs are prefix-free (no AI is the beginning of another), so the AI at the front of a field is
//! found by trying its first 2, 3 and 4 digits against the table (`match_prefix`).

use std::fmt;

pub use crate::ai_list::AI_TABLE;

/// Character set of one part of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cset {
    /// ASCII digits only ("N").
    Numeric,
    /// GS1 CSET 82 ("X"): `! " % & ' ( ) * + , - . / 0-9 : ; < = > ? A-Z _ a-z`.
    Cset82,
}

/// Content check applied to one part of a value, beyond its character set and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lint {
    /// No further check.
    None,
    /// The last digit is a GS1 mod-10 check digit.
    CheckDigit,
    /// The digit must be `0` (AI 8003's leading digit).
    Zero,
    /// YYMMDD, where DD = 00 means the last day of the month.
    YyMmD0,
    /// YYMMDD with a real day.
    YyMmDd,
    /// HHMM.
    HhMm,
    /// YYMMDDHH.
    YyMmDdHh,
    /// MM or MMSS.
    MmOptSs,
    /// PPTT: piece PP of a total TT, 1 ≤ PP ≤ TT.
    PieceOfTotal,
}

/// One component of an AI's value, e.g. the `N13` and the `[X..17]` of AI 253.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Allowed characters.
    pub cset: Cset,
    /// Minimum length (equal to `max` for a fixed-length part).
    pub min: u8,
    /// Maximum length.
    pub max: u8,
    /// Whether the part may be absent (only ever the last part).
    pub optional: bool,
    /// Content check.
    pub lint: Lint,
}

impl Part {
    /// Fixed-length numeric part, `Nlen`.
    pub(crate) const fn n(len: u8) -> Part {
        Part {
            cset: Cset::Numeric,
            min: len,
            max: len,
            optional: false,
            lint: Lint::None,
        }
    }
    /// Variable-length numeric part, `N..max`.
    pub(crate) const fn n_var(max: u8) -> Part {
        Part {
            min: 1,
            ..Part::n(max)
        }
    }
    /// Variable-length CSET 82 part, `X..max`.
    pub(crate) const fn x_var(max: u8) -> Part {
        Part {
            cset: Cset::Cset82,
            ..Part::n_var(max)
        }
    }
    /// The same part with a content check.
    pub(crate) const fn lint(self, lint: Lint) -> Part {
        Part { lint, ..self }
    }
    /// The same part, optional.
    pub(crate) const fn opt(self) -> Part {
        Part {
            optional: true,
            ..self
        }
    }
}

impl fmt::Display for Part {
    /// GS1 notation: `N14`, `X..20`, `[N..12]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.cset {
            Cset::Numeric => 'N',
            Cset::Cset82 => 'X',
        };
        let dots = if self.min == self.max { "" } else { ".." };
        match self.optional {
            true => write!(f, "[{c}{dots}{}]", self.max),
            false => write!(f, "{c}{dots}{}", self.max),
        }
    }
}

/// Pairing rule: every inner list must be satisfied by at least one AI present. Patterns may use
/// `n` for any digit (`31nn`).
pub type Requirements = &'static [&'static [&'static str]];

/// One AI or a range of same-length AIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiEntry {
    /// First AI of the range, e.g. `"3100"`.
    pub first: &'static str,
    /// Last AI of the range (equal to `first` for a single AI), e.g. `"3105"`.
    pub last: &'static str,
    /// GS1 data title, e.g. `"GTIN"`.
    pub title: &'static str,
    /// The value's components, in order.
    pub parts: &'static [Part],
    /// Predefined length (GS1 list 00 01 02 11–17 20 31nn–36nn 41n): may be followed directly by
    /// the next AI. Every other AI needs a GS unless it is last, even when fixed-length.
    pub predefined: bool,
    /// The AI's last digit is the number of implied decimal places of the last part.
    pub decimal: bool,
    /// At most one AI of this range per string (e.g. not both 3102 and 3103).
    pub single: bool,
    /// AIs that must accompany this one (see [`Requirements`]).
    pub req: Requirements,
    /// AI patterns that must not appear together with this one.
    pub ex: &'static [&'static str],
    /// GS1 Digital Link primary key: `Some` with the allowed ordered qualifier sequences
    /// (alternatives), `Some(&[])` for a key without qualifiers, `None` for a non-key.
    pub dl_key: Option<Requirements>,
}

impl AiEntry {
    /// A range of AIs with the given title and value format and no rules.
    pub(crate) const fn range(
        first: &'static str,
        last: &'static str,
        title: &'static str,
        parts: &'static [Part],
    ) -> AiEntry {
        AiEntry {
            first,
            last,
            title,
            parts,
            predefined: false,
            decimal: false,
            single: false,
            req: &[],
            ex: &[],
            dl_key: None,
        }
    }
    /// Marks the entry predefined-length.
    pub(crate) const fn pre(self) -> AiEntry {
        AiEntry {
            predefined: true,
            ..self
        }
    }
    /// Sets the mandatory pairings.
    pub(crate) const fn req(self, req: Requirements) -> AiEntry {
        AiEntry { req, ..self }
    }
    /// Sets the exclusive pairings.
    pub(crate) const fn ex(self, ex: &'static [&'static str]) -> AiEntry {
        AiEntry { ex, ..self }
    }
    /// Makes the entry a Digital Link primary key with these qualifier sequences.
    pub(crate) const fn dl(self, qualifiers: Requirements) -> AiEntry {
        AiEntry {
            dl_key: Some(qualifiers),
            ..self
        }
    }
    /// Implied decimals from the AI's last digit; one AI of the range per string.
    pub(crate) const fn decimal(self) -> AiEntry {
        AiEntry {
            decimal: true,
            single: true,
            ..self
        }
    }

    /// Whether `ai` (the AI digits) belongs to this entry.
    pub fn contains(&self, ai: &str) -> bool {
        ai.len() == self.first.len() && self.first <= ai && ai <= self.last
    }

    /// Shortest valid value length.
    pub fn min_len(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| !p.optional)
            .map(|p| usize::from(p.min))
            .sum()
    }

    /// Longest valid value length.
    pub fn max_len(&self) -> usize {
        self.parts.iter().map(|p| usize::from(p.max)).sum()
    }

    /// The value format in GS1 notation, e.g. `"N13 [X..17]"`.
    pub fn format(&self) -> String {
        let parts: Vec<String> = self.parts.iter().map(Part::to_string).collect();
        parts.join(" ")
    }
}

/// The table entry for an exact AI (`"01"`, `"3103"`), if known.
///
/// An index by the AI's digits ([`slot`]): a scan's parse asks for a few AIs per element, and a
/// binary search of the table by string took ~4 % of the agent's CPU at full load
/// (docs/performance.md).
pub fn lookup(ai: &str) -> Option<&'static AiEntry> {
    let at = *INDEX.get(slot(ai)?)?;
    (at != NO_ENTRY).then(|| &AI_TABLE[usize::from(at)])
}

/// Slots of the index: the 2-digit AIs, then the 3-digit, then the 4-digit ones.
const SLOTS: usize = 100 + 1_000 + 10_000;
/// An index slot whose AI is not in the table.
const NO_ENTRY: u16 = u16::MAX;

/// For each AI of 2 to 4 digits, the position of its entry in [`AI_TABLE`] (22 KB, built on
/// first use). An entry's range has one length and digits only, so it is the slots from its
/// `first` to its `last`.
static INDEX: std::sync::LazyLock<Box<[u16]>> = std::sync::LazyLock::new(|| {
    let mut index = vec![NO_ENTRY; SLOTS].into_boxed_slice();
    for (at, e) in AI_TABLE.iter().enumerate() {
        let (first, last) = (slot(e.first), slot(e.last));
        let (Some(first), Some(last)) = (first, last) else {
            unreachable!("AI range {}-{} is not 2 to 4 digits", e.first, e.last);
        };
        index[first..=last].fill(u16::try_from(at).expect("AI table fits in u16"));
    }
    index
});

/// The index slot of an AI of 2 to 4 ASCII digits.
fn slot(ai: &str) -> Option<usize> {
    let digits = ai.as_bytes();
    if !(2..=4).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0'));
    Some(match digits.len() {
        2 => n,
        3 => 100 + n,
        _ => 1_100 + n,
    })
}

/// Whether `ai` is a known predefined-length AI (may be followed directly by the next AI).
pub fn is_predefined_length(ai: &str) -> bool {
    lookup(ai).is_some_and(|e| e.predefined)
}

/// Finds the AI at the front of `data` by trying its first 2, 3 and 4 bytes. Returns the entry
/// and the AI's length.
pub(crate) fn match_prefix(data: &[u8]) -> Option<(&'static AiEntry, usize)> {
    (2..=4).find_map(|len| {
        let head = data.get(..len)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let ai = std::str::from_utf8(head).ok()?;
        lookup(ai).map(|e| (e, len))
    })
}

/// Whether `ai` matches `pattern`, where `n` in the pattern stands for any digit.
pub(crate) fn matches_pattern(ai: &str, pattern: &str) -> bool {
    ai.len() == pattern.len()
        && ai
            .bytes()
            .zip(pattern.bytes())
            .all(|(a, p)| a == p || (p == b'n' && a.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_ranges_are_well_formed() {
        for e in AI_TABLE {
            assert_eq!(e.first.len(), e.last.len(), "{}", e.first);
            assert!((2..=4).contains(&e.first.len()), "{}", e.first);
            assert!(e.first <= e.last, "{}", e.first);
            assert!(
                e.first
                    .bytes()
                    .chain(e.last.bytes())
                    .all(|b| b.is_ascii_digit())
            );
            assert!(!e.parts.is_empty());
            // A predefined-length AI has a fixed length.
            if e.predefined {
                assert_eq!(e.min_len(), e.max_len(), "{}", e.first);
            }
        }
        for w in AI_TABLE.windows(2) {
            assert!(
                w[0].last < w[1].first,
                "{} before {}",
                w[0].last,
                w[1].first
            );
        }
    }

    #[test]
    fn lookup_finds_what_a_scan_of_the_whole_table_finds() {
        let mut found = 0;
        for len in 1..=5 {
            for n in 0..10u32.pow(len as u32) {
                let ai = format!("{n:0len$}");
                let scan = AI_TABLE.iter().find(|e| e.contains(&ai));
                assert_eq!(lookup(&ai).map(|e| e.first), scan.map(|e| e.first), "{ai}");
                found += usize::from(scan.is_some());
            }
        }
        for odd in ["", "0", "1a", "０1", "01 ", "zz", "31n3", "99999"] {
            assert_eq!(
                lookup(odd),
                AI_TABLE.iter().find(|e| e.contains(odd)),
                "{odd:?}"
            );
        }
        assert!(found > 100, "{found}");
    }

    #[test]
    fn table_is_prefix_free() {
        for short in AI_TABLE {
            for long in AI_TABLE
                .iter()
                .filter(|l| l.first.len() > short.first.len())
            {
                let n = short.first.len();
                for ai in [long.first, long.last] {
                    assert!(
                        !short.contains(&ai[..n]),
                        "{} is a prefix of {}",
                        short.first,
                        ai
                    );
                }
            }
        }
    }

    #[test]
    fn required_ais_are_present() {
        let required = [
            "00", "01", "02", "10", "11", "12", "13", "15", "16", "17", "20", "21", "22", "235",
            "240", "241", "242", "250", "251", "253", "254", "255", "30", "3100", "3165", "3205",
            "3695", "37", "3900", "3919", "3929", "3939", "400", "401", "402", "403", "410", "417",
            "420", "421", "422", "7003", "7006", "8003", "8004", "8005", "8006", "8008", "8018",
            "8020", "90", "91", "95", "99",
        ];
        for ai in required {
            assert!(lookup(ai).is_some(), "AI {ai} missing");
        }
        assert!(lookup("3106").is_none(), "310n has at most 5 decimals");
        assert!(lookup("9").is_none() && lookup("999").is_none());
    }

    #[test]
    fn predefined_flags_follow_the_gs1_list() {
        for ai in [
            "00", "01", "02", "11", "17", "20", "3103", "3695", "410", "417",
        ] {
            assert!(is_predefined_length(ai), "{ai}");
        }
        for ai in [
            "10", "21", "30", "37", "3900", "7003", "8005", "8018", "90", "91",
        ] {
            assert!(!is_predefined_length(ai), "{ai}");
        }
    }

    #[test]
    fn prefix_matching_and_formats() {
        assert_eq!(
            match_prefix(b"0109506000134352").map(|(e, l)| (e.first, l)),
            Some(("01", 2))
        );
        assert_eq!(
            match_prefix(b"3103001250").map(|(e, l)| (e.first, l)),
            Some(("3100", 4))
        );
        assert_eq!(
            match_prefix(b"240X").map(|(e, l)| (e.title, l)),
            Some(("ADDITIONAL ID", 3))
        );
        assert!(match_prefix(b"0").is_none());
        assert!(match_prefix(b"ab").is_none());
        assert!(match_prefix(b"3106").is_none());
        assert_eq!(lookup("253").unwrap().format(), "N13 [X..17]");
        assert_eq!(lookup("10").unwrap().format(), "X..20");
        assert!(matches_pattern("3103", "31nn") && !matches_pattern("3203", "31nn"));
    }
}
