//! How payloads are stored: LZ4-compressed against a dictionary that is an earlier payload of
//! the same topic. Two events of a station differ in a few dozen bytes (id, seq, time, the
//! code) and repeat every key, the agent's names, the symbology and the context, so a line's
//! 700-byte events take ~100 bytes each in the file, row and pages included (the bench: 100 MB
//! for a million, against ~1 GB unpacked). What a commit writes shrinks with it: an event is
//! written twice (into the WAL by its commit and into the database file by the checkpoint),
//! and a leaf page holds many events instead of two.
//!
//! The published bytes are unchanged: unpacking gives back exactly the JSON that was packed.
//!
//! This module decides; [`super::store`] and [`super::commit`] do the SQL:
//!
//! - `dicts(id, topic, bytes, until_seq)`: a dictionary is made from the first payload of a
//!   topic (and is reused after a restart), and again when the topic's payloads have drifted
//!   from it (one packing worse than [`REFRESH_ABOVE_PERCENT`] of its size, at most once per
//!   [`REFRESH_AFTER`] events of the topic). The dictionary it replaces is retired:
//!   `until_seq` says that no row from that seq on uses it, and it is deleted once the queue's
//!   oldest row is at or beyond it.
//! - `events.dict`: the dictionary a row's payload is packed against; NULL for a payload
//!   stored as it is (rows of a queue made before packing, or a payload packing would not
//!   shrink). `events.bytes` is always the payload's unpacked length.
//! - `dicts.hinted`: 1 for a dictionary made since schema 4. The payloads packed against it
//!   had as their history the dictionary followed by the row's own [`Hint`]: its id, seq and
//!   capture time, in the form the payload spells them. The id is a UUIDv7, ~19 random hex
//!   digits that no earlier payload has, which LZ4 (no entropy coding) stores as some 30
//!   literal bytes with the hyphens and the seq; against the hint they are a match of 3 bytes
//!   (a line's event: 83 → 38 bytes). The row stores all three anyway (`id`, `seq`,
//!   `captured_ms`), so the reader rebuilds the same history. 0: a dictionary of an older
//!   queue, whose payloads were packed against it alone.

use std::collections::HashMap;
use std::sync::Arc;

/// A dictionary is replaced when a payload packs to more than this share of its size...
pub const REFRESH_ABOVE_PERCENT: usize = 35;
/// ...and at least this many events of its topic were packed against it.
pub const REFRESH_AFTER: u64 = 1_000;
/// Read-side caches forget their dictionaries beyond this many (retired ones pile up only
/// where a backlog spans many restarts or much drift).
const CACHED_AT_MOST: usize = 256;

/// A dictionary in use for a topic.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: i64,
    pub bytes: Arc<[u8]>,
    /// Events packed against it since this agent started.
    pub used: u64,
    /// Whether its payloads are packed with their [`Hint`] (`dicts.hinted`). One that is not,
    /// from an older queue, is replaced by the next payload of its topic.
    pub hinted: bool,
}

/// What a row stores beside its payload and the payload also spells out: added to the history
/// a hinted dictionary's payloads are packed against. Part of the stored format: the text it
/// writes ([`Hint::write_to`]) must never change, or rows packed with it would not unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The event's id (`events.id`).
    pub id: uuid::Uuid,
    /// Its seq (`events.seq`).
    pub seq: u64,
    /// Its capture time, ms since the epoch (`events.captured_ms`).
    pub captured_ms: i64,
}

/// The last millisecond of the year 9999, the latest time RFC 3339 spells.
const LATEST_MS: i64 = 253_402_300_799_999;

impl Hint {
    /// Appends `"id":"<the UUID, hyphenated, lowercase>","seq":<decimal>,` and
    /// `"captured_at":"<RFC 3339 UTC, milliseconds>",` (for a time from 1970 to 9999) as the
    /// event's JSON has them.
    fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "\"id\":\"{}\",\"seq\":{},",
            self.id.hyphenated(),
            self.seq
        );
        if (0..=LATEST_MS).contains(&self.captured_ms) {
            let at =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.captured_ms as u64);
            let at = crate::event::rfc3339_display(at);
            let _ = write!(out, "\"captured_at\":\"{at}\",");
        }
    }
}

/// The longest text [`Hint::write_to`] appends (a u64 seq, a 24-character time).
const HINT_AT_MOST: usize = 120;

