//! How a row stores its event's id. An event id is a UUIDv7 whose first 6 bytes are its
//! capture time in ms (`process::event_id`), which the row has in `captured_ms` already: the
//! row then stores the other 10 bytes. An id whose time is not the capture time (a source's
//! clock set back, an event of an older version) is stored whole, as its 16 bytes. A row of a
//! typical scan is ~90 bytes, so the 6 bytes are ~7 % of a row, and of the pages a commit
//! takes and later frees (docs/performance.md).

use uuid::Uuid;

/// The length of an id stored without its time.
const SHORT: usize = 10;

/// `captured_ms` as the 6 bytes a UUIDv7 begins with, if it fits them.
fn time_bytes(captured_ms: i64) -> Option<[u8; 6]> {
    if !(0..1 << 48).contains(&captured_ms) {
        return None;
    }
    let be = captured_ms.to_be_bytes();
    Some([be[2], be[3], be[4], be[5], be[6], be[7]])
}

/// The bytes a row stores for `id`, captured at `captured_ms`.
pub(super) fn stored(id: &Uuid, captured_ms: i64) -> &[u8] {
    let bytes = id.as_bytes();
    match time_bytes(captured_ms) {
        Some(t) if bytes[..6] == t => &bytes[6..],
        _ => &bytes[..],
    }
}

/// The id a row stores as `bytes`, captured at `captured_ms`; `None` for bytes no commit
/// writes.
pub(super) fn read(bytes: &[u8], captured_ms: i64) -> Option<Uuid> {
    match bytes.len() {
        16 => Uuid::from_slice(bytes).ok(),
        SHORT => {
            let mut whole = [0; 16];
            whole[..6].copy_from_slice(&time_bytes(captured_ms)?);
            whole[6..].copy_from_slice(bytes);
            Some(Uuid::from_bytes(whole))
        }
        _ => None,
    }
}

/// What a row may store for `id`, whatever its capture time: the id whole and, for the rows
/// whose capture time is the id's time (`time` then), the id without it. For looking rows
/// up by id: `WHERE id IN (whole, short) AND (length(id) = 16 OR captured_ms = time)`.
pub(super) fn lookup(id: &Uuid) -> (&[u8], &[u8], i64) {
    let bytes = id.as_bytes();
    let time = bytes[..6].iter().fold(0, |ms, b| ms << 8 | i64::from(*b));
    (&bytes[..], &bytes[6..], time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01a24ecb-ecf7-7767-99b5-9ab625f18996";
    const ITS_MS: i64 = 0x01a2_4ecb_ecf7;

    #[test]
    fn an_id_captured_at_its_time_is_stored_without_it_and_read_back_whole() {
        let id = Uuid::parse_str(ID).unwrap();
        let short = stored(&id, ITS_MS);
        assert_eq!(short, &id.as_bytes()[6..]);
        assert_eq!(read(short, ITS_MS), Some(id));
        assert_eq!(lookup(&id), (&id.as_bytes()[..], short, ITS_MS));
    }

    #[test]
    fn an_id_of_another_time_is_stored_whole() {
        let id = Uuid::parse_str(ID).unwrap();
        for captured_ms in [ITS_MS + 1, ITS_MS - 1, 0, -ITS_MS, 1 << 48, i64::MAX] {
            let bytes = stored(&id, captured_ms);
            assert_eq!(bytes, id.as_bytes(), "{captured_ms}");
            assert_eq!(read(bytes, captured_ms), Some(id));
        }
    }

    #[test]
    fn bytes_no_commit_writes_name_no_id() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(read(&id.as_bytes()[7..], ITS_MS), None);
        assert_eq!(read(b"", ITS_MS), None);
        // Ten bytes, but a capture time no id can have.
        assert_eq!(read(&id.as_bytes()[6..], -1), None);
    }
}
