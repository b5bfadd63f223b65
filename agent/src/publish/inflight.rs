//! Which queued event each MQTT packet id stands for. Pure state, no I/O (after rumqttc's
//! `MqttState`).
//!
//! rumqttc's `publish()` returns no packet id. It assigns ids in the order publishes leave its
//! request channel and reports each as `Outgoing::Publish(pkid)`, so the n-th `Outgoing::Publish`
//! of a connection belongs to the n-th publish handed to the client on that connection. Every
//! publish — events and status messages — is recorded here in that order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// What a publish carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// A queued event with this seq.
    Event(u64),
    /// Something that is not in the queue (a status message).
    Other,
}

/// The in-flight table of one MQTT connection.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Handed to the client (when), packet id not yet known.
    unassigned: VecDeque<(Carried, Instant)>,
    /// Sent with this packet id, acknowledgement outstanding.
    by_pkid: HashMap<u16, (Carried, Instant)>,
    /// The seqs of the events among the two above.
    events: HashSet<u64>,
    /// Highest seq handed to the client on this connection; the next fetch starts after it.
    pub cursor: u64,
}

impl InFlight {
    /// A fresh table for a new connection: nothing is in flight and publishing starts again
    /// from the lowest queued seq.
    pub fn new() -> Self {
        InFlight::default()
    }

    /// Events handed to the client and not yet acknowledged.
    pub fn events_in_flight(&self) -> usize {
        self.events.len()
    }

    /// True when the event `seq` is handed out and not yet acknowledged on this connection.
    pub fn holds(&self, seq: u64) -> bool {
        self.events.contains(&seq)
    }

    /// True when nothing at all (events or status) awaits an acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.unassigned.is_empty() && self.by_pkid.is_empty()
    }

    /// Records a publish handed to the client.
    pub fn sent(&mut self, what: Carried) {
        if let Carried::Event(seq) = what {
            self.events.insert(seq);
            self.cursor = self.cursor.max(seq);
        }
        self.unassigned.push_back((what, Instant::now()));
    }

    /// The client reported `Outgoing::Publish(pkid)`. QoS 0 publishes carry pkid 0 and are
    /// never acknowledged, so they leave the table at once.
    pub fn assigned(&mut self, pkid: u16) {
        let Some(entry) = self.unassigned.pop_front() else {
            return;
        };
        if pkid == 0 {
            self.forget(entry.0);
        } else if let Some((old, _)) = self.by_pkid.insert(pkid, entry) {
            // A packet id is only reused after its acknowledgement; treat the old one as lost.
            self.forget(old);
        }
    }

    /// The broker acknowledged `pkid` (PUBACK for QoS 1, PUBCOMP for QoS 2). Returns the
    /// seq that is delivered, if the packet carried an event.
    pub fn acknowledged(&mut self, pkid: u16) -> Option<u64> {
        self.acknowledged_after(pkid).map(|(seq, _)| seq)
    }

    /// Like [`InFlight::acknowledged`], with how long the acknowledgement took since the
    /// publish was handed to the client.
    pub fn acknowledged_after(&mut self, pkid: u16) -> Option<(u64, Duration)> {
        let (what, since) = self.by_pkid.remove(&pkid)?;
        self.forget(what);
        match what {
            Carried::Event(seq) => Some((seq, since.elapsed())),
            Carried::Other => None,
        }
    }

    fn forget(&mut self, what: Carried) {
        if let Carried::Event(seq) = what {
            self.events.remove(&seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_map_to_seqs_in_send_order() {
        let mut f = InFlight::new();
        f.sent(Carried::Other);
        f.sent(Carried::Event(7));
        f.sent(Carried::Event(8));
        assert_eq!(f.events_in_flight(), 2);
        assert_eq!(f.cursor, 8);
        f.assigned(1);
        f.assigned(2);
        f.assigned(3);
        assert_eq!(f.acknowledged(3), Some(8));
        assert_eq!(f.acknowledged(1), None);
        assert_eq!(f.acknowledged(2), Some(7));
        assert_eq!(f.events_in_flight(), 0);
    }

    #[test]
    fn unknown_and_repeated_acks_are_ignored() {
        let mut f = InFlight::new();
        f.sent(Carried::Event(1));
        f.assigned(5);
        assert_eq!(f.acknowledged(9), None);
        assert_eq!(f.acknowledged(5), Some(1));
        assert_eq!(f.acknowledged(5), None);
        assert_eq!(f.events_in_flight(), 0);
    }

    #[test]
    fn an_ack_before_assignment_is_not_misattributed() {
        let mut f = InFlight::new();
        f.sent(Carried::Event(1));
        assert_eq!(f.acknowledged(1), None);
        f.assigned(1);
        assert_eq!(f.acknowledged(1), Some(1));
    }

    #[test]
    fn qos0_publishes_leave_at_once() {
        let mut f = InFlight::new();
        f.sent(Carried::Other);
        f.sent(Carried::Event(4));
        f.assigned(0);
        f.assigned(1);
        assert_eq!(f.acknowledged(1), Some(4));
    }

    #[test]
    fn a_new_connection_starts_from_the_front() {
        let mut f = InFlight::new();
        f.sent(Carried::Event(10));
        f.assigned(1);
        let f = InFlight::new();
        assert_eq!(f.cursor, 0);
        assert_eq!(f.events_in_flight(), 0);
    }
}
