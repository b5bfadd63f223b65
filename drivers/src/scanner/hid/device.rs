//! Finding, opening and grabbing a HID scanner's input device. Blocking: run it off the runtime.
//!
//! - `device = "…"` is opened as it is. An input event device (a character device of the input
//!   subsystem, major 13) is grabbed when `grab` is set. A FIFO is opened read-write, so a writer
//!   that comes and goes is not an end of input; a regular file is read once. Neither is grabbed:
//!   they hold recorded `struct input_event` records (replaying a captured session).
//! - `vendor_id` / `product_id` / `name` go through `/dev/input/event*` in number order and take
//!   the first device that matches *and* has the letter keys A–Z, so of a scanner's two event
//!   nodes the keyboard is chosen.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use evdevil::Evdev;
use evdevil::event::Key;

use crate::scanner::config::{HidConfig, HidDevice, HidMatch};

/// Where the kernel's event devices are.
const INPUT_DIR: &str = "/dev/input";
/// The character-device major number of the Linux input subsystem (`INPUT_MAJOR`).
const INPUT_MAJOR: u32 = 13;

/// What was opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub file: File,
    pub path: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An evdev device.
    Device {
        /// The name the device reports.
        name: String,
        /// Taken exclusively with EVIOCGRAB.
        grabbed: bool,
        /// It has the letter keys; a device named by `device` may be a scanner's second,
        /// non-keyboard node, which never types a code.
        keyboard: bool,
        /// Further devices that matched `vendor_id` / `product_id` / `name` (not chosen).
        also_matching: Vec<PathBuf>,
    },
    /// A FIFO of recorded events.
    Fifo,
    /// A regular file of recorded events, read once to its end.
    Recording,
}

/// Why the device could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("cannot open {path}: {source}{hint}", hint = permission_hint(source))]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not an input event device, a FIFO or a file of recorded events")]
    NotInput { path: PathBuf },
    #[error("cannot read the description of input device {path}: {source}")]
    Query { path: PathBuf, source: io::Error },
    #[error("cannot grab {path}: another program has taken it exclusively")]
    Busy { path: PathBuf },
    #[error("cannot grab {path}: {source}")]
    Grab { path: PathBuf, source: io::Error },
    #[error("no keyboard device matches {wanted}{skipped}")]
    NoMatch { wanted: String, skipped: String },
    #[error("cannot list {INPUT_DIR}: {0}")]
    List(io::Error),
}

fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (the agent's user needs read access: add it to the `input` group or give the \
         scanner a udev rule)"
    } else {
        ""
    }
}

/// Finds and opens the device `config` names, grabbing it if configured.
pub(crate) fn open(config: &HidConfig) -> Result<Opened, OpenError> {
    match &config.device {
        HidDevice::Path(path) => open_path(Path::new(path), config.grab),
        HidDevice::Match(wanted) => open_matching(wanted, config.grab),
    }
}

/// Opens `path` read-only and non-blocking: reading and grabbing need no more, and the service
/// unit lets the agent read input devices, not write them.
fn open_read_only(path: &Path) -> io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// `file` as an evdev device; `None` if it is not a character device of the input subsystem.
fn input_device(file: File) -> io::Result<Option<Evdev>> {
    let metadata = file.metadata()?;
    if !metadata.file_type().is_char_device() || libc::major(metadata.rdev()) != INPUT_MAJOR {
        return Ok(None);
    }
    // SAFETY: the descriptor is a character device of the input subsystem (major 13, checked
    // just above), which is what the evdev ioctls are meant for.
    Ok(Some(unsafe { Evdev::from_owned_fd(OwnedFd::from(file)) }))
}

fn open_path(path: &Path, grab: bool) -> Result<Opened, OpenError> {
    let open_error = |source| OpenError::Open {
        path: path.to_owned(),
        source,
    };
    let opened = |file, kind| Opened {
        file,
        path: path.to_owned(),
        kind,
    };
    // A FIFO is opened read-write: it never sees an end of input when a writer leaves, and
    // opening it does not wait for a writer. Opening it read-only first, to look, could let a
    // waiting writer in and then leave it without a reader (SIGPIPE).
    if fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        let file = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(open_error)?;
        return Ok(opened(file, Kind::Fifo));
    }
    let file = open_read_only(path).map_err(open_error)?;
    let file_type = file.metadata().map_err(open_error)?.file_type();
    if file_type.is_char_device() {
        evdev(file, path, grab)
    } else if file_type.is_file() {
        Ok(opened(file, Kind::Recording))
    } else {
        Err(OpenError::NotInput {
            path: path.to_owned(),
        })
    }
}

