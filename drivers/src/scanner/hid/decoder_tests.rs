//! The decoder driven by key-event sequences as a scanner sends them: every key a press and a
//! release, each followed by `SYN_REPORT`, modifiers held around the keys they modify.
//!
//! Keycodes come from `testkeys.rs`, written out from linux/input-event-codes.h, not from the
//! keymap under test.

use super::{Decoder, EV_SYN, InputEvent, Note, SYN_DROPPED};
use crate::scanner::config::Layout;
use crate::scanner::framing::{Frame, Framer};
use crate::scanner::hid::testkeys::*;

/// What `keys` type on `layout` with Enter typing CR LF.
fn typed(layout: Layout, keys: Keys) -> Vec<u8> {
    let mut decoder = Decoder::new(layout, b"\r\n");
    let mut out = Vec::new();
    for event in keys.events() {
        decoder.feed(event, &mut out);
    }
    out
}

fn text(layout: Layout, keys: Keys) -> String {
    String::from_utf8(typed(layout, keys)).expect("UTF-8")
}

#[test]
fn us_gs1_code_keeps_its_gs_from_alt_0029() {
    assert_eq!(
        typed(Layout::Us, v1_us()),
        b"]d201095060001343521726123110ABC123\x1d21SN0001\r\n"
    );
}

#[test]
fn us_shifted_symbols_and_both_shift_keys() {
    let keys = Keys::default()
        .shifted(&[KEY_1, KEY_2, KEY_3, KEY_7, KEY_9, KEY_0, KEY_MINUS])
        .with(
            KEY_RIGHTSHIFT,
            &[KEY_SEMICOLON, KEY_COMMA, KEY_DOT, KEY_SLASH, KEY_GRAVE],
        )
        .taps(&[
            KEY_SEMICOLON,
            KEY_COMMA,
            KEY_DOT,
            KEY_SLASH,
            KEY_MINUS,
            KEY_GRAVE,
        ]);
    assert_eq!(text(Layout::Us, keys), "!@#&()_:<>?~;,./-`");
}

#[test]
fn de_qwertz_swaps_y_and_z_and_uses_altgr() {
    // The positions US calls Y and Z.
    let keys = Keys::default()
        .taps(&[KEY_Y, KEY_Z])
        .shifted(&[KEY_Y, KEY_7, KEY_0, KEY_2])
        .taps(&[KEY_MINUS, KEY_SLASH, KEY_SEMICOLON])
        .altgr(&[KEY_Q, KEY_E, KEY_7, KEY_0])
        // AIM id `]d2`: `]` is AltGr + 9 on German keyboards.
        .altgr(&[KEY_9])
        .taps(&[KEY_D, KEY_2]);
    assert_eq!(text(Layout::De, keys), "zyZ/=\"ß-ö@€{}]d2");
}

#[test]
fn fr_azerty_needs_shift_for_digits() {
    let keys = Keys::default()
        .taps(&[KEY_1, KEY_2, KEY_3])
        .shifted(&[KEY_1, KEY_2, KEY_3, KEY_0])
        // The positions US calls Q, W, A, Z, ;, M and ,.
        .taps(&[KEY_Q, KEY_W, KEY_A, KEY_Z, KEY_SEMICOLON, KEY_M])
        .shifted(&[KEY_M, KEY_COMMA, KEY_DOT])
        .altgr(&[KEY_0, KEY_MINUS, KEY_3])
        .tap(KEY_SLASH);
    assert_eq!(text(Layout::Fr, keys), "&é\"1230azqwm,?./@]#!");
}

#[test]
fn the_same_keys_read_through_the_wrong_layout_swap_characters() {
    let keys = || Keys::default().taps(&[KEY_Q, KEY_W, KEY_Y, KEY_1]);
    assert_eq!(text(Layout::Us, keys()), "qwy1");
    assert_eq!(text(Layout::De, keys()), "qwz1");
    assert_eq!(text(Layout::Fr, keys()), "azy&");
}

#[test]
fn caps_lock_inverts_letters_and_shift_inverts_it_back() {
    let keys = Keys::default()
        .tap(KEY_CAPSLOCK)
        .taps(&[KEY_A, KEY_B, KEY_1, KEY_MINUS])
        .shifted(&[KEY_A, KEY_1])
        .tap(KEY_CAPSLOCK)
        .taps(&[KEY_A, KEY_1]);
    assert_eq!(text(Layout::Us, keys), "AB1-a!a1");
}

#[test]
fn caps_lock_on_german_umlauts_and_french_digits() {
    let de = Keys::default()
        .tap(KEY_CAPSLOCK)
        .taps(&[KEY_SEMICOLON, KEY_Y, KEY_MINUS, KEY_1]);
    assert_eq!(text(Layout::De, de), "ÖZß1");
    // Windows' French layout: Caps Lock gives the digits, like Shift.
    let fr = Keys::default()
        .tap(KEY_CAPSLOCK)
        .taps(&[KEY_1, KEY_2, KEY_Q, KEY_SEMICOLON])
        .shifted(&[KEY_2, KEY_Q]);
    assert_eq!(text(Layout::Fr, fr), "12AMéa");
}

