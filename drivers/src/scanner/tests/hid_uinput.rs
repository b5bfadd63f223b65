//! HID transport against a real input device: a virtual USB keyboard made with uinput, found
//! by name and ids, grabbed, typed on, unplugged and plugged in again.
//!
//! Needs /dev/uinput (the `uinput` kernel module) and the right to write it, plus read access
//! to /dev/input/event*. Where the machine has no /dev/uinput, this one test says so in its
//! output and passes without running; every other test always runs.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evdevil::event::{Key, KeyEvent, KeyState};
use evdevil::uinput::UinputDevice;
use evdevil::{Bus, Evdev, InputId};

use super::kit::*;
use crate::scanner::hid::decoder::EV_KEY;
use crate::scanner::hid::testkeys::*;

/// Why uinput cannot be used here, if it cannot.
fn uinput_missing() -> Option<String> {
    let path = Path::new("/dev/uinput");
    if !path.exists() {
        return Some("no /dev/uinput on this machine".into());
    }
    match std::fs::File::options().read(true).write(true).open(path) {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/uinput cannot be opened for writing ({e})")),
    }
}

/// A virtual keyboard with the ids of a Zebra/Symbol scanner.
struct Keyboard {
    device: UinputDevice,
    name: String,
}

impl Keyboard {
    fn plug_in(name: &str) -> Keyboard {
        let device = UinputDevice::builder()
            .and_then(|b| b.with_input_id(InputId::new(Bus::USB, 0x05e0, 0x1200, 0x0110)))
            // Every key of a full keyboard (1..=127): letters, digits, keypad, modifiers.
            .and_then(|b| b.with_keys((1..=127).map(Key::from_raw)))
            .and_then(|b| b.build(name))
            .expect("create the uinput keyboard");
        Keyboard {
            device,
            name: name.to_owned(),
        }
    }

    /// Presses and releases the keys, one report per millisecond as a full-speed USB keyboard
    /// sends them. (All at once would overflow the kernel's buffer of 64 events per reader,
    /// which a real scanner cannot do; the FIFO tests cover what happens then.)
    async fn type_keys(&self, keys: Keys) {
        for event in keys.events().into_iter().filter(|e| e.kind == EV_KEY) {
            let key = KeyEvent::new(Key::from_raw(event.code), KeyState::from_raw(event.value));
            self.device
                .write_events(&[key.into()])
                .expect("type on the keyboard");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Its `/dev/input/event*` node, once the kernel (and udev) made it.
    async fn node(&self) -> PathBuf {
        within("the keyboard's event node", async {
            loop {
                let found = evdevil::enumerate().ok().and_then(|mut devices| {
                    devices.find_map(|device| {
                        let (path, evdev) = device.ok()?;
                        (evdev.name().ok()? == self.name).then_some(path)
                    })
                });
                if let Some(path) = found {
                    return path;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Waits until someone else holds the keyboard exclusively: our own grab attempt fails with
    /// EBUSY. (An attempt that succeeds is released at once, and the driver retries.)
    async fn wait_grabbed(&self) -> PathBuf {
        let node = self.node().await;
        within("the driver to grab the keyboard", async {
            loop {
                let attempt = Evdev::open(&node).and_then(|evdev| evdev.grab());
                match attempt {
                    Err(e) if e.kind() == io::ErrorKind::ResourceBusy => return,
                    Ok(()) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        node
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_keyboard_is_found_grabbed_exclusively_and_read_again_after_a_replug() {
    if let Some(why) = uinput_missing() {
        println!("skipped: {why}");
        return;
    }
    let name = format!("tracegate test scanner {}", std::process::id());
    let keyboard = Keyboard::plug_in(&name);
    let (mut agent, sink) = Agent::new(16);
    let source = format!(
        "transport = \"hid\"\nvendor_id = \"05e0\"\nproduct_id = \"1200\"\nname = \"{name}\"\n\
         reopen_interval = \"100ms\""
    );
    let driver = Driver::start(config(&source), sink);

    let node = keyboard.wait_grabbed().await;
    // Another program reading the keyboard (a console, a desktop) gets nothing while grabbed.
    let bystander = Evdev::open(&node).expect("open the keyboard a second time");
    keyboard.type_keys(v1_us()).await;
    agent
        .commit_code("]d201095060001343521726123110ABC123\u{1d}21SN0001")
        .await;
    assert!(
        !bystander.is_readable().unwrap(),
        "the scan also reached another reader of the device"
    );
    let second_grab = bystander.grab().expect_err("a second grab must fail");
    assert_eq!(second_grab.kind(), io::ErrorKind::ResourceBusy);
    drop(bystander);

    // Unplugged (the device goes away: reads fail with ENODEV) and plugged in again.
    drop(keyboard);
    let keyboard = Keyboard::plug_in(&name);
    keyboard.wait_grabbed().await;
    keyboard
        .type_keys(Keys::default().shifted(&[KEY_A]).tap(KEY_1).enter())
        .await;
    agent.commit_code("A1").await;
    driver.stop().await;
}
