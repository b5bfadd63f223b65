//! HID transport with key events written into a FIFO, the way a captured session is replayed:
//! the whole driver (open, read loop, decoding, framing, submission) without an input device.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;

use super::kit::*;
use crate::reading::{DeviceState, ReadingKind};
use crate::scanner::ScannerConfig;
use crate::scanner::hid::decoder::{EV_SYN, InputEvent, SYN_DROPPED};
use crate::scanner::hid::stream::{EVENTS_LOST, encode_record};
use crate::scanner::hid::testkeys::*;

fn hid_config(device: &Path, extra: &str) -> ScannerConfig {
    config(&format!(
        "transport = \"hid\"\ndevice = \"{}\"\nreopen_interval = \"100ms\"\n{extra}",
        device.display()
    ))
}

/// A FIFO the test writes `struct input_event` records into. The test holds it open read-write,
/// so writes never block on a missing reader and nothing is lost before the driver opens it.
struct Fifo {
    path: PathBuf,
    file: File,
}

impl Fifo {
    fn create(path: PathBuf) -> Fifo {
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open the FIFO");
        Fifo { path, file }
    }

    /// Writes the records of `keys` in chunks of the (cycled) `sizes`, yielding between chunks
    /// so that the driver reads records cut in two.
    async fn type_keys(&mut self, keys: Keys, sizes: &[usize]) {
        let records = keys.records();
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at == records.len() {
                break;
            }
            let end = (at + size).min(records.len());
            self.file
                .write_all(&records[at..end])
                .expect("write to the FIFO");
            at = end;
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn codes_typed_into_a_fifo_become_readings() {
    let dir = tempfile::tempdir().unwrap();
    let mut fifo = Fifo::create(dir.path().join("scanner.fifo"));
    let (mut agent, sink) = Agent::new(16);
    let extra = "idle_timeout = \"100ms\"\nnoread = [\"NOREAD\"]";
    let driver = Driver::start(hid_config(&fifo.path, extra), sink);

    let keys = v1_us()
        // The reader's no-read string.
        .shifted(&[KEY_N, KEY_O, KEY_R, KEY_E, KEY_A, KEY_D])
        .enter()
        // A code whose scanner sends no suffix: the idle gap ends it.
        .taps(&[KEY_A, KEY_1, KEY_B, KEY_2]);
    fifo.type_keys(keys, &[1, 7, 23, 24, 25, 100, 5]).await;

    agent
        .commit_code("]d201095060001343521726123110ABC123\u{1d}21SN0001")
        .await;
    agent.expect(ReadingKind::NoRead).await;
    agent.commit_code("a1b2").await;
    driver.stop().await;
}

#[tokio::test]
async fn a_german_scanner_with_a_carriage_return_and_a_long_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut fifo = Fifo::create(dir.path().join("scanner.fifo"));
    let (mut agent, sink) = Agent::new(16);
    let extra = "layout = \"de\"\nterminator = \"cr\"\nmax_frame = 8";
    let driver = Driver::start(hid_config(&fifo.path, extra), sink);

    let keys = Keys::default()
        // `]d2` and `zy-` on QWERTZ: AltGr + 9, D, 2, the keys US calls Y, Z and /.
        .altgr(&[KEY_9])
        .taps(&[KEY_D, KEY_2, KEY_Y, KEY_Z, KEY_SLASH])
        .enter()
        // Ten characters: longer than max_frame.
        .taps(&digits("0123456789"))
        .enter()
        .tap(KEY_A)
        .enter();
    fifo.type_keys(keys, &[48, 13]).await;

    agent.commit_code("]d2zy-").await;
    agent
        .expect(ReadingKind::Malformed {
            bytes: b"01234567".to_vec(),
            reason: "frame longer than 8 bytes".into(),
        })
        .await;
    agent.commit_code("a").await;
    driver.stop().await;
}

/// Points `link` at `target` atomically, as udev re-creating a by-id link would.
fn repoint(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test]
async fn a_device_that_is_not_there_is_looked_for_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("usb-Scanner-event-kbd");
    // Not an input device: each attempt opens it (inotify counts that) and gives up.
    let not_a_device = dir.path().join("not-a-device");
    std::fs::create_dir(&not_a_device).unwrap();
    repoint(&link, &not_a_device);
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    inotify
        // Watching closes too keeps the kernel from merging consecutive identical IN_OPENs.
        .add_watch(
            &not_a_device,
            AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE,
        )
        .unwrap();

    let (mut agent, sink) = Agent::new(16);
    let state = sink.device_state();
    let losses = sink.device_losses();
    let driver = Driver::start(hid_config(&link, ""), sink);

    // One attempt per reopen_interval (100ms), not a busy loop.
    let window = Duration::from_millis(800);
    tokio::time::sleep(window).await;
    let attempts = inotify
        .read_events()
        .unwrap_or_default()
        .iter()
        .filter(|e| e.mask.contains(AddWatchFlags::IN_OPEN))
        .count();
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} open attempts in {window:?} with reopen_interval 100ms"
    );
    assert_eq!(*state.borrow(), DeviceState::Disconnected);

    // The scanner appears: the driver opens it on one of its next attempts.
    let mut fifo = Fifo::create(dir.path().join("scanner.fifo"));
    repoint(&link, &fifo.path);
    fifo.type_keys(Keys::default().shifted(&[KEY_A]).tap(KEY_1).enter(), &[24])
        .await;
    agent.commit_code("A1").await;
    assert_eq!(*state.borrow(), DeviceState::Connected);
    // Not there at start is not a loss: it had never been connected.
    assert_eq!(losses.get(), 0);
    driver.stop().await;
}

#[tokio::test]
async fn a_code_that_lost_key_events_becomes_a_malformed_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut fifo = Fifo::create(dir.path().join("scanner.fifo"));
    let (mut agent, sink) = Agent::new(16);
    let driver = Driver::start(hid_config(&fifo.path, ""), sink);

    // `0109` typed, then the kernel's buffer overflowed: the rest of the code is `2`.
    let before = Keys::default().taps(&digits("0109"));
    let after = Keys::default()
        .taps(&digits("2"))
        .enter()
        .shifted(&[KEY_A])
        .enter();
    let mut records = before.records();
    records.extend(encode_record(InputEvent {
        kind: EV_SYN,
        code: SYN_DROPPED,
        value: 0,
    }));
    records.extend(encode_record(InputEvent::report()));
    records.extend(after.records());
    fifo.file.write_all(&records).unwrap();

    agent
        .expect(ReadingKind::Malformed {
            bytes: b"01092".to_vec(),
            reason: EVENTS_LOST.into(),
        })
        .await;
    agent.commit_code("A").await;
    driver.stop().await;
}