#[test]
fn a_held_caps_lock_toggles_once() {
    let keys = Keys::default()
        .event(KEY_CAPSLOCK, 1)
        .event(KEY_CAPSLOCK, 2)
        .event(KEY_CAPSLOCK, 2)
        .event(KEY_CAPSLOCK, 0)
        .tap(KEY_A);
    assert_eq!(text(Layout::Us, keys), "A");
}

#[test]
fn alt_codes_type_control_and_latin1_characters() {
    let keys = Keys::default()
        .alt_code(&[KEY_KP0, KEY_KP0, KEY_KP2, KEY_KP9]) // GS
        .alt_code(&[KEY_KP2, KEY_KP9]) // GS without the leading zero
        .alt_code(&[KEY_KP6, KEY_KP5]) // A
        .alt_code(&[KEY_KP0, KEY_KP1, KEY_KP9, KEY_KP6]) // Ä (0xC4)
        .alt_code(&[KEY_KP0]) // NUL: nothing
        .alt_code(&[]) // Alt alone: nothing
        .alt_code(&[KEY_KP2, KEY_KP9, KEY_KP5]); // 295 mod 256 = 39, an apostrophe
    assert_eq!(typed(Layout::Us, keys), "\x1d\x1dAÄ'".as_bytes());
}

#[test]
fn alt_codes_with_left_alt_on_layouts_whose_right_alt_is_altgr() {
    let gs = Keys::default().alt_code(&[KEY_KP0, KEY_KP0, KEY_KP2, KEY_KP9]);
    assert_eq!(typed(Layout::De, gs), b"\x1d");
    // Right Alt on US is Alt too.
    let us = Keys::default().with(KEY_RIGHTALT, &[KEY_KP2, KEY_KP9]);
    assert_eq!(typed(Layout::Us, us), b"\x1d");
    // On German it is AltGr: keypad keys type their digits.
    let de = Keys::default().altgr(&[KEY_KP2, KEY_KP9]);
    assert_eq!(typed(Layout::De, de), b"29");
}

#[test]
fn other_keys_under_alt_are_shortcuts_and_cancel_the_code() {
    let keys = Keys::default()
        .event(KEY_LEFTALT, 1)
        .taps(&[KEY_KP2, KEY_A, KEY_KP9])
        .event(KEY_LEFTALT, 0)
        .tap(KEY_B);
    // `A` cancelled the 2; the 9 after it is a new code: TAB.
    assert_eq!(typed(Layout::Us, keys), b"\x09b");
}

#[test]
fn ctrl_with_a_key_types_its_control_character() {
    let keys = Keys::default()
        .with(KEY_LEFTCTRL, &[KEY_RIGHTBRACE, KEY_M, KEY_D, KEY_1])
        .tap(KEY_A);
    // Ctrl + ] is GS, Ctrl + M is CR, Ctrl + D is EOT; Ctrl + 1 has none.
    assert_eq!(typed(Layout::Us, keys), b"\x1d\r\x04a");
}

#[test]
fn ctrl_and_left_alt_together_are_altgr_on_european_layouts() {
    let keys = Keys::default()
        .event(KEY_LEFTCTRL, 1)
        .event(KEY_LEFTALT, 1)
        .tap(KEY_Q)
        .event(KEY_LEFTALT, 0)
        .event(KEY_LEFTCTRL, 0);
    assert_eq!(text(Layout::De, keys), "@");
}

#[test]
fn dead_keys_combine_or_type_their_accent() {
    let de = Keys::default()
        .taps(&[KEY_GRAVE, KEY_SPACE]) // ^ then Space: ^
        .taps(&[KEY_GRAVE, KEY_E]) // ^ then e: ê
        .taps(&[KEY_GRAVE, KEY_X]) // ^ then x: ^x
        .taps(&[KEY_GRAVE, KEY_ENTER]); // ^ then Enter: ^ and the terminator
    assert_eq!(text(Layout::De, de), "^ê^x^\r\n");
    let fr = Keys::default()
        .taps(&[KEY_LEFTBRACE, KEY_Q]) // ^ then a: â
        .shifted(&[KEY_LEFTBRACE])
        .tap(KEY_E) // ¨ then e: ë
        .altgr(&[KEY_2])
        .tap(KEY_SPACE); // AltGr + é is a dead ~
    assert_eq!(text(Layout::Fr, fr), "âë~");
}

#[test]
fn repeats_type_again_and_releases_type_nothing() {
    let keys = Keys::default()
        .event(KEY_A, 1)
        .event(KEY_A, 2)
        .event(KEY_A, 2)
        .event(KEY_A, 0);
    assert_eq!(text(Layout::Us, keys), "aaa");
}