/// The history a payload is packed against: the dictionary, then the hint's text if any.
fn history<'d>(dict: &'d [u8], hint: Option<&Hint>) -> std::borrow::Cow<'d, [u8]> {
    match hint {
        None => std::borrow::Cow::Borrowed(dict),
        Some(h) => {
            let mut out = Vec::with_capacity(dict.len() + HINT_AT_MOST);
            out.extend_from_slice(dict);
            h.write_to(&mut out);
            std::borrow::Cow::Owned(out)
        }
    }
}

/// What to store for one payload.
#[derive(Debug, PartialEq, Eq)]
pub enum Packing {
    /// Packed against the topic's dictionary `dict`.
    Packed { dict: i64, bytes: Vec<u8> },
    /// The payload should become the topic's new dictionary: store it in `dicts`, then pack it
    /// with [`pack_against`] (it packs to a few bytes against itself).
    NewDict,
    /// Stored as it is (packing would not shrink it).
    Raw,
}

/// Packs `payload` (the row's `hint`) against `current` (the topic's dictionary, if it has
/// one), or says that it should become the new one.
pub fn pack(payload: &[u8], current: Option<&Current>, hint: &Hint) -> Packing {
    let Some(c) = current.filter(|c| c.hinted) else {
        return Packing::NewDict;
    };
    let bytes = pack_against(payload, &c.bytes, Some(hint));
    if bytes.len() * 100 > payload.len() * REFRESH_ABOVE_PERCENT && c.used >= REFRESH_AFTER {
        return Packing::NewDict;
    }
    if bytes.len() >= payload.len() {
        return Packing::Raw;
    }
    Packing::Packed { dict: c.id, bytes }
}

/// The LZ4 block of `payload` with `dict`, then the `hint` if any, as its preceding history.
pub fn pack_against(payload: &[u8], dict: &[u8], hint: Option<&Hint>) -> Vec<u8> {
    lz4_flex::block::compress_with_dict(payload, &history(dict, hint))
}

/// Why a stored payload could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the dictionary {0} is missing")]
    MissingDict(i64),
    #[error("{0}")]
    Lz4(#[from] lz4_flex::block::DecompressError),
    #[error("unpacked to {got} bytes, its length says {want}")]
    Length { got: usize, want: usize },
    #[error("its id is not a UUID, and its dictionary needs it")]
    Id,
}

/// The payload `stored` unpacks to, given its dictionary, its hint (for a hinted dictionary)
/// and its unpacked length.
pub fn unpack(
    stored: &[u8],
    dict: &[u8],
    hint: Option<&Hint>,
    len: usize,
) -> Result<Vec<u8>, UnpackError> {
    // An LZ4 block expands at most ~255-fold: a damaged length is not an allocation.
    if len > stored.len().saturating_mul(255).saturating_add(64) {
        return Err(UnpackError::Length { got: 0, want: len });
    }
    let out = lz4_flex::block::decompress_with_dict(stored, len, &history(dict, hint))?;
    if out.len() != len {
        return Err(UnpackError::Length {
            got: out.len(),
            want: len,
        });
    }
    Ok(out)
}

/// A dictionary as the readers need it: its bytes and whether it is hinted.
pub type Dict = (Arc<[u8]>, bool);

/// Dictionaries by id, for reads. Filled on demand by the caller (which has the connection).
#[derive(Debug, Default)]
pub struct DictCache {
    dicts: HashMap<i64, Dict>,
}

impl DictCache {
    pub fn get(&self, id: i64) -> Option<Dict> {
        self.dicts.get(&id).cloned()
    }

