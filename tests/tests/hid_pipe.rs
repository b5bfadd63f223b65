//! A USB keyboard-wedge scanner (`transport = "hid"`) replayed through a FIFO: the test writes
//! raw `struct input_event` records, as the kernel delivers them from /dev/input/event*, into a
//! FIFO the agent reads as its `device`, and checks what the MQTT subscriber receives.
//!
//! The records are encoded here from the target's `libc::input_event` and the keycodes of
//! linux/input-event-codes.h, independently of the driver's own tables.

use std::fs::File;
use std::io::Write;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::time::Duration;

use nix::libc;
use nix::sys::stat::Mode;
use serde_json::json;
use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, Mosquitto, PREFIX, Subscriber, agent_config, bounded,
};

const LIMIT: Duration = Duration::from_secs(60);

const EV_SYN: u16 = 0;
const EV_KEY: u16 = 1;
const KEY_ENTER: u16 = 28;
const KEY_LEFTCTRL: u16 = 29;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_LEFTALT: u16 = 56;
const KEY_RIGHTBRACE: u16 = 27;
/// Keypad 0, 2 and 9, for Alt + 0 0 2 9 (GS).
const KEY_KP0: u16 = 82;
const KEY_KP2: u16 = 80;
const KEY_KP9: u16 = 73;

/// One `struct input_event` with a zero timestamp, laid out as on this machine.
fn record(kind: u16, code: u16, value: i32) -> Vec<u8> {
    let mut bytes = vec![0u8; size_of::<libc::input_event>()];
    let at = |field: usize, len: usize| field..field + len;
    bytes[at(offset_of!(libc::input_event, type_), 2)].copy_from_slice(&kind.to_ne_bytes());
    bytes[at(offset_of!(libc::input_event, code), 2)].copy_from_slice(&code.to_ne_bytes());
    bytes[at(offset_of!(libc::input_event, value), 4)].copy_from_slice(&value.to_ne_bytes());
    bytes
}

/// What a USB keyboard reports for one key going down (1) or up (0): the key, then SYN_REPORT.
fn key(code: u16, value: i32) -> Vec<u8> {
    [record(EV_KEY, code, value), record(EV_SYN, 0, 0)].concat()
}

fn tap(code: u16) -> Vec<u8> {
    [key(code, 1), key(code, 0)].concat()
}

/// `keys` typed while `modifier` is held.
fn holding(modifier: u16, keys: &[Vec<u8>]) -> Vec<u8> {
    [
        vec![key(modifier, 1)],
        keys.to_vec(),
        vec![key(modifier, 0)],
    ]
    .concat()
    .concat()
}

