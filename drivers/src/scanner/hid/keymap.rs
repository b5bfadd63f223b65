//! Keyboard layouts as data: which character each key position types.
//!
//! Linux reports key *positions* (evdev keycodes: `KEY_Q = 16` is the key right of Tab, whatever
//! is printed on it). A scanner set to a layout presses the positions that type its characters
//! on a host with that layout, so the decoder must read them back through the same layout.
//!
//! Each layout is four rows of consecutive keycodes, written as strings per level (unshifted,
//! Shift, AltGr). In those strings `\0` means "types nothing" and a Unicode *combining* mark
//! stands for a dead key (`\u{302}` is the dead circumflex `^` of German and French layouts).
//! The tables follow the Windows layouts of the same name, which scanner vendors target; Linux'
//! `us`, `de` and `fr` agree on every printable ASCII character.

use crate::scanner::config::Layout;

// Keycodes from linux/input-event-codes.h that the decoder handles by name.
pub const KEY_TAB: u16 = 15;
pub const KEY_ENTER: u16 = 28;
pub const KEY_LEFTCTRL: u16 = 29;
pub const KEY_LEFTSHIFT: u16 = 42;
pub const KEY_RIGHTSHIFT: u16 = 54;
pub const KEY_LEFTALT: u16 = 56;
pub const KEY_SPACE: u16 = 57;
pub const KEY_CAPSLOCK: u16 = 58;
pub const KEY_KPENTER: u16 = 96;
pub const KEY_RIGHTCTRL: u16 = 97;
pub const KEY_RIGHTALT: u16 = 100;
/// The extra key left of Z on ISO (European) keyboards.
pub const KEY_102ND: u16 = 86;
/// The first and last keycode of the digit row (`1` … `0` on US).
const KEY_1: u16 = 2;
const KEY_0: u16 = 11;
const KEY_Q: u16 = 16;
const KEY_A: u16 = 30;
const KEY_BACKSLASH: u16 = 43;

/// Keypad keys and what they type (independent of layout and Num Lock, except the decimal key).
const KEYPAD: [(u16, char); 15] = [
    (82, '0'),
    (79, '1'),
    (80, '2'),
    (81, '3'),
    (75, '4'),
    (76, '5'),
    (77, '6'),
    (71, '7'),
    (72, '8'),
    (73, '9'),
    (55, '*'),
    (74, '-'),
    (78, '+'),
    (98, '/'),
    (83, '.'),
];
const KEY_KPDOT: u16 = 83;

/// What a key types at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbol {
    Char(char),
    /// A dead key: the accent (as a combining mark) waits for the next key.
    Dead(char),
}

/// The three levels of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Base,
    Shift,
    AltGr,
}

/// Consecutive keycodes from `first`, one character per key and level.
#[derive(Debug)]
struct Row {
    first: u16,
    base: &'static str,
    shift: &'static str,
    altgr: &'static str,
}

/// One layout.
#[derive(Debug)]
pub struct Keymap {
    rows: [Row; 4],
    /// `KEY_102ND` at the three levels.
    iso: &'static str,
    /// What the keypad's decimal key types (a comma on German keyboards).
    kp_decimal: char,
    /// Right Alt is AltGr (the third level), as on every European layout; on US it is Alt.
    pub has_altgr: bool,
    /// Caps Lock also shifts the digit row, as Windows' French layout does (Caps Lock + `é`
    /// types `2`). Elsewhere Caps Lock shifts letters only.
    caps_shifts_digits: bool,
}

const US: Keymap = Keymap {
    rows: [
        Row {
            first: KEY_1,
            base: "1234567890-=",
            shift: "!@#$%^&*()_+",
            altgr: "",
        },
        Row {
            first: KEY_Q,
            base: "qwertyuiop[]",
            shift: "QWERTYUIOP{}",
            altgr: "",
        },
        Row {
            first: KEY_A,
            base: "asdfghjkl;'`",
            shift: "ASDFGHJKL:\"~",
            altgr: "",
        },
        Row {
            first: KEY_BACKSLASH,
            base: "\\zxcvbnm,./",
            shift: "|ZXCVBNM<>?",
            altgr: "",
        },
    ],
    iso: "\\|",
    kp_decimal: '.',
    has_altgr: false,
    caps_shifts_digits: false,
};

