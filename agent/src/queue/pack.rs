//! How payloads are stored: LZ4-compressed against a dictionary that is an earlier payload of
//! the same topic. Two events of a station differ in a few dozen bytes (id, seq, time, the
//! code) and repeat every key, the agent's names, the symbology and the context, so a line's
//! 700-byte events take ~220 bytes each in the file, row and pages included (the bench: 66 MB
//! for 300,000 against 316 MB unpacked). What a commit writes shrinks with it: an event is
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

/// Packs `payload` against `current` (the topic's dictionary, if it has one), or says that it
/// should become the new one.
pub fn pack(payload: &[u8], current: Option<&Current>) -> Packing {
    let Some(c) = current else {
        return Packing::NewDict;
    };
    let bytes = pack_against(payload, &c.bytes);
    if bytes.len() * 100 > payload.len() * REFRESH_ABOVE_PERCENT && c.used >= REFRESH_AFTER {
        return Packing::NewDict;
    }
    if bytes.len() >= payload.len() {
        return Packing::Raw;
    }
    Packing::Packed { dict: c.id, bytes }
}

/// The LZ4 block of `payload` with `dict` as its preceding history.
pub fn pack_against(payload: &[u8], dict: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_with_dict(payload, dict)
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
}

/// The payload `stored` unpacks to, given its dictionary and unpacked length.
pub fn unpack(stored: &[u8], dict: &[u8], len: usize) -> Result<Vec<u8>, UnpackError> {
    // An LZ4 block expands at most ~255-fold: a damaged length is not an allocation.
    if len > stored.len().saturating_mul(255).saturating_add(64) {
        return Err(UnpackError::Length { got: 0, want: len });
    }
    let out = lz4_flex::block::decompress_with_dict(stored, len, dict)?;
    if out.len() != len {
        return Err(UnpackError::Length {
            got: out.len(),
            want: len,
        });
    }
    Ok(out)
}

/// Dictionaries by id, for reads. Filled on demand by the caller (which has the connection).
#[derive(Debug, Default)]
pub struct DictCache {
    dicts: HashMap<i64, Arc<[u8]>>,
}

impl DictCache {
    pub fn get(&self, id: i64) -> Option<Arc<[u8]>> {
        self.dicts.get(&id).cloned()
    }

    pub fn insert(&mut self, id: i64, bytes: Arc<[u8]>) {
        if self.dicts.len() >= CACHED_AT_MOST {
            self.dicts.clear();
        }
        self.dicts.insert(id, bytes);
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
        }
    }

    #[test]
    fn a_first_payload_becomes_the_dictionary() {
        assert_eq!(pack(&event(1, "WO-1"), None), Packing::NewDict);
    }

    #[test]
    fn the_events_of_a_station_pack_to_a_fraction_and_unpack_to_the_same_bytes() {
        let dict = current(event(1, "WO-4711"), 5);
        for serial in [2, 999, 123_456_789] {
            let payload = event(serial, "WO-4711");
            let Packing::Packed { dict: id, bytes } = pack(&payload, Some(&dict)) else {
                panic!("not packed");
            };
            assert_eq!(id, 7);
            assert!(
                bytes.len() * 5 < payload.len(),
                "{} of {} bytes",
                bytes.len(),
                payload.len()
            );
            assert_eq!(unpack(&bytes, &dict.bytes, payload.len()).unwrap(), payload);
        }
    }

    #[test]
    fn a_dictionary_is_replaced_only_after_drift_and_enough_events() {
        let unrelated: Vec<u8> = (0..700u32).map(|i| (i * 7919 % 251) as u8).collect();
        // Drifted, but too few events: still packed (or stored as is), no new dictionary.
        assert_ne!(
            pack(&unrelated, Some(&current(event(1, "WO-1"), 10))),
            Packing::NewDict
        );
        assert_eq!(
            pack(&unrelated, Some(&current(event(1, "WO-1"), REFRESH_AFTER))),
            Packing::NewDict
        );
        // Not drifted: however many events, the dictionary stays.
        assert!(matches!(
            pack(
                &event(5, "WO-2"),
                Some(&current(event(1, "WO-1"), 10 * REFRESH_AFTER))
            ),
            Packing::Packed { .. }
        ));
    }

    #[test]
    fn what_packing_would_not_shrink_is_stored_as_it_is() {
        let noise: Vec<u8> = (0..64u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(
            pack(&noise, Some(&current(b"{}".to_vec(), 1))),
            Packing::Raw
        );
    }

    #[test]
    fn a_payload_packed_against_itself_is_a_few_bytes() {
        let payload = event(3, "WO-1");
        let bytes = pack_against(&payload, &payload);
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
        assert_eq!(unpack(&bytes, &payload, payload.len()).unwrap(), payload);
    }

    proptest::proptest! {
        /// Whatever the payload and the dictionary, what is stored unpacks to the payload.
        #[test]
        fn any_payload_comes_back_byte_for_byte(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            dict in proptest::collection::vec(proptest::num::u8::ANY, 0..1500),
        ) {
            let bytes = pack_against(&payload, &dict);
            proptest::prop_assert_eq!(unpack(&bytes, &dict, payload.len()).unwrap(), payload);
        }

        /// Stored bytes damaged in any way are an error or some bytes, never a panic.
        #[test]
        fn no_stored_bytes_make_unpacking_panic(
            stored in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            dict in proptest::collection::vec(proptest::num::u8::ANY, 0..700),
            len in 0usize..4000,
        ) {
            let _ = unpack(&stored, &dict, len);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_wrong_payload() {
        let dict = event(1, "WO-1");
        let payload = event(2, "WO-1");
        let bytes = pack_against(&payload, &dict);
        assert!(unpack(&bytes, &dict, payload.len() + 1).is_err());
        assert!(unpack(&bytes[..bytes.len() / 2], &dict, payload.len()).is_err());
        assert!(unpack(&bytes, &dict, 1 << 40).is_err());
    }
}