/// The key of a digit, a letter or `]` on a US keyboard, and whether it needs Shift.
fn us_key(c: char) -> (u16, bool) {
    const DIGITS: [u16; 10] = [11, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    match c {
        '0'..='9' => (DIGITS[c as usize - '0' as usize], false),
        'a'..='z' => (LETTERS[c as usize - 'a' as usize], false),
        'A'..='Z' => (LETTERS[c as usize - 'A' as usize], true),
        ']' => (KEY_RIGHTBRACE, false),
        _ => panic!("no US key for {c:?} in this test"),
    }
}

/// `text` typed on a US keyboard as a scanner does; GS (0x1D) as Alt + 0 0 2 9 on the keypad,
/// or, with `gs_by_ctrl`, as Ctrl + ].
fn typed(text: &str, gs_by_ctrl: bool) -> Vec<u8> {
    text.chars()
        .flat_map(|c| match c {
            '\u{1d}' if gs_by_ctrl => holding(KEY_LEFTCTRL, &[tap(KEY_RIGHTBRACE)]),
            '\u{1d}' => holding(
                KEY_LEFTALT,
                &[tap(KEY_KP0), tap(KEY_KP0), tap(KEY_KP2), tap(KEY_KP9)],
            ),
            c => match us_key(c) {
                (code, true) => holding(KEY_LEFTSHIFT, &[tap(code)]),
                (code, false) => tap(code),
            },
        })
        .collect()
}

/// A FIFO in `dir`, held open read-write by the test so that writing never waits for the agent
/// and nothing written before the agent opens it is lost.
fn fifo(dir: &Path) -> (String, File) {
    let path = dir.join("scanner.fifo");
    nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the FIFO");
    (path.display().to_string(), file)
}

#[test]
fn scans_typed_as_key_events_arrive_decoded_with_their_gs_separators() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let dir = tempfile::tempdir().unwrap();
        let (device, mut fifo) = fifo(dir.path());
        let source = format!(
            r#"[[sources]]
id = "hid1"
type = "scanner"
station = "st9"
transport = "hid"
device = "{device}"
layout = "us"
idle_timeout = "300ms"
noread = ["NOREAD"]
validation = "gs1"
aim = true
"#
        );
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        // domain.md V1 (GS by Alt + 0029), V4 (GS by Ctrl + ]), a no-read, and V2 without its
        // Enter: the idle gap ends it.
        let v1 = "]d201095060001343521726123110ABC123\u{1d}21SN0001";
        let v4 = "]Q3010950600013435210ABC123\u{1d}17261231";
        let v2 = "]C100106141411234567897";
        let stream = [
            typed(v1, false),
            tap(KEY_ENTER),
            typed(v4, true),
            tap(KEY_ENTER),
            typed("NOREAD", false),
            tap(KEY_ENTER),
            typed(v2, false),
        ]
        .concat();
        // Odd write sizes: records arrive cut in two.
        let mut at = 0;
        for size in [1, 50, 7, 333, 24, 1000].iter().cycle() {
            if at == stream.len() {
                break;
            }
            let end = (at + size).min(stream.len());
            fifo.write_all(&stream[at..end]).expect("write to the FIFO");
            at = end;
        }

        assert!(
            sub.wait_for(4, Duration::from_secs(20)),
            "events: {:?}\n{}",
            sub.events(),
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=4);
        delivery.assert_ordered_per_source();

        let text = |code: &str| code[3..].to_string();
        let elements = |seq: u64| -> Vec<(String, String)> {
            let e = &delivery.get(seq).unwrap().event;
            e["gs1"]["elements"]
                .as_array()
                .unwrap_or_else(|| panic!("no GS1 elements in {e}"))
                .iter()
                .map(|el| {
                    (
                        el["ai"].as_str().unwrap().into(),
                        el["value"].as_str().unwrap().into(),
                    )
                })
                .collect()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect()
        };

        let first = delivery.get(1).unwrap();
        assert_eq!(first.topic, format!("{PREFIX}/st9/hid1/scan"));
        assert_eq!(first.event["kind"], "scan");
        assert_eq!(first.event["source"], "hid1");
        assert_eq!(first.event["symbology"]["aim"], "]d2");
        assert_eq!(
            first.event["code"],
            json!({"text": text(v1), "utf8": true, "len": v1.len() - 3}),
            "the GS survived: {}",
            first.event
        );
        assert_eq!(
            elements(1),
            pairs(&[
                ("01", "09506000134352"),
                ("17", "261231"),
                ("10", "ABC123"),
                ("21", "SN0001")
            ])
        );

        let second = delivery.get(2).unwrap();
        assert_eq!(second.topic, format!("{PREFIX}/st9/hid1/scan"));
        assert_eq!(second.event["code"]["text"], text(v4));
        assert_eq!(
            elements(2),
            pairs(&[("01", "09506000134352"), ("10", "ABC123"), ("17", "261231")])
        );

        let noread = delivery.get(3).unwrap();
        assert_eq!(noread.topic, format!("{PREFIX}/st9/hid1/noread"));
        assert_eq!(noread.event["kind"], "noread");

        let last = delivery.get(4).unwrap();
        assert_eq!(last.topic, format!("{PREFIX}/st9/hid1/scan"));
        assert_eq!(last.event["code"]["text"], text(v2));
        assert_eq!(elements(4), pairs(&[("00", "106141411234567897")]));

        let log = agent.stderr_text();
        assert!(
            log.contains(&format!("reading recorded key events from {device}")),
            "{}",
            agent.log_tail(30)
        );
    });
}
