use super::*;

fn hs() -> Handshake {
    Handshake::new(Results {
        enabled: true,
        accepted: 1,
        rejected: 2,
    })
}

fn block(counter: u64, code: &str) -> Block {
    Block {
        counter,
        code: code.as_bytes().to_vec(),
        attributes: BTreeMap::from([("order".to_string(), "WO-1".to_string())]),
        captured_at: SystemTime::UNIX_EPOCH,
    }
}

fn committed() -> Verdict {
    Verdict::Committed {
        seq: 7,
        valid: true,
    }
}

fn submitted(action: Action) -> Vec<Reading> {
    match action {
        Action::Submit(r) => r,
        other => panic!("expected Submit, got {other:?}"),
    }
}

#[test]
fn a_code_is_acknowledged_only_after_its_commit() {
    let mut h = hs();
    assert_eq!(h.start(), Action::Sync);
    assert_eq!(h.on_sync(4, 4), Action::Wait);
    assert_eq!(h.on_counter(5), Action::Read);
    let r = submitted(h.on_block(block(5, "ABC")));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].kind, ReadingKind::Code(b"ABC".to_vec()));
    assert_eq!(r[0].attributes["order"], "WO-1");
    assert_eq!(r[0].handover, Some(handover_key(5, b"ABC")));
    assert_eq!(h.state(), State::Submitted { ack: 4, counter: 5 });
    assert_eq!(
        h.on_verdict(&committed()),
        Action::Write {
            ack: 5,
            result: Some(1)
        }
    );
    assert_eq!(h.on_written(), Action::Wait);
    assert_eq!(h.state(), State::Idle { ack: 5 });
}

#[test]
fn a_code_presented_at_start_is_read_and_a_repeat_keeps_its_handover_key() {
    // The agent committed counter 9 and died before the ack: the restart finds it presented.
    let mut h = hs();
    h.start();
    assert_eq!(h.on_sync(9, 8), Action::Read);
    let r = submitted(h.on_block(block(9, "X")));
    assert_eq!(
        r[0].handover.as_deref(),
        Some(handover_key(9, b"X").as_str())
    );
    assert_eq!(
        h.on_verdict(&Verdict::Duplicate),
        Action::Write {
            ack: 9,
            result: Some(1)
        }
    );
}

#[test]
fn not_committed_writes_nothing_and_reads_again() {
    let mut h = hs();
    h.start();
    h.on_sync(2, 1);
    submitted(h.on_block(block(2, "A")));
    let v = Verdict::NotCommitted {
        reason: "queue".into(),
    };
    assert_eq!(h.on_verdict(&v), Action::Retry);
    assert_eq!(h.on_retry(), Action::Read);
    submitted(h.on_block(block(2, "A")));
}

#[test]
fn invalid_codes_are_acknowledged_as_rejected_and_without_a_result_node_only_the_ack_is_written() {
    let mut h = hs();
    h.start();
    h.on_sync(1, 0);
    submitted(h.on_block(block(1, "bad")));
    let invalid = Verdict::Committed {
        seq: 1,
        valid: false,
    };
    assert_eq!(
        h.on_verdict(&invalid),
        Action::Write {
            ack: 1,
            result: Some(2)
        }
    );
    let mut h = Handshake::new(Results {
        enabled: false,
        accepted: 1,
        rejected: 2,
    });
    h.start();
    h.on_sync(1, 0);
    submitted(h.on_block(block(1, "ok")));
    assert_eq!(
        h.on_verdict(&committed()),
        Action::Write {
            ack: 1,
            result: None
        }
    );
}

#[test]
fn changes_during_a_handover_are_taken_up_after_the_ack() {
    let mut h = hs();
    h.start();
    // Data changes before the sync completed are remembered, not acted on.
    assert_eq!(h.on_counter(3), Action::Wait);
    assert_eq!(h.on_sync(3, 2), Action::Read);
    assert_eq!(h.on_counter(3), Action::Wait);
    submitted(h.on_block(block(3, "A")));
    // The PLC went on (it does not wait for the ack): counter 4 arrives while committing.
    assert_eq!(h.on_counter(4), Action::Wait);
    h.on_verdict(&committed());
    assert_eq!(h.on_written(), Action::Read);
    assert_eq!(h.state(), State::Presented { ack: 3, counter: 4 });
    let r = submitted(h.on_block(block(4, "B")));
    assert_eq!(r.len(), 1, "4 follows 3: nothing skipped");
}

