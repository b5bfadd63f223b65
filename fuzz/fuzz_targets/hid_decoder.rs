//! HID keyboard-wedge decoding: arbitrary key event sequences through the pure `Decoder`, for
//! every layout.
//!
//! Invariants checked:
//! - no panic (long Alt + numpad codes, repeats, odd event types and values, SYN_DROPPED
//!   anywhere);
//! - with a UTF-8 `enter`, what is typed is UTF-8 (Alt codes 128–255 are typed as ISO 8859-1
//!   characters, control characters are ASCII);
//! - a sequence without any key press or repeat types nothing;
//! - `SYN_DROPPED` is reported as `EventsLost`, and only it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tracegate_drivers::scanner::Layout;
use tracegate_drivers::scanner::hid::decoder::{
    Decoder, EV_KEY, EV_SYN, InputEvent, Note, SYN_DROPPED, SYN_REPORT,
};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Event {
    /// A key event with a code in the range keyboards use (0–255).
    Key {
        code: u8,
        value: KeyValue,
    },
    /// A key event with any code.
    AnyKey {
        code: u16,
        value: i32,
    },
    Report,
    Dropped,
    /// Any other event (EV_MSC scan codes, EV_LED, …) or any SYN code.
    Other {
        kind: u16,
        code: u16,
        value: i32,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeyValue {
    Release,
    Press,
    Repeat,
}

#[derive(Arbitrary, Debug)]
struct Input {
    enter: Enter,
    events: Vec<Event>,
}

#[derive(Arbitrary, Debug)]
enum Enter {
    Cr,
    CrLf,
    Tab,
    Bytes(Vec<u8>),
}

fn event(e: Event) -> InputEvent {
    match e {
        Event::Key { code, value } => InputEvent::key(
            u16::from(code),
            match value {
                KeyValue::Release => 0,
                KeyValue::Press => 1,
                KeyValue::Repeat => 2,
            },
        ),
        Event::AnyKey { code, value } => InputEvent::key(code, value),
        Event::Report => InputEvent::report(),
        Event::Dropped => InputEvent {
            kind: EV_SYN,
            code: SYN_DROPPED,
            value: 0,
        },
        Event::Other { kind, code, value } => InputEvent { kind, code, value },
    }
}

fuzz_target!(|input: Input| {
    let enter = match &input.enter {
        Enter::Cr => b"\r".to_vec(),
        Enter::CrLf => b"\r\n".to_vec(),
        Enter::Tab => b"\t".to_vec(),
        Enter::Bytes(b) => b.clone(),
    };
    let events: Vec<InputEvent> = input.events.iter().copied().map(event).collect();
    let pressed = events.iter().any(|e| e.kind == EV_KEY && e.value != 0);
    for layout in [Layout::Us, Layout::De, Layout::Fr] {
        let mut decoder = Decoder::new(layout, &enter);
        let mut out = Vec::new();
        for e in &events {
            let note = decoder.feed(*e, &mut out);
            let dropped = e.kind == EV_SYN && e.code == SYN_DROPPED;
            assert_eq!(
                note == Some(Note::EventsLost),
                dropped,
                "{e:?} gave {note:?}"
            );
            if e.kind == EV_SYN && e.code == SYN_REPORT {
                assert_eq!(note, None);
            }
        }
        if std::str::from_utf8(&enter).is_ok() {
            assert!(
                std::str::from_utf8(&out).is_ok(),
                "{layout:?} typed invalid UTF-8: {out:?}"
            );
        }
        if !pressed {
            assert!(
                out.is_empty(),
                "{layout:?}: no key pressed, yet typed {out:?}"
            );
        }
    }
});