const DE: Keymap = Keymap {
    rows: [
        Row {
            first: KEY_1,
            base: "1234567890ß\u{301}",
            shift: "!\"§$%&/()=?\u{300}",
            altgr: "\0²³\0\0\0{[]}\\\0",
        },
        Row {
            first: KEY_Q,
            base: "qwertzuiopü+",
            shift: "QWERTZUIOPÜ*",
            altgr: "@\0€\0\0\0\0\0\0\0\0~",
        },
        Row {
            first: KEY_A,
            base: "asdfghjklöä\u{302}",
            shift: "ASDFGHJKLÖÄ°",
            altgr: "",
        },
        Row {
            first: KEY_BACKSLASH,
            base: "#yxcvbnm,.-",
            shift: "'YXCVBNM;:_",
            altgr: "\0\0\0\0\0\0\0µ",
        },
    ],
    iso: "<>|",
    kp_decimal: ',',
    has_altgr: true,
    caps_shifts_digits: false,
};

const FR: Keymap = Keymap {
    rows: [
        Row {
            first: KEY_1,
            base: "&é\"'(-è_çà)=",
            shift: "1234567890°+",
            altgr: "\0\u{303}#{[|\u{300}\\^@]}",
        },
        Row {
            first: KEY_Q,
            base: "azertyuiop\u{302}$",
            shift: "AZERTYUIOP\u{308}£",
            altgr: "\0\0€\0\0\0\0\0\0\0\0¤",
        },
        Row {
            first: KEY_A,
            base: "qsdfghjklmù²",
            shift: "QSDFGHJKLM%",
            altgr: "",
        },
        Row {
            first: KEY_BACKSLASH,
            base: "*wxcvbn,;:!",
            shift: "µWXCVBN?./§",
            altgr: "",
        },
    ],
    iso: "<>",
    kp_decimal: '.',
    has_altgr: true,
    caps_shifts_digits: true,
};

impl Keymap {
    /// The table of `layout`.
    pub fn of(layout: Layout) -> &'static Keymap {
        match layout {
            Layout::Us => &US,
            Layout::De => &DE,
            Layout::Fr => &FR,
        }
    }

    /// What `code` types at `level`; `None` for keys that type nothing there (and for keys that
    /// are not character keys at all: function keys, arrows, modifiers).
    pub fn symbol(&self, code: u16, level: Level) -> Option<Symbol> {
        if let Some(c) = keypad(code) {
            return Some(Symbol::Char(if code == KEY_KPDOT {
                self.kp_decimal
            } else {
                c
            }));
        }
        match code {
            KEY_SPACE => return Some(Symbol::Char(' ')),
            KEY_TAB => return Some(Symbol::Char('\t')),
            _ => {}
        }
        let found = if code == KEY_102ND {
            self.iso.chars().nth(level_index(level))
        } else {
            let row = self
                .rows
                .iter()
                .find(|r| (r.first..r.first + 12).contains(&code))?;
            row_level(row, level)
                .chars()
                .nth(usize::from(code - row.first))
        };
        match found? {
            '\0' => None,
            c if is_combining(c) => Some(Symbol::Dead(c)),
            c => Some(Symbol::Char(c)),
        }
    }

    /// True when Caps Lock acts as Shift on `code`: letters (including `ä`, `ö`, `ü`), and the
    /// digit row where the layout says so.
    pub fn caps_applies(&self, code: u16) -> bool {
        if self.caps_shifts_digits && (KEY_1..=KEY_0).contains(&code) {
            return true;
        }
        match (
            self.symbol(code, Level::Base),
            self.symbol(code, Level::Shift),
        ) {
            (Some(Symbol::Char(lower)), Some(Symbol::Char(upper))) => {
                lower.is_lowercase() && lower.to_uppercase().eq(std::iter::once(upper))
            }
            _ => false,
        }
    }
}

fn row_level(row: &Row, level: Level) -> &'static str {
    match level {
        Level::Base => row.base,
        Level::Shift => row.shift,
        Level::AltGr => row.altgr,
    }
}

