//! The handover state machine, step by step: what it asks the shell to do for each thing read
//! and each verdict.

use std::time::UNIX_EPOCH;

use super::*;
use crate::modbus::address::Address;
use crate::modbus::codec::ByteOrder;

fn config(result: Option<u16>) -> HandshakeConfig {
    HandshakeConfig {
        counter: Address::hr(0),
        code: Address::hr(9),
        code_registers: 20,
        code_length: None,
        byte_order: ByteOrder::HighFirst,
        ack: Address::hr(1),
        result: result.map(Address::hr),
        accepted: 1,
        rejected: 2,
    }
}

fn block(counter: u16, code: &str) -> Block {
    Block {
        counter,
        code: code.as_bytes().to_vec(),
        attributes: BTreeMap::from([("work_order".to_string(), "WO-1".to_string())]),
        captured_at: UNIX_EPOCH,
    }
}

fn write(address: u16, values: &[u16]) -> RegisterWrite {
    RegisterWrite {
        address,
        values: values.to_vec(),
    }
}

fn submitted(action: Action) -> Vec<Reading> {
    match action {
        Action::Submit(readings) => readings,
        other => panic!("expected Submit, got {other:?}"),
    }
}

const COMMITTED: Verdict = Verdict::Committed {
    seq: 7,
    valid: true,
};

#[test]
fn one_code_from_presentation_to_ack() {
    let mut hs = Handshake::new(config(Some(2)));
    assert_eq!(hs.start(), Action::Sync);
    assert_eq!(hs.on_sync(4, 4), Action::Poll);
    assert_eq!(hs.state(), State::Idle { ack: 4 });
    assert_eq!(hs.on_poll(4), Action::Poll);
    // The PLC presents code 5.
    assert_eq!(hs.on_poll(5), Action::ReadBlock);
    let readings = submitted(hs.on_block(block(5, "]d2CODE-5")));
    assert_eq!(readings.len(), 1);
    let code = &readings[0];
    assert_eq!(code.kind, ReadingKind::Code(b"]d2CODE-5".to_vec()));
    assert_eq!(code.handover, Some(handover_key(5, b"]d2CODE-5")));
    assert_eq!(code.attributes["work_order"], "WO-1");
    assert_eq!(code.captured_at, UNIX_EPOCH);
    assert_eq!(hs.state(), State::Submitted { ack: 4, counter: 5 });
    // Nothing is written before the verdict; then ack and result in one write (adjacent).
    assert_eq!(
        hs.on_verdict(&COMMITTED),
        Action::Write(vec![write(1, &[5, 1])])
    );
    assert_eq!(hs.on_written(), Action::Poll);
    assert_eq!(hs.state(), State::Idle { ack: 5 });
}

#[test]
fn not_committed_writes_nothing_and_retries_the_same_handover() {
    let mut hs = Handshake::new(config(None));
    hs.on_sync(5, 4);
    let first = submitted(hs.on_block(block(5, "A")));
    let failed = Verdict::NotCommitted {
        reason: "disk full".into(),
    };
    assert_eq!(hs.on_verdict(&failed), Action::Retry);
    assert_eq!(hs.state(), State::Presented { ack: 4, counter: 5 });
    assert_eq!(hs.on_retry(), Action::ReadBlock);
    let second = submitted(hs.on_block(block(5, "A")));
    assert_eq!(first[0].handover, second[0].handover);
    assert_eq!(
        hs.on_verdict(&COMMITTED),
        Action::Write(vec![write(1, &[5])])
    );
}

#[test]
fn invalid_and_duplicate_verdicts_choose_the_result_code() {
    for (verdict, result) in [
        (
            Verdict::Committed {
                seq: 1,
                valid: false,
            },
            2,
        ),
        (Verdict::Duplicate, 1),
        (COMMITTED, 1),
    ] {
        let mut hs = Handshake::new(config(Some(2)));
        hs.on_sync(1, 0);
        submitted(hs.on_block(block(1, "X")));
        assert_eq!(
            hs.on_verdict(&verdict),
            Action::Write(vec![write(1, &[1, result])])
        );
    }
}

#[test]
fn an_unacknowledged_code_found_at_start_is_presented_again() {
    // The agent committed counter 9 and died before the ack: after its restart it reads
    // counter 9, ack 8, and submits the same handover key (the agent's queue answers with the
    // original seq).
    let mut hs = Handshake::new(config(None));
    assert_eq!(hs.on_sync(9, 8), Action::ReadBlock);
    let readings = submitted(hs.on_block(block(9, "CODE-9")));
    assert_eq!(
        readings[0].handover.as_deref(),
        Some(handover_key(9, b"CODE-9").as_str())
    );
}