    pub fn insert(&mut self, id: i64, dict: Dict) {
        if self.dicts.len() >= CACHED_AT_MOST {
            self.dicts.clear();
        }
        self.dicts.insert(id, dict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(serial: u32, work_order: &str) -> Vec<u8> {
        format!(
            r#"{{"schema":"tracegate.event/1","id":"019ad5e1-3c2b-7f00-8a00-{serial:012x}","seq":{serial},"kind":"scan","captured_at":"2026-12-02T10:00:{:02}.{:03}Z","agent":"line3-gw","site":"plant-a","line":"line-3","station":"st20","source":"st20-scanner","code":{{"text":"010950600013435217261231\u001d21S{serial:09}","utf8":true,"len":36}},"symbology":{{"aim":"]d2","name":"GS1 DataMatrix","gs1":true}},"gs1":{{"elements":[{{"ai":"01","title":"GTIN","value":"09506000134352"}},{{"ai":"17","title":"EXPIRY","value":"261231","date":"2026-12-31"}},{{"ai":"21","title":"SERIAL","value":"S{serial:09}"}}],"errors":[]}},"validation":"gs1","context":{{"work_order":"{work_order}","batch":"L-0815"}},"context_rev":12}}"#,
            serial % 60,
            serial % 1000
        )
        .into_bytes()
    }

    fn current(bytes: Vec<u8>, used: u64) -> Current {
        Current {
            id: 7,
            bytes: bytes.into(),
            used,
            hinted: true,
        }
    }

    /// 2026-12-02T10:00:00.000Z, where the times of `event` begin.
    const EVENT_MS: i64 = 1_796_205_600_000;

    /// The hint of `event(serial, …)`: the id, seq and capture time it spells.
    fn hint(serial: u32) -> Hint {
        Hint {
            id: format!("019ad5e1-3c2b-7f00-8a00-{serial:012x}")
                .parse()
                .unwrap(),
            seq: serial.into(),
            captured_ms: EVENT_MS + i64::from(serial % 60 * 1000 + serial % 1000),
        }
    }

    #[test]
    fn a_first_payload_becomes_the_dictionary() {
        assert_eq!(pack(&event(1, "WO-1"), None, &hint(1)), Packing::NewDict);
    }

    /// A dictionary of an older queue, whose payloads were packed without hints, is replaced
    /// by the next payload of its topic: new rows are packed with theirs.
    #[test]
    fn a_dictionary_without_hints_is_replaced() {
        let old = Current {
            hinted: false,
            ..current(event(1, "WO-1"), 5)
        };
        assert_eq!(
            pack(&event(2, "WO-1"), Some(&old), &hint(2)),
            Packing::NewDict
        );
    }

    /// The random part of a UUIDv7 is what no earlier payload has: with the row's id, seq and
    /// capture time in the history, a line's event packs to at least 20 bytes less.
    #[test]
    fn the_rows_id_seq_and_time_in_the_history_save_what_the_dictionary_cannot() {
        let dict = current(event(1, "WO-4711"), 5);
        let id = uuid::Uuid::now_v7();
        let payload = String::from_utf8(event(2, "WO-4711"))
            .unwrap()
            .replace(&hint(2).id.to_string(), &id.to_string())
            .replace("\"seq\":2,", "\"seq\":1234567,")
            .into_bytes();
        let h = Hint {
            id,
            seq: 1_234_567,
            ..hint(2)
        };
        let with = pack_against(&payload, &dict.bytes, Some(&h));
        let without = pack_against(&payload, &dict.bytes, None);
        // The time alone is worth a few bytes too.
        let timeless = Hint {
            captured_ms: -1,
            ..h
        };
        assert!(with.len() < pack_against(&payload, &dict.bytes, Some(&timeless)).len());
        assert!(
            with.len() + 20 <= without.len(),
            "{} bytes with the hint, {} without",
            with.len(),
            without.len()
        );
        assert_eq!(
            unpack(&with, &dict.bytes, Some(&h), payload.len()).unwrap(),
            payload
        );
        // Without the hint the same bytes do not give the payload back.
        assert_ne!(
            unpack(&with, &dict.bytes, None, payload.len()).ok(),
            Some(payload)
        );
    }

    /// The hint's text is part of the stored format: bytes packed by this version must unpack
    /// with every later one. These were packed once and are kept as they were.
    #[test]
    fn rows_packed_with_a_hint_unpack_the_same_in_every_version() {
        let dict = br#"{"schema":"tracegate.event/1","id":"019ad5e1-3c2b-7f00-8a00-000000000001","seq":1,"kind":"scan","captured_at":"2026-12-02T10:00:00.000Z","agent":"a"}"#;
        let payload = br#"{"schema":"tracegate.event/1","id":"019af0c4-77aa-7b3c-9d21-5e6f708192a3","seq":987654,"kind":"scan","captured_at":"2026-12-06T21:47:13.042Z","agent":"a"}"#;
        let h = Hint {
            id: "019af0c4-77aa-7b3c-9d21-5e6f708192a3".parse().unwrap(),
            seq: 987_654,
            captured_ms: 1_796_593_633_042,
        };
        // pack_against(payload, dict, Some(&h)) in the version that introduced hints: the
        // payload's start from the dictionary, its id, seq and time from the hint, and the
        // last 12 bytes as literals (an LZ4 block ends so).
        let stored = [
            15, 247, 0, 21, 15, 128, 0, 29, 15, 252, 0, 18, 13, 142, 0, 192, 34, 97, 103, 101, 110,
            116, 34, 58, 34, 97, 34, 125,
        ];
        assert_eq!(
            unpack(&stored, dict, Some(&h), payload.len()).unwrap(),
            payload
        );
        assert_ne!(
            unpack(&stored, dict, None, payload.len()).ok().as_deref(),
            Some(&payload[..])
        );
    }

    #[test]
    fn the_events_of_a_station_pack_to_a_fraction_and_unpack_to_the_same_bytes() {
        let dict = current(event(1, "WO-4711"), 5);
        for serial in [2, 999, 123_456_789] {
            let payload = event(serial, "WO-4711");
            let Packing::Packed { dict: id, bytes } = pack(&payload, Some(&dict), &hint(serial))
            else {
                panic!("not packed");
            };
            assert_eq!(id, 7);
            assert!(
                bytes.len() * 5 < payload.len(),
                "{} of {} bytes",
                bytes.len(),
                payload.len()
            );
            assert_eq!(
                unpack(&bytes, &dict.bytes, Some(&hint(serial)), payload.len()).unwrap(),
                payload
            );
        }
    }

    #[test]
    fn a_dictionary_is_replaced_only_after_drift_and_enough_events() {
        let unrelated: Vec<u8> = (0..700u32).map(|i| (i * 7919 % 251) as u8).collect();
        // Drifted, but too few events: still packed (or stored as is), no new dictionary.
        assert_ne!(
            pack(&unrelated, Some(&current(event(1, "WO-1"), 10)), &hint(9)),
            Packing::NewDict
        );
        assert_eq!(
            pack(
                &unrelated,
                Some(&current(event(1, "WO-1"), REFRESH_AFTER)),
                &hint(9)
            ),
            Packing::NewDict
        );
        // Not drifted: however many events, the dictionary stays.
        assert!(matches!(
            pack(
                &event(5, "WO-2"),
                Some(&current(event(1, "WO-1"), 10 * REFRESH_AFTER)),
                &hint(5)
            ),
            Packing::Packed { .. }
        ));
    }

    #[test]
    fn what_packing_would_not_shrink_is_stored_as_it_is() {
        let noise: Vec<u8> = (0..64u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(
            pack(&noise, Some(&current(b"{}".to_vec(), 1)), &hint(9)),
            Packing::Raw
        );
    }

    #[test]
    fn a_payload_packed_against_itself_is_a_few_bytes() {
        let payload = event(3, "WO-1");
        let bytes = pack_against(&payload, &payload, Some(&hint(4)));
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
        assert_eq!(
            unpack(&bytes, &payload, Some(&hint(4)), payload.len()).unwrap(),
            payload
        );
    }

    proptest::proptest! {
        /// Whatever the payload and the dictionary, what is stored unpacks to the payload.
        #[test]
        fn any_payload_comes_back_byte_for_byte(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            dict in proptest::collection::vec(proptest::num::u8::ANY, 0..1500),
            hint in proptest::option::of((
                proptest::num::u128::ANY,
                proptest::num::u64::ANY,
                proptest::num::i64::ANY,
            )),
        ) {
            let hint = hint.map(|(id, seq, captured_ms)| Hint {
                id: uuid::Uuid::from_u128(id),
                seq,
                captured_ms,
            });
            let bytes = pack_against(&payload, &dict, hint.as_ref());
            proptest::prop_assert_eq!(
                unpack(&bytes, &dict, hint.as_ref(), payload.len()).unwrap(),
                payload
            );
        }

        /// Stored bytes damaged in any way are an error or some bytes, never a panic.
        #[test]
        fn no_stored_bytes_make_unpacking_panic(
            stored in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            dict in proptest::collection::vec(proptest::num::u8::ANY, 0..700),
            len in 0usize..4000,
        ) {
            let _ = unpack(&stored, &dict, Some(&hint(1)), len);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_wrong_payload() {
        let dict = event(1, "WO-1");
        let payload = event(2, "WO-1");
        let h = Some(hint(2));
        let bytes = pack_against(&payload, &dict, h.as_ref());
        assert!(unpack(&bytes, &dict, h.as_ref(), payload.len() + 1).is_err());
        assert!(unpack(&bytes[..bytes.len() / 2], &dict, h.as_ref(), payload.len()).is_err());
        assert!(unpack(&bytes, &dict, h.as_ref(), 1 << 40).is_err());
    }
}
