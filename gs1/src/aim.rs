//! AIM symbology identifiers: `]` + code character + modifier at the front of a scan.
//!
//! Only `]C1` (GS1-128), `]d2` (GS1 DataMatrix), `]Q3` (GS1 QR Code), `]e0` (GS1 DataBar) and
//! `]J1` (GS1 DotCode) announce a GS1 element string. Never extract AIs from other symbologies,
//! e.g. `]d1` (plain Data Matrix) or `]Q1` (plain QR, where a GS1 Digital Link URI may be found).

use serde::Serialize;

/// AIM symbology identifier at the front of a scan, e.g. `]d2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbology {
    /// The identifier as received, e.g. `"]d2"`.
    pub aim: String,
    /// Human name, e.g. `"GS1 DataMatrix"`; `"unknown"` for a code character not in the table.
    pub name: &'static str,
    /// Whether the data is a GS1 element string (FNC1 in first position).
    pub gs1: bool,
}

/// (code character, modifier or `None` for any, name, GS1). First match wins.
const SYMBOLOGIES: &[(u8, Option<u8>, &str, bool)] = &[
    (b'C', Some(b'1'), "GS1-128", true),
    (b'C', None, "Code 128", false),
    (b'd', Some(b'2'), "GS1 DataMatrix", true),
    (b'd', None, "Data Matrix", false),
    (b'Q', Some(b'3'), "GS1 QR Code", true),
    (b'Q', None, "QR Code", false),
    (b'e', Some(b'0'), "GS1 DataBar", true),
    (b'e', None, "GS1 DataBar / Composite", false),
    (b'J', Some(b'1'), "GS1 DotCode", true),
    (b'J', None, "DotCode", false),
    (b'E', Some(b'4'), "EAN-8", false),
    (b'E', None, "EAN-13 / UPC", false),
    (b'A', None, "Code 39", false),
    (b'B', None, "Telepen", false),
    (b'D', None, "Code One", false),
    (b'F', None, "Codabar", false),
    (b'G', None, "Code 93", false),
    (b'H', None, "Code 11", false),
    (b'I', None, "ITF (Interleaved 2 of 5)", false),
    (b'K', None, "Code 16K", false),
    (b'L', None, "PDF417", false),
    (b'M', None, "MSI", false),
    (b'P', None, "Plessey", false),
    (b'R', None, "Straight 2 of 5 (2 bar)", false),
    (b'S', None, "Straight 2 of 5 (3 bar)", false),
    (b'T', None, "Code 49", false),
    (b'U', None, "MaxiCode", false),
    (b'X', None, "other", false),
    (b'z', None, "Aztec Code", false),
    (b'h', None, "Han Xin Code", false),
];

/// Splits a leading AIM identifier (`]` + code character + modifier character) off raw scan
/// bytes. Both characters must be ASCII letters or digits; otherwise there is no identifier and
/// the input comes back whole. Unknown code characters still yield a [`Symbology`] named
/// `"unknown"`.
///
/// ```
/// let (sym, rest) = tracegate_gs1::split_aim(b"]d2010950600013435217261231");
/// let sym = sym.unwrap();
/// assert_eq!((sym.aim.as_str(), sym.name, sym.gs1), ("]d2", "GS1 DataMatrix", true));
/// assert_eq!(rest, b"010950600013435217261231");
/// ```
pub fn split_aim(raw: &[u8]) -> (Option<Symbology>, &[u8]) {
    let [b']', code, modifier, rest @ ..] = raw else {
        return (None, raw);
    };
    if !code.is_ascii_alphanumeric() || !modifier.is_ascii_alphanumeric() {
        return (None, raw);
    }
    let (name, gs1) = SYMBOLOGIES
        .iter()
        .find(|(c, m, _, _)| c == code && m.is_none_or(|m| m == *modifier))
        .map_or(("unknown", false), |&(_, _, name, gs1)| (name, gs1));
    let aim = format!("]{}{}", char::from(*code), char::from(*modifier));
    (Some(Symbology { aim, name, gs1 }), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(raw: &[u8]) -> (String, &'static str, bool) {
        let s = split_aim(raw).0.expect("an AIM identifier");
        (s.aim, s.name, s.gs1)
    }

    #[test]
    fn gs1_identifiers() {
        assert_eq!(
            sym(b"]C100106141411234567897"),
            ("]C1".into(), "GS1-128", true)
        );
        assert_eq!(sym(b"]d201"), ("]d2".into(), "GS1 DataMatrix", true));
        assert_eq!(sym(b"]Q301"), ("]Q3".into(), "GS1 QR Code", true));
        assert_eq!(sym(b"]e001"), ("]e0".into(), "GS1 DataBar", true));
        assert_eq!(sym(b"]J101"), ("]J1".into(), "GS1 DotCode", true));
    }

    #[test]
    fn non_gs1_identifiers() {
        assert_eq!(
            sym(b"]d1010950600013435217261231"),
            ("]d1".into(), "Data Matrix", false)
        );
        assert_eq!(
            sym(b"]Q1https://id.gs1.org/"),
            ("]Q1".into(), "QR Code", false)
        );
        assert_eq!(sym(b"]C0ABC"), ("]C0".into(), "Code 128", false));
        assert_eq!(
            sym(b"]E04006381333931"),
            ("]E0".into(), "EAN-13 / UPC", false)
        );
        assert_eq!(sym(b"]E496385074"), ("]E4".into(), "EAN-8", false));
        assert_eq!(
            sym(b"]I1123"),
            ("]I1".into(), "ITF (Interleaved 2 of 5)", false)
        );
        assert_eq!(sym(b"]Y0abc"), ("]Y0".into(), "unknown", false));
        // Exactly three bytes: identifier and nothing else.
        assert_eq!(split_aim(b"]A0").1, b"");
    }

    #[test]
    fn no_identifier() {
        for raw in [
            &b""[..],
            b"]",
            b"]d",
            b"0109506000134352",
            b"]\xffa",
            b"]d\x1d",
            b"[d2",
        ] {
            assert_eq!(split_aim(raw), (None, raw));
        }
    }
}
