//! Key events to text: pure code, no I/O.
//!
//! A [`Decoder`] takes the events of one keyboard in order and appends the bytes they type to an
//! output buffer, as a host set to the scanner's layout would:
//!
//! - Shift (either) and Caps Lock pick the level; Caps Lock toggles on each press of its key and
//!   acts as Shift on letters (and, on French, on the digit row); Shift with Caps Lock gives
//!   lowercase. The host's own Caps Lock (the keyboard LED) is not applied: only Caps Lock
//!   presses the scanner itself sends count.
//! - AltGr (Right Alt, or Ctrl + Left Alt, on layouts that have it) picks the third level.
//! - **Alt + numpad**: while Alt (not AltGr) is held, keypad digits are collected; releasing Alt
//!   types the character with that decimal code, modulo 256, so `Alt + 0 0 2 9` is GS (0x1D),
//!   the GS1 separator. Codes below 128 are that byte; 128–255 are taken as ISO 8859-1 and
//!   typed as UTF-8, with or without a leading 0. Code 0 types nothing. Any other key pressed
//!   while Alt is held is a shortcut, not text, and is ignored.
//! - **Ctrl + key** types the control character of the key's character (`Ctrl + ]` is GS,
//!   `Ctrl + M` is CR), as scanners in "Ctrl + X" mode send control characters.
//! - Enter and keypad Enter type the configured `enter` bytes (the source's terminator).
//! - Dead keys (`^` on German and French) wait for the next key: a letter they combine with
//!   becomes the accented letter, Space the accent alone, anything else the accent followed by
//!   that character.
//! - Keypad keys type their digit or operator whether or not Num Lock is on.
//! - Key repeats (value 2) type again, as a held key would; releases type nothing.
//! - `SYN_DROPPED` (the kernel's buffer overflowed, events were lost): every modifier counts as
//!   released, pending Alt codes and dead keys are discarded, and events up to the next
//!   `SYN_REPORT` are skipped, as the evdev documentation prescribes. The caller hears about it
//!   through [`Note::EventsLost`].

use crate::scanner::config::Layout;

use super::keymap::*;

/// `EV_SYN`, `EV_KEY` from linux/input-event-codes.h.
pub const EV_SYN: u16 = 0x00;
pub const EV_KEY: u16 = 0x01;
pub const SYN_REPORT: u16 = 0;
pub const SYN_DROPPED: u16 = 3;

/// One `struct input_event` without its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    /// `type`: `EV_KEY`, `EV_SYN`, `EV_MSC`, …
    pub kind: u16,
    /// The keycode for `EV_KEY`.
    pub code: u16,
    /// For `EV_KEY`: 0 released, 1 pressed, 2 autorepeat.
    pub value: i32,
}

impl InputEvent {
    /// A key event.
    pub fn key(code: u16, value: i32) -> InputEvent {
        InputEvent {
            kind: EV_KEY,
            code,
            value,
        }
    }

    /// `SYN_REPORT`, which ends each batch of events.
    pub fn report() -> InputEvent {
        InputEvent {
            kind: EV_SYN,
            code: SYN_REPORT,
            value: 0,
        }
    }
}

/// Something the caller should log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// `SYN_DROPPED`: the kernel lost events; the code being typed may be incomplete.
    EventsLost,
    /// A key press that types nothing in this layout (a function key, an arrow, an Alt
    /// shortcut, Ctrl with a key that has no control character).
    Ignored { code: u16 },
}

/// Left and right key of a modifier.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    left: bool,
    right: bool,
}

impl Pair {
    fn any(self) -> bool {
        self.left || self.right
    }
}

/// Decodes one keyboard's events; see the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Decoder {
    keymap: &'static Keymap,
    /// What Enter types: the source's terminator.
    enter: Vec<u8>,
    shift: Pair,
    ctrl: Pair,
    alt: Pair,
    caps_lock: bool,
    /// A dead key's accent waiting for the next key.
    dead: Option<char>,
    /// Keypad digits typed while Alt is held: the code so far.
    alt_code: Option<u32>,
    /// After `SYN_DROPPED`: events are skipped until the next `SYN_REPORT`.
    resyncing: bool,
}

impl Decoder {
    /// A decoder for a scanner set to `layout`, typing `enter` for Enter.
    pub fn new(layout: Layout, enter: &[u8]) -> Decoder {
        Decoder {
            keymap: Keymap::of(layout),
            enter: enter.to_vec(),
            shift: Pair::default(),
            ctrl: Pair::default(),
            alt: Pair::default(),
            caps_lock: false,
            dead: None,
            alt_code: None,
            resyncing: false,
        }
    }

