//! Line context pushed down from MES/ERP (work order, batch, product, shift) and stamped onto
//! every event.
//!
//! - [`command`]: the JSON command on `<prefix>/cmd/context`, validated (pure code).
//! - [`ContextBook`]: the current context and its recent history. Each accepted command makes
//!   a new *revision* (a per-agent counter) effective from the moment it was stored; an event
//!   carries the revision that was in effect at its **capture** time, so a scan captured just
//!   before a context change keeps the old order even when it is processed after it.
//! - Durability: every revision is committed to the queue database (table `context`) before
//!   the command is answered; it survives restarts.

pub mod command;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Key → value.
pub type Values = BTreeMap<String, String>;

/// How many past revisions are kept to stamp late-processed scans correctly.
const HISTORY: usize = 32;

/// One revision of the context: line-wide values and per-station values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextState {
    /// 0 before the first command.
    pub revision: u64,
    /// When it took effect, ms since the epoch.
    pub effective_ms: i64,
    /// Line-wide values.
    pub line: Values,
    /// Station → values that add to / override the line's.
    pub stations: BTreeMap<String, Values>,
}

impl ContextState {
    /// The values in effect for `station`: the line's, overridden by the station's own.
    pub fn for_station(&self, station: &str) -> Values {
        let mut v = self.line.clone();
        if let Some(own) = self.stations.get(station) {
            v.extend(own.iter().map(|(k, x)| (k.clone(), x.clone())));
        }
        v
    }
}

/// The current context and its recent history, shared by the command handler (writer) and
/// the processors (readers).
#[derive(Debug)]
pub struct ContextBook {
    history: RwLock<VecDeque<Arc<ContextState>>>,
    revision: watch::Sender<u64>,
}

impl ContextBook {
    /// A book starting from the stored state.
    pub fn new(current: ContextState) -> Self {
        let (revision, _) = watch::channel(current.revision);
        ContextBook {
            history: RwLock::new(VecDeque::from([Arc::new(current)])),
            revision,
        }
    }

    /// The current revision.
    pub fn current(&self) -> Arc<ContextState> {
        self.history
            .read()
            .expect("context lock")
            .back()
            .cloned()
            .unwrap_or_default()
    }

    /// The revision in effect at `captured_ms`: the newest that took effect at or before it
    /// (the oldest kept one if the scan is older than the history).
    pub fn at(&self, captured_ms: i64) -> Arc<ContextState> {
        let h = self.history.read().expect("context lock");
        h.iter()
            .rev()
            .find(|s| s.effective_ms <= captured_ms)
            .or_else(|| h.front())
            .cloned()
            .unwrap_or_default()
    }

    /// Makes `state` current (after it was stored).
    pub fn push(&self, state: ContextState) {
        let revision = state.revision;
        {
            let mut h = self.history.write().expect("context lock");
            h.push_back(Arc::new(state));
            while h.len() > HISTORY {
                h.pop_front();
            }
        }
        self.revision.send_replace(revision);
    }

    /// Watches the current revision number.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(revision: u64, effective_ms: i64, wo: &str) -> ContextState {
        ContextState {
            revision,
            effective_ms,
            line: Values::from([("work_order".to_string(), wo.to_string())]),
            stations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_scan_gets_the_revision_in_effect_at_its_capture_time() {
        let book = ContextBook::new(state(1, 1000, "WO-1"));
        book.push(state(2, 2000, "WO-2"));
        book.push(state(3, 3000, "WO-3"));
        assert_eq!(book.at(1500).revision, 1);
        assert_eq!(book.at(2000).revision, 2);
        assert_eq!(book.at(2999).revision, 2);
        assert_eq!(book.at(9999).revision, 3);
        assert_eq!(book.current().revision, 3);
        // Older than anything kept: the oldest known.
        assert_eq!(book.at(10).revision, 1);
    }

    #[test]
    fn station_values_override_the_line() {
        let mut s = state(1, 0, "WO-1");
        s.line.insert("shift".into(), "A".into());
        s.stations.insert(
            "st20".into(),
            Values::from([("work_order".to_string(), "WO-20".to_string())]),
        );
        let v = s.for_station("st20");
        assert_eq!(v["work_order"], "WO-20");
        assert_eq!(v["shift"], "A");
        assert_eq!(s.for_station("st10")["work_order"], "WO-1");
    }

    #[test]
    fn history_is_bounded() {
        let book = ContextBook::new(ContextState::default());
        for r in 1..=100 {
            book.push(state(r, r as i64, "x"));
        }
        assert_eq!(book.history.read().unwrap().len(), HISTORY);
        assert_eq!(book.current().revision, 100);
    }
}