#[test]
fn keys_without_a_character_are_noted_not_typed() {
    let mut decoder = Decoder::new(Layout::Us, b"\r");
    let mut out = Vec::new();
    let note = decoder.feed(InputEvent::key(KEY_F1, 1), &mut out);
    assert_eq!(note, Some(Note::Ignored { code: KEY_F1 }));
    // Scan codes (EV_MSC) and other event types are not keys.
    let msc = InputEvent {
        kind: 4,
        code: 4,
        value: 0x70004,
    };
    assert_eq!(decoder.feed(msc, &mut out), None);
    assert!(out.is_empty());
}

#[test]
fn syn_dropped_releases_modifiers_and_skips_to_the_next_report() {
    let mut decoder = Decoder::new(Layout::Us, b"\r");
    let mut out = Vec::new();
    for event in Keys::default().event(KEY_LEFTSHIFT, 1).events() {
        decoder.feed(event, &mut out);
    }
    let dropped = InputEvent {
        kind: EV_SYN,
        code: SYN_DROPPED,
        value: 0,
    };
    assert_eq!(decoder.feed(dropped, &mut out), Some(Note::EventsLost));
    // Until SYN_REPORT: skipped. The Shift release was lost, but Shift counts as released.
    decoder.feed(InputEvent::key(KEY_B, 1), &mut out);
    decoder.feed(InputEvent::report(), &mut out);
    for event in Keys::default().tap(KEY_A).events() {
        decoder.feed(event, &mut out);
    }
    assert_eq!(out, b"a");
}

#[test]
fn a_code_without_its_terminator_is_completed_by_the_idle_gap() {
    let mut decoder = Decoder::new(Layout::Us, b"\r\n");
    let mut framer = Framer::new(b"\r\n", false, 64);
    let mut out = Vec::new();
    for event in Keys::default().taps(&[KEY_A, KEY_B, KEY_1]).events() {
        decoder.feed(event, &mut out);
    }
    assert!(framer.push(&out).is_empty(), "no Enter: no frame yet");
    assert!(framer.is_pending(), "the shell arms its idle timer");
    assert_eq!(framer.flush_idle(), Some(Frame::Data(b"ab1".to_vec())));
}

/// A US-layout scanner typing `A1`, GS (Alt + 0029) and Enter, in the format `evtest` prints:
/// scan codes (EV_MSC, in hex) precede each key, SYN_REPORT ends each batch. Written for this
/// test, not captured from a device; a capture from a real scanner can be added the same way.
const EVTEST_CAPTURE: &str = include_str!("testdata/us-a1-gs-enter.evtest");

/// Events of the `Event: time …, type N (…), code N (…), value N` lines of evtest output.
fn parse_evtest(text: &str) -> Vec<InputEvent> {
    // `type 1 (EV_KEY)` → 1; evtest prints MSC_SCAN values in hex without a prefix.
    let number = |field: &str, name: &str, radix: u32| -> i64 {
        let rest = field.trim().strip_prefix(name).expect(name).trim();
        i64::from_str_radix(rest.split(' ').next().unwrap(), radix).unwrap()
    };
    text.lines()
        .filter(|line| line.starts_with("Event: time"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            if fields.len() != 4 {
                // `-------------- SYN_REPORT ------------`
                return line.contains("SYN_REPORT").then(InputEvent::report);
            }
            let radix = if fields[2].contains("(MSC_") { 16 } else { 10 };
            Some(InputEvent {
                kind: number(fields[1], "type", 10) as u16,
                code: number(fields[2], "code", 10) as u16,
                value: number(fields[3], "value", radix) as i32,
            })
        })
        .collect()
}

#[test]
fn a_recorded_evtest_session_decodes() {
    let events = parse_evtest(EVTEST_CAPTURE);
    assert!(events.len() > 30, "{} events", events.len());
    let mut decoder = Decoder::new(Layout::Us, b"\r");
    let mut out = Vec::new();
    for event in events {
        decoder.feed(event, &mut out);
    }
    assert_eq!(out, b"A1\x1d\r");
}

/// Found while writing the fuzz target `hid_decoder` (its no-panic invariant): ten or more keypad
/// digits under Alt overflowed the code (`saturating_mul(10) + digit` panics once the product
/// saturates, in debug builds; release builds wrapped).
#[test]
fn alt_code_of_many_digits_does_not_overflow() {
    // 99 999 999 999 mod 256 = 255: ÿ. The code is taken modulo 256 however long it is.
    let keys = Keys::default().alt_code(&[KEY_KP9; 11]);
    assert_eq!(text(Layout::Us, keys), "ÿ");
    let keys = Keys::default().alt_code(&[KEY_KP0; 40]);
    assert_eq!(typed(Layout::De, keys), b"");
}