/// Describes the input device `file`, grabbing it if asked.
fn evdev(file: File, path: &Path, grab: bool) -> Result<Opened, OpenError> {
    let device = input_device(file)
        .map_err(|source| OpenError::Open {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| OpenError::NotInput {
            path: path.to_owned(),
        })?;
    let query = |source| OpenError::Query {
        path: path.to_owned(),
        source,
    };
    let name = device.name().map_err(query)?;
    let keyboard = is_keyboard(&device).map_err(query)?;
    if grab {
        device.grab().map_err(|source| {
            if source.kind() == io::ErrorKind::ResourceBusy {
                OpenError::Busy {
                    path: path.to_owned(),
                }
            } else {
                OpenError::Grab {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    }
    Ok(Opened {
        file: File::from(OwnedFd::from(device)),
        path: path.to_owned(),
        kind: Kind::Device {
            name,
            grabbed: grab,
            keyboard,
            also_matching: Vec::new(),
        },
    })
}

/// The device has every letter key (a scanner's keyboard node, not its consumer-control or
/// system-control node). Letters are not one range of keycodes: they follow the rows of a
/// keyboard, `KEY_Q` = 16 … `KEY_P`, `KEY_A` = 30 … `KEY_L`, `KEY_Z` = 44 … `KEY_M`.
fn is_keyboard(device: &Evdev) -> io::Result<bool> {
    let keys = device.supported_keys()?;
    let letters = [16..=25, 30..=38, 44..=50];
    Ok(letters
        .into_iter()
        .flatten()
        .all(|code| keys.contains(Key::from_raw(code))))
}

fn open_matching(wanted: &HidMatch, grab: bool) -> Result<Opened, OpenError> {
    let nodes = event_nodes().map_err(OpenError::List)?;
    let mut unreadable = 0;
    let mut matching = Vec::new();
    for (_, path) in nodes {
        match describe(&path) {
            Ok(Some(description)) if matches(wanted, &description) => matching.push(path),
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    let Some(first) = matching.first() else {
        let skipped = match unreadable {
            0 => String::new(),
            n => format!(" ({n} input devices could not be opened, e.g. for lack of permission)"),
        };
        return Err(OpenError::NoMatch {
            wanted: describe_match(wanted),
            skipped,
        });
    };
    let file = open_read_only(first).map_err(|source| OpenError::Open {
        path: first.clone(),
        source,
    })?;
    let mut opened = evdev(file, first, grab)?;
    if let Kind::Device { also_matching, .. } = &mut opened.kind {
        also_matching.extend(matching.iter().skip(1).cloned());
    }
    Ok(opened)
}

/// `/dev/input/event*` in number order; none when there is no `/dev/input` (no input device has
/// ever been plugged in, or a container without it).
fn event_nodes() -> io::Result<Vec<(u32, PathBuf)>> {
    let entries = match fs::read_dir(INPUT_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut nodes: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let number = path
                .file_name()?
                .to_str()?
                .strip_prefix("event")?
                .parse()
                .ok()?;
            Some((number, path))
        })
        .collect();
    nodes.sort();
    Ok(nodes)
}

/// Vendor id, product id and name of the keyboard device at `path`; `None` for a device that is
/// not a keyboard.
fn describe(path: &Path) -> io::Result<Option<(u16, u16, String)>> {
    let Some(device) = input_device(open_read_only(path)?)? else {
        return Ok(None);
    };
    if !is_keyboard(&device)? {
        return Ok(None);
    }
    let id = device.input_id()?;
    Ok(Some((id.vendor(), id.product(), device.name()?)))
}

fn matches(wanted: &HidMatch, (vendor, product, name): &(u16, u16, String)) -> bool {
    wanted.vendor_id.is_none_or(|id| id.0 == *vendor)
        && wanted.product_id.is_none_or(|id| id.0 == *product)
        && wanted
            .name
            .as_ref()
            .is_none_or(|part| name.to_lowercase().contains(&part.to_lowercase()))
}

/// `vendor_id 05e0, product_id 1200, name "Symbol"` for logs.
pub(crate) fn describe_match(wanted: &HidMatch) -> String {
    let mut parts = Vec::new();
    if let Some(id) = wanted.vendor_id {
        parts.push(format!("vendor_id {id}"));
    }
    if let Some(id) = wanted.product_id {
        parts.push(format!("product_id {id}"));
    }
    if let Some(name) = &wanted.name {
        parts.push(format!("name {name:?}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::config::Layout;
    use std::time::Duration;

    fn config(device: HidDevice) -> HidConfig {
        HidConfig {
            device,
            layout: Layout::Us,
            grab: true,
            reopen_interval: Duration::from_secs(1),
        }
    }

    fn by_path(path: &Path) -> Result<Opened, OpenError> {
        open(&config(HidDevice::Path(path.display().to_string())))
    }

    #[test]
    fn paths_that_are_not_input_devices_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for path in [dir.path(), Path::new("/dev/null")] {
            let err = by_path(path).unwrap_err();
            assert!(matches!(err, OpenError::NotInput { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} is not an input event device, a FIFO or a file of recorded events",
                    path.display()
                )
            );
        }
        let missing = dir.path().join("usb-Scanner-event-kbd");
        let err = by_path(&missing).unwrap_err();
        assert!(err.to_string().starts_with("cannot open "), "{err}");
    }

    #[test]
    fn fifos_and_files_are_opened_for_replay() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("keys.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(by_path(&fifo).unwrap().kind, Kind::Fifo);
        let file = dir.path().join("keys.bin");
        fs::write(&file, b"").unwrap();
        assert_eq!(by_path(&file).unwrap().kind, Kind::Recording);
    }

    #[test]
    fn a_match_that_finds_nothing_says_what_it_looked_for() {
        let wanted = HidMatch {
            vendor_id: Some(crate::scanner::config::UsbId(0xfffe)),
            product_id: Some(crate::scanner::config::UsbId(0x0001)),
            name: Some("no such scanner".into()),
        };
        let err = open(&config(HidDevice::Match(wanted))).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "no keyboard device matches vendor_id fffe, product_id 0001, name \"no such scanner\""
            ),
            "{err}"
        );
    }
}