    /// Decodes `event`, appending what it types to `out`.
    pub fn feed(&mut self, event: InputEvent, out: &mut Vec<u8>) -> Option<Note> {
        match (event.kind, event.code) {
            (EV_SYN, SYN_DROPPED) => {
                self.release_all();
                self.resyncing = true;
                Some(Note::EventsLost)
            }
            (EV_SYN, SYN_REPORT) => {
                self.resyncing = false;
                None
            }
            (EV_KEY, code) if !self.resyncing => self.key(code, event.value, out),
            _ => None,
        }
    }

    fn release_all(&mut self) {
        self.shift = Pair::default();
        self.ctrl = Pair::default();
        self.alt = Pair::default();
        self.dead = None;
        self.alt_code = None;
    }

    /// AltGr is active: Right Alt on layouts with AltGr, or Ctrl + Left Alt (Windows' reading).
    fn altgr(&self) -> bool {
        self.keymap.has_altgr && (self.alt.right || (self.ctrl.any() && self.alt.left))
    }

    /// Plain Alt (not AltGr) is held: keypad digits collect an Alt code.
    fn plain_alt(&self) -> bool {
        let alt = self.alt.left || (self.alt.right && !self.keymap.has_altgr);
        alt && !self.altgr()
    }

    fn key(&mut self, code: u16, value: i32, out: &mut Vec<u8>) -> Option<Note> {
        let down = value != 0;
        match code {
            KEY_LEFTSHIFT => self.shift.left = down,
            KEY_RIGHTSHIFT => self.shift.right = down,
            KEY_LEFTCTRL => self.ctrl.left = down,
            KEY_RIGHTCTRL => self.ctrl.right = down,
            KEY_LEFTALT | KEY_RIGHTALT => {
                let was_alt = self.plain_alt();
                if code == KEY_LEFTALT {
                    self.alt.left = down;
                } else {
                    self.alt.right = down;
                }
                if was_alt && !self.plain_alt() {
                    self.finish_alt_code(out);
                }
            }
            KEY_CAPSLOCK => self.caps_lock ^= value == 1,
            _ if down => return self.press(code, out),
            _ => {}
        }
        None
    }

    fn finish_alt_code(&mut self, out: &mut Vec<u8>) {
        let Some(code) = self.alt_code.take() else {
            return;
        };
        match code % 256 {
            0 => {}
            byte @ 1..=127 => {
                self.flush_dead(out);
                out.push(byte as u8);
            }
            latin1 => {
                self.flush_dead(out);
                push_char(out, char::from(latin1 as u8));
            }
        }
    }

    fn press(&mut self, code: u16, out: &mut Vec<u8>) -> Option<Note> {
        if self.plain_alt() {
            if let Some(digit) = keypad_digit(code) {
                // Kept modulo 256 as it grows (the character is the code modulo 256), so no
                // number of digits can overflow.
                self.alt_code = Some((self.alt_code.unwrap_or(0) * 10 + digit) % 256);
                return None;
            }
            self.alt_code = None;
            return Some(Note::Ignored { code });
        }
        if code == KEY_ENTER || code == KEY_KPENTER {
            self.flush_dead(out);
            out.extend_from_slice(&self.enter);
            return None;
        }
        let level = if self.altgr() {
            Level::AltGr
        } else if self.shift.any() != (self.caps_lock && self.keymap.caps_applies(code)) {
            Level::Shift
        } else {
            Level::Base
        };
        let Some(symbol) = self.keymap.symbol(code, level) else {
            return Some(Note::Ignored { code });
        };
        if self.ctrl.any() && !self.altgr() {
            return self.control(code, symbol, out);
        }
        match (self.dead.take(), symbol) {
            (None, Symbol::Dead(accent)) => self.dead = Some(accent),
            (Some(pending), Symbol::Dead(accent)) => {
                push_char(out, spacing(pending));
                self.dead = Some(accent);
            }
            (None, Symbol::Char(c)) => push_char(out, c),
            (Some(accent), Symbol::Char(' ')) => push_char(out, spacing(accent)),
            (Some(accent), Symbol::Char(c)) => match compose(accent, c) {
                Some(composed) => push_char(out, composed),
                None => {
                    push_char(out, spacing(accent));
                    push_char(out, c);
                }
            },
        }
        None
    }

    /// Ctrl + key: the control character of `A`–`Z` (any case), `[`, `\`, `]`, `^`, `_`.
    fn control(&mut self, code: u16, symbol: Symbol, out: &mut Vec<u8>) -> Option<Note> {
        match symbol {
            Symbol::Char(c @ ('A'..='_' | 'a'..='z')) => {
                self.flush_dead(out);
                out.push(c as u8 & 0x1f);
                None
            }
            _ => Some(Note::Ignored { code }),
        }
    }

    /// A dead key followed by something it does not combine with types its accent first.
    fn flush_dead(&mut self, out: &mut Vec<u8>) {
        if let Some(accent) = self.dead.take() {
            push_char(out, spacing(accent));
        }
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