fn level_index(level: Level) -> usize {
    match level {
        Level::Base => 0,
        Level::Shift => 1,
        Level::AltGr => 2,
    }
}

/// The character of a keypad key, before the layout's decimal separator is applied.
fn keypad(code: u16) -> Option<char> {
    KEYPAD.iter().find(|(k, _)| *k == code).map(|(_, c)| *c)
}

/// The value of a keypad digit key, for Alt + numpad codes.
pub fn keypad_digit(code: u16) -> Option<u32> {
    keypad(code).and_then(|c| c.to_digit(10))
}

fn is_combining(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

/// Dead-key accents: the combining mark, the character it types on its own (dead key then
/// Space, or a key it cannot be combined with), and the letters it combines with.
const ACCENTS: [(char, char, &str, &str); 5] = [
    ('\u{302}', '^', "aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
    ('\u{308}', '¨', "aeiouyAEIOU", "äëïöüÿÄËÏÖÜ"),
    ('\u{301}', '´', "aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ"),
    ('\u{300}', '`', "aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
    ('\u{303}', '~', "aonAON", "ãõñÃÕÑ"),
];

/// The character a dead key types on its own.
pub fn spacing(accent: char) -> char {
    ACCENTS
        .iter()
        .find(|(mark, ..)| *mark == accent)
        .map_or(accent, |(_, alone, ..)| *alone)
}

/// `base` with the dead key's accent, if that letter exists.
pub fn compose(accent: char, base: char) -> Option<char> {
    let (_, _, bases, composed) = ACCENTS.iter().find(|(mark, ..)| *mark == accent)?;
    let index = bases.chars().position(|b| b == base)?;
    composed.chars().nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character a key of `keymap` types, directly or as a dead key followed by Space.
    fn typeable(keymap: &Keymap) -> Vec<char> {
        let mut chars = Vec::new();
        for code in 0..128 {
            for level in [Level::Base, Level::Shift, Level::AltGr] {
                match keymap.symbol(code, level) {
                    Some(Symbol::Char(c)) => chars.push(c),
                    Some(Symbol::Dead(accent)) => chars.push(spacing(accent)),
                    None => {}
                }
            }
        }
        chars
    }

    #[test]
    fn every_printable_ascii_character_can_be_typed_on_every_layout() {
        for layout in [Layout::Us, Layout::De, Layout::Fr] {
            let chars = typeable(Keymap::of(layout));
            let missing: String = (' '..='~').filter(|c| !chars.contains(c)).collect();
            assert_eq!(missing, "", "{layout:?} cannot type these");
        }
    }

    #[test]
    fn rows_are_as_long_as_their_keys() {
        for layout in [Layout::Us, Layout::De, Layout::Fr] {
            let keymap = Keymap::of(layout);
            for row in &keymap.rows {
                for text in [row.base, row.shift, row.altgr] {
                    assert!(text.chars().count() <= 12, "{layout:?}: {text:?}");
                }
                assert_eq!(
                    row.base.chars().count(),
                    12 - usize::from(row.first == KEY_BACKSLASH)
                );
            }
        }
    }

    #[test]
    fn letters_follow_caps_lock_and_other_keys_do_not() {
        let us = Keymap::of(Layout::Us);
        assert!(us.caps_applies(KEY_A));
        assert!(!us.caps_applies(KEY_1));
        assert!(!us.caps_applies(KEY_BACKSLASH));
        let de = Keymap::of(Layout::De);
        // ä, but not ß (its uppercase is not on the Shift level).
        assert!(de.caps_applies(40));
        assert!(!de.caps_applies(12));
        assert!(Keymap::of(Layout::Fr).caps_applies(KEY_1));
    }

    #[test]
    fn dead_keys_compose_known_letters_only() {
        assert_eq!(compose('\u{302}', 'e'), Some('ê'));
        assert_eq!(compose('\u{308}', 'U'), Some('Ü'));
        assert_eq!(compose('\u{303}', 'n'), Some('ñ'));
        assert_eq!(compose('\u{302}', 'x'), None);
        assert_eq!(spacing('\u{301}'), '´');
    }
}