#[test]
fn a_skipped_counter_raises_one_alarm_before_the_code() {
    let mut h = hs();
    h.start();
    h.on_sync(5, 5);
    assert_eq!(h.on_counter(8), Action::Read);
    let r = submitted(h.on_block(block(8, "C")));
    assert_eq!(r.len(), 2);
    assert!(matches!(&r[0].kind, ReadingKind::Alarm { code, .. } if code == "counter_skipped"));
    assert_eq!(r[0].attributes["skipped"], "2");
    assert_eq!(
        h.on_verdict(&Verdict::NotCommitted { reason: "x".into() }),
        Action::Retry
    );
    h.on_retry();
    assert_eq!(
        submitted(h.on_block(block(8, "C"))).len(),
        1,
        "no second alarm"
    );
    assert_eq!(skipped(65535, 1), 0);
    assert_eq!(skipped(10, 3), 2);
}

#[test]
fn counter_zero_resynchronises_and_a_withdrawn_code_is_not_submitted() {
    let mut h = hs();
    h.start();
    assert_eq!(
        h.on_sync(0, 17),
        Action::Write {
            ack: 0,
            result: None
        }
    );
    assert_eq!(h.on_written(), Action::Wait);
    assert_eq!(h.state(), State::Idle { ack: 0 });
    assert_eq!(h.on_counter(1), Action::Read);
    submitted(h.on_block(block(1, "A")));
    h.on_verdict(&committed());
    assert_eq!(h.on_written(), Action::Wait);
    assert_eq!(h.on_counter(2), Action::Read);
    // Between the data change and the read, the PLC reset to 0.
    assert_eq!(
        h.on_block(block(0, "")),
        Action::Write {
            ack: 0,
            result: None
        }
    );
}

#[test]
fn an_empty_code_is_a_no_read_and_a_late_stale_change_is_harmless() {
    let mut h = hs();
    h.start();
    h.on_sync(6, 6);
    // The subscription's initial value (5) arrives after the sync read saw 6.
    assert_eq!(h.on_counter(5), Action::Read);
    // The read returns the current counter, equal to the ack: back to idle.
    assert_eq!(h.on_block(block(6, "x")), Action::Wait);
    assert_eq!(h.on_counter(7), Action::Read);
    let r = submitted(h.on_block(block(7, "")));
    assert_eq!(r[0].kind, ReadingKind::NoRead);
}

#[test]
fn out_of_order_events_restart_the_handover() {
    let mut h = hs();
    assert_eq!(h.on_block(block(1, "A")), Action::Sync);
    assert_eq!(h.on_verdict(&committed()), Action::Sync);
    assert_eq!(h.on_written(), Action::Sync);
    assert_eq!(h.on_retry(), Action::Sync);
}

#[test]
fn a_stale_zero_from_the_subscription_is_read_back_instead_of_resetting_the_ack() {
    let mut h = hs();
    h.start();
    // The PLC presented code 1 right after the subscription sampled counter 0.
    assert_eq!(h.on_sync(1, 0), Action::Read);
    submitted(h.on_block(block(1, "A")));
    assert!(matches!(
        h.on_verdict(&committed()),
        Action::Write { ack: 1, .. }
    ));
    assert_eq!(h.on_written(), Action::Wait);
    // The initial notification (0) arrives now: read back, not answered with ack 0.
    assert_eq!(h.on_counter(0), Action::Read);
    assert_eq!(h.on_block(block(1, "A")), Action::Wait);
    assert_eq!(h.state(), State::Idle { ack: 1 });
    // A real reset is confirmed by the read and answered.
    assert_eq!(h.on_counter(0), Action::Read);
    assert_eq!(
        h.on_block(block(0, "")),
        Action::Write {
            ack: 0,
            result: None
        }
    );
}