#[test]
fn skipped_counters_raise_one_alarm_before_the_code() {
    let mut hs = Handshake::new(config(None));
    hs.on_sync(5, 5);
    assert_eq!(hs.on_poll(8), Action::ReadBlock);
    let readings = submitted(hs.on_block(block(8, "CODE-8")));
    assert_eq!(readings.len(), 2);
    let ReadingKind::Alarm { code, message } = &readings[0].kind else {
        panic!("{:?}", readings[0]);
    };
    assert_eq!(code, "counter_skipped");
    assert!(
        message.contains("from 5") && message.contains("to 8"),
        "{message}"
    );
    assert!(message.contains("2 code(s)"), "{message}");
    assert_eq!(readings[0].attributes["skipped"], "2");
    assert_eq!(readings[0].handover, None);
    assert_eq!(readings[1].kind, ReadingKind::Code(b"CODE-8".to_vec()));
    // A retry of the same counter does not raise it again.
    hs.on_verdict(&Verdict::NotCommitted { reason: "x".into() });
    hs.on_retry();
    assert_eq!(submitted(hs.on_block(block(8, "CODE-8"))).len(), 1);
}

#[test]
fn the_counter_read_with_the_code_wins() {
    let mut hs = Handshake::new(config(None));
    hs.on_sync(1, 1);
    hs.on_poll(2);
    // The PLC presented 3 between the poll and the block read: 3 is what the code belongs to.
    let readings = submitted(hs.on_block(block(3, "CODE-3")));
    assert_eq!(readings.len(), 2, "2 was skipped");
    assert_eq!(readings[1].handover, Some(handover_key(3, b"CODE-3")));
    assert_eq!(
        hs.on_verdict(&COMMITTED),
        Action::Write(vec![write(1, &[3])])
    );
}

#[test]
fn counter_zero_resynchronises() {
    let mut hs = Handshake::new(config(Some(2)));
    // Both 0: idle.
    assert_eq!(hs.on_sync(0, 0), Action::Poll);
    // The PLC reset its counter while ack was 12: the agent writes ack 0 and no result.
    let mut hs = Handshake::new(config(Some(2)));
    hs.on_sync(12, 12);
    assert_eq!(hs.on_poll(0), Action::Write(vec![write(1, &[0])]));
    assert_eq!(hs.on_written(), Action::Poll);
    assert_eq!(hs.state(), State::Idle { ack: 0 });
    // Then 1 is a normal code, not a skip.
    assert_eq!(hs.on_poll(1), Action::ReadBlock);
    assert_eq!(submitted(hs.on_block(block(1, "A"))).len(), 1);
}

#[test]
fn a_withdrawn_code_is_not_submitted() {
    let mut hs = Handshake::new(config(None));
    hs.on_sync(3, 2);
    // Between the poll and the block read the PLC reset to 0.
    assert_eq!(
        hs.on_block(block(0, "")),
        Action::Write(vec![write(1, &[0])])
    );
}

#[test]
fn an_empty_code_is_a_noread() {
    let mut hs = Handshake::new(config(None));
    hs.on_sync(1, 0);
    let readings = submitted(hs.on_block(block(1, "")));
    assert_eq!(readings[0].kind, ReadingKind::NoRead);
    assert!(readings[0].handover.is_some());
}

#[test]
fn out_of_order_inputs_resynchronise() {
    let mut hs = Handshake::new(config(None));
    assert_eq!(hs.on_block(block(1, "A")), Action::Sync);
    assert_eq!(hs.on_verdict(&COMMITTED), Action::Sync);
    assert_eq!(hs.on_written(), Action::Sync);
    assert_eq!(hs.on_poll(1), Action::Sync);
    assert_eq!(hs.on_retry(), Action::Sync);
}

#[test]
fn skipped_counts_wrap_and_restart_at_one() {
    assert_eq!(skipped(4, 5), 0);
    assert_eq!(skipped(5, 8), 2);
    assert_eq!(skipped(0, 1), 0);
    assert_eq!(skipped(0, 3), 2);
    // Wrap from 65535 to 1, and a PLC restart counting from 1 again.
    assert_eq!(skipped(65535, 1), 0);
    assert_eq!(skipped(57, 1), 0);
    assert_eq!(skipped(57, 3), 2);
}

#[test]
fn handover_keys_depend_on_counter_and_code_only() {
    assert_eq!(handover_key(7, b"A"), handover_key(7, b"A"));
    assert_ne!(handover_key(7, b"A"), handover_key(8, b"A"));
    assert_ne!(handover_key(7, b"A"), handover_key(7, b"B"));
    // Stable across builds and processes: FNV-1a of "" is its offset basis.
    assert_eq!(handover_key(1, b""), "1:cbf29ce484222325");
    assert_eq!(handover_key(1, b"a"), "1:af63dc4c8601ec8c");
}

#[test]
fn ack_writes_follow_the_register_layout() {
    let mut c = config(None);
    assert_eq!(ack_writes(&c, 5, 1), [write(1, &[5])]);
    // Result right after the ack, or right before it: one FC 16 write.
    c.result = Some(Address::hr(2));
    assert_eq!(ack_writes(&c, 5, 1), [write(1, &[5, 1])]);
    c.result = Some(Address::hr(0));
    assert_eq!(ack_writes(&c, 5, 2), [write(0, &[2, 5])]);
    // Apart: the result first, the ack last.
    c.result = Some(Address::hr(40));
    assert_eq!(ack_writes(&c, 5, 2), [write(40, &[2]), write(1, &[5])]);
}
