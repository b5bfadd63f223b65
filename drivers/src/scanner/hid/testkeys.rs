//! Test support: keycodes written out from linux/input-event-codes.h (not taken from the
//! keymap under test) and a builder for key-event sequences as a scanner types them.

use super::decoder::InputEvent;
use super::stream::encode_record;

pub const KEY_ENTER: u16 = 28;
pub const KEY_LEFTCTRL: u16 = 29;
pub const KEY_LEFTSHIFT: u16 = 42;
pub const KEY_RIGHTSHIFT: u16 = 54;
pub const KEY_LEFTALT: u16 = 56;
pub const KEY_SPACE: u16 = 57;
pub const KEY_CAPSLOCK: u16 = 58;
pub const KEY_RIGHTALT: u16 = 100;
pub const KEY_1: u16 = 2;
pub const KEY_2: u16 = 3;
pub const KEY_3: u16 = 4;
pub const KEY_7: u16 = 8;
pub const KEY_9: u16 = 10;
pub const KEY_0: u16 = 11;
pub const KEY_MINUS: u16 = 12;
pub const KEY_Q: u16 = 16;
pub const KEY_W: u16 = 17;
pub const KEY_E: u16 = 18;
pub const KEY_R: u16 = 19;
pub const KEY_Y: u16 = 21;
pub const KEY_O: u16 = 24;
pub const KEY_LEFTBRACE: u16 = 26;
pub const KEY_RIGHTBRACE: u16 = 27;
pub const KEY_A: u16 = 30;
pub const KEY_B: u16 = 48;
pub const KEY_C: u16 = 46;
pub const KEY_D: u16 = 32;
pub const KEY_N: u16 = 49;
pub const KEY_S: u16 = 31;
pub const KEY_SEMICOLON: u16 = 39;
pub const KEY_GRAVE: u16 = 41;
pub const KEY_Z: u16 = 44;
pub const KEY_X: u16 = 45;
pub const KEY_M: u16 = 50;
pub const KEY_COMMA: u16 = 51;
pub const KEY_DOT: u16 = 52;
pub const KEY_SLASH: u16 = 53;
pub const KEY_F1: u16 = 59;
pub const KEY_KP0: u16 = 82;
pub const KEY_KP2: u16 = 80;
pub const KEY_KP6: u16 = 77;
pub const KEY_KP5: u16 = 76;
pub const KEY_KP9: u16 = 73;
pub const KEY_KP1: u16 = 79;

/// Builds a sequence of events the way a scanner types.
#[derive(Default)]
pub struct Keys(Vec<InputEvent>);

impl Keys {
    pub fn event(mut self, code: u16, value: i32) -> Self {
        self.0.push(InputEvent::key(code, value));
        self.0.push(InputEvent::report());
        self
    }
    pub fn tap(self, code: u16) -> Self {
        self.event(code, 1).event(code, 0)
    }
    pub fn taps(self, codes: &[u16]) -> Self {
        codes.iter().fold(self, |keys, &code| keys.tap(code))
    }
    /// `codes` typed while `modifier` is held.
    pub fn with(self, modifier: u16, codes: &[u16]) -> Self {
        self.event(modifier, 1).taps(codes).event(modifier, 0)
    }
    pub fn shifted(self, codes: &[u16]) -> Self {
        self.with(KEY_LEFTSHIFT, codes)
    }
    pub fn altgr(self, codes: &[u16]) -> Self {
        self.with(KEY_RIGHTALT, codes)
    }
    /// Alt held while keypad digits are typed, then released: an Alt code.
    pub fn alt_code(self, keypad: &[u16]) -> Self {
        self.with(KEY_LEFTALT, keypad)
    }
    pub fn enter(self) -> Self {
        self.tap(KEY_ENTER)
    }
}

impl Keys {
    /// The events, in order.
    pub fn events(&self) -> Vec<InputEvent> {
        self.0.clone()
    }

    /// The events as raw `struct input_event` records.
    pub fn records(&self) -> Vec<u8> {
        self.0.iter().flat_map(|e| encode_record(*e)).collect()
    }
}

/// The keys of the digits in `text` (digit row).
pub fn digits(text: &str) -> Vec<u16> {
    text.chars()
        .map(|c| match c.to_digit(10).expect("a digit") {
            0 => KEY_0,
            d => KEY_1 + d as u16 - 1,
        })
        .collect()
}

/// domain.md V1 as a US-layout scanner types it: AIM id `]d2`, GS as Alt + 0029, then Enter:
/// `]d201095060001343521726123110ABC123<GS>21SN0001`.
pub fn v1_us() -> Keys {
    Keys::default()
        .taps(&[KEY_RIGHTBRACE, KEY_D, KEY_2])
        .taps(&digits("010950600013435217261231"))
        .taps(&digits("10"))
        .shifted(&[KEY_A, KEY_B, KEY_C])
        .taps(&digits("123"))
        .alt_code(&[KEY_KP0, KEY_KP0, KEY_KP2, KEY_KP9])
        .taps(&digits("21"))
        .shifted(&[KEY_S, KEY_N])
        .taps(&digits("0001"))
        .enter()
}
