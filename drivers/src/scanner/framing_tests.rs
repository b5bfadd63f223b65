use super::*;

fn code(text: &str) -> Frame {
    Frame::Data(text.as_bytes().to_vec())
}

fn overlong(bytes: &[u8], max: usize) -> Frame {
    Frame::Malformed {
        bytes: bytes.to_vec(),
        reason: format!("frame longer than {max} bytes"),
    }
}

fn crlf() -> Framer {
    Framer::new(b"\r\n", false, 4096)
}

/// Feeds `chunks` one push at a time and collects every frame.
fn feed(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<Frame> {
    chunks.iter().flat_map(|chunk| framer.push(chunk)).collect()
}

#[test]
fn one_frame_with_crlf() {
    assert_eq!(crlf().push(b"ABC123\r\n"), vec![code("ABC123")]);
}

#[test]
fn a_code_split_over_reads_is_one_frame() {
    let mut f = crlf();
    assert_eq!(f.push(b"AB"), vec![]);
    assert!(f.is_pending());
    assert_eq!(f.push(b"C1"), vec![]);
    assert_eq!(f.push(b"23\r\n"), vec![code("ABC123")]);
    assert!(!f.is_pending());
}

#[test]
fn several_frames_in_one_read_come_out_in_order() {
    let frames = crlf().push(b"ONE\r\nTWO\r\nTHREE\r\nFOU");
    assert_eq!(frames, vec![code("ONE"), code("TWO"), code("THREE")]);
}

#[test]
fn crlf_split_across_reads() {
    let mut f = crlf();
    assert_eq!(f.push(b"ABC\r"), vec![]);
    assert_eq!(f.push(b"\nDEF\r"), vec![code("ABC")]);
    assert_eq!(f.push(b"\n"), vec![code("DEF")]);
}

#[test]
fn every_split_point_gives_the_same_frames() {
    let stream = b"]d2010950600013435217261231\r\nNOREAD\r\nX\x1dY\r\n";
    let expected = crlf().push(stream);
    assert_eq!(expected.len(), 3);
    for a in 0..stream.len() {
        for b in a..stream.len() {
            let mut f = crlf();
            let frames = feed(&mut f, &[&stream[..a], &stream[a..b], &stream[b..]]);
            assert_eq!(frames, expected, "split at {a} and {b}");
        }
    }
}

#[test]
fn byte_at_a_time_is_the_same_as_all_at_once() {
    let stream = b"A\r\nBB\r\n\r\nCCC\r\n";
    let mut f = crlf();
    let frames: Vec<Frame> = stream.iter().flat_map(|b| f.push(&[*b])).collect();
    assert_eq!(frames, vec![code("A"), code("BB"), code("CCC")]);
}

#[test]
fn a_bare_crlf_is_not_a_scan() {
    let mut f = crlf();
    assert_eq!(f.push(b"\r\n\r\n\r\n"), vec![]);
    assert_eq!(f.push(b"X\r\n\r\n"), vec![code("X")]);
}

#[test]
fn cr_terminator_with_a_reader_sending_crlf_yields_clean_codes() {
    let mut f = Framer::new(b"\r", false, 4096);
    assert_eq!(f.push(b"ONE\r\nTWO\r\n"), vec![code("ONE"), code("TWO")]);
    // The LF after the last CR is held and dropped as empty on idle.
    assert_eq!(f.flush_idle(), None);
}

#[test]
fn lf_terminator() {
    let mut f = Framer::new(b"\n", false, 4096);
    assert_eq!(f.push(b"ONE\nTWO\n"), vec![code("ONE"), code("TWO")]);
}

#[test]
fn literal_single_byte_terminator() {
    let mut f = Framer::new(&[0x04], false, 4096);
    assert_eq!(f.push(b"ONE\x04TW"), vec![code("ONE")]);
    assert_eq!(f.push(b"O\x04"), vec![code("TWO")]);
}

#[test]
fn multi_byte_literal_terminator_split_across_reads() {
    let mut f = Framer::new(b"#END", false, 4096);
    assert_eq!(f.push(b"CODE#E"), vec![]);
    assert_eq!(f.push(b"N"), vec![]);
    assert_eq!(f.push(b"D#EN#END"), vec![code("CODE"), code("#EN")]);
}

#[test]
fn no_terminator_frames_end_by_idle_timeout() {
    let mut f = Framer::new(b"", false, 4096);
    assert_eq!(f.push(b"ABC"), vec![]);
    assert_eq!(f.push(b"123"), vec![]);
    assert!(f.is_pending());
    assert_eq!(f.flush_idle(), Some(code("ABC123")));
    assert!(!f.is_pending());
    assert_eq!(f.flush_idle(), None);
}

#[test]
fn idle_timeout_completes_a_frame_whose_terminator_never_came() {
    let mut f = crlf();
    assert_eq!(f.push(b"ABC"), vec![]);
    assert_eq!(f.flush_idle(), Some(code("ABC")));
    assert_eq!(f.push(b"DEF\r\n"), vec![code("DEF")]);
}

#[test]
fn idle_timeout_drops_a_half_terminator() {
    let mut f = crlf();
    assert_eq!(f.push(b"ABC\r"), vec![]);
    assert_eq!(f.flush_idle(), Some(code("ABC")));
}

#[test]
fn nothing_pending_means_no_idle_frame() {
    let mut f = crlf();
    assert!(!f.is_pending());
    assert_eq!(f.flush_idle(), None);
    f.push(b"A\r\n");
    assert!(!f.is_pending());
}

#[test]
fn frame_of_exactly_max_frame_bytes_is_accepted() {
    let mut f = Framer::new(b"\r\n", false, 4);
    assert_eq!(f.push(b"ABCD\r"), vec![]);
    assert_eq!(f.push(b"\n"), vec![code("ABCD")]);
    let mut f = Framer::new(b"\r\n", false, 4);
    assert_eq!(f.push(b"ABCD\r\n"), vec![code("ABCD")]);
}

#[test]
fn overlong_frame_is_malformed_then_resyncs_at_the_next_terminator() {
    let mut f = Framer::new(b"\r\n", false, 4);
    assert_eq!(f.push(b"ABCDE"), vec![overlong(b"ABCD", 4)]);
    assert_eq!(f.push(b"FGHIJKLMNOP"), vec![], "reported once only");
    assert_eq!(f.push(b"Q\r\nOK\r\n"), vec![code("OK")]);
}

#[test]
fn overlong_reason_names_the_limit() {
    let mut f = Framer::new(b"\r\n", false, 4096);
    let frames = f.push(&[b'9'; 5000]);
    assert_eq!(frames.len(), 1);
    match &frames[0] {
        Frame::Malformed { bytes, reason } => {
            assert_eq!(bytes.len(), 4096);
            assert_eq!(reason, "frame longer than 4096 bytes");
        }
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn overlong_resync_when_the_terminator_is_split_across_reads() {
    let mut f = Framer::new(b"\r\n", false, 3);
    assert_eq!(f.push(b"ABCDEFG\r"), vec![overlong(b"ABC", 3)]);
    assert_eq!(f.push(b"\nXY\r\n"), vec![code("XY")]);
}

#[test]
fn overlong_without_terminator_ends_at_idle() {
    let mut f = Framer::new(b"", false, 3);
    assert_eq!(f.push(b"ABCDEF"), vec![overlong(b"ABC", 3)]);
    assert!(f.is_pending());
    assert_eq!(f.flush_idle(), None);
    assert_eq!(f.push(b"XY"), vec![]);
    assert_eq!(f.flush_idle(), Some(code("XY")));
}

#[test]
fn overlong_discarding_also_ends_at_idle_with_a_terminator() {
    let mut f = Framer::new(b"\r\n", false, 2);
    assert_eq!(f.push(b"ABCD"), vec![overlong(b"AB", 2)]);
    assert_eq!(f.flush_idle(), None);
    assert_eq!(f.push(b"XY\r\n"), vec![code("XY")]);
}

#[test]
fn binary_and_gs_bytes_are_kept() {
    let mut f = crlf();
    let frames = f.push(b"]d2010950600013435210ABC123\x1d21SN0001\r\n");
    assert_eq!(
        frames,
        vec![code("]d2010950600013435210ABC123\x1d21SN0001")]
    );
}

#[test]
fn stx_etx_frame_and_bytes_outside_are_discarded() {
    let mut f = Framer::new(b"\r\n", true, 4096);
    let frames = f.push(b"noise\x02ABC\x03\r\n\x02DEF\x03junk");
    assert_eq!(frames, vec![code("ABC"), code("DEF")]);
    assert!(!f.is_pending());
}

#[test]
fn stx_etx_split_across_reads() {
    let mut f = Framer::new(b"", true, 4096);
    assert_eq!(f.push(b"\x02AB"), vec![]);
    assert!(f.is_pending());
    assert_eq!(f.push(b"C"), vec![]);
    assert_eq!(f.push(b"\x03\x02"), vec![code("ABC")]);
    assert_eq!(f.push(b"D\x03"), vec![code("D")]);
}

#[test]
fn stx_etx_keeps_the_terminator_bytes_inside_a_frame() {
    let mut f = Framer::new(b"\r", true, 4096);
    assert_eq!(f.push(b"\x02A\rB\x03"), vec![code("A\rB")]);
}

#[test]
fn stx_without_etx_is_malformed_at_idle() {
    let mut f = Framer::new(b"", true, 4096);
    assert_eq!(f.push(b"\x02ABC"), vec![]);
    assert_eq!(
        f.flush_idle(),
        Some(Frame::Malformed {
            bytes: b"ABC".to_vec(),
            reason: "frame started with STX but no ETX followed".into()
        })
    );
    assert_eq!(f.push(b"outside\x02OK\x03"), vec![code("OK")]);
}

#[test]
fn a_lone_stx_then_silence_reports_nothing() {
    let mut f = Framer::new(b"", true, 4096);
    assert_eq!(f.push(b"\x02"), vec![]);
    assert_eq!(f.flush_idle(), None);
    assert!(!f.is_pending());
}

#[test]
fn a_new_stx_before_etx_reports_the_interrupted_frame() {
    let mut f = Framer::new(b"", true, 4096);
    let frames = f.push(b"\x02AB\x02CD\x03");
    assert_eq!(
        frames,
        vec![
            Frame::Malformed {
                bytes: b"AB".to_vec(),
                reason: "frame interrupted by a new STX before its ETX".into()
            },
            code("CD"),
        ]
    );
}

#[test]
fn stx_etx_overlong_resyncs_at_etx_or_stx() {
    let mut f = Framer::new(b"", true, 3);
    assert_eq!(f.push(b"\x02ABCDEF"), vec![overlong(b"ABC", 3)]);
    assert_eq!(f.push(b"GH\x03\x02XY\x03"), vec![code("XY")]);
    assert_eq!(f.push(b"\x02LONGER"), vec![overlong(b"LON", 3)]);
    assert_eq!(f.push(b"\x02OK\x03"), vec![code("OK")]);
}

#[test]
fn stx_etx_empty_frame_is_ignored() {
    let mut f = Framer::new(b"", true, 4096);
    assert_eq!(f.push(b"\x02\x03\x02\r\n\x03"), vec![]);
}

#[test]
fn classifier_sorts_codes_noreads_and_replies() {
    let c = Classifier::new(&["NOREAD".into(), "ERROR".into()], &["OK,LON".into()]);
    assert_eq!(
        c.classify(code("NOREAD")),
        Classified::Reading(ReadingKind::NoRead)
    );
    assert_eq!(
        c.classify(code("ERROR")),
        Classified::Reading(ReadingKind::NoRead)
    );
    assert_eq!(
        c.classify(code("OK,LON")),
        Classified::Ignored(b"OK,LON".to_vec())
    );
    assert_eq!(
        c.classify(code("ABC")),
        Classified::Reading(ReadingKind::Code(b"ABC".to_vec()))
    );
}

#[test]
fn classifier_matches_whole_frames_only() {
    let c = Classifier::new(&["NOREAD".into()], &["OK".into()]);
    assert_eq!(
        c.classify(code("NOREAD2")),
        Classified::Reading(ReadingKind::Code(b"NOREAD2".to_vec()))
    );
    assert_eq!(
        c.classify(code("OKAY")),
        Classified::Reading(ReadingKind::Code(b"OKAY".to_vec()))
    );
}

#[test]
fn classifier_passes_malformed_frames_on() {
    let c = Classifier::default();
    assert_eq!(
        c.classify(overlong(b"AB", 2)),
        Classified::Reading(ReadingKind::Malformed {
            bytes: b"AB".to_vec(),
            reason: "frame longer than 2 bytes".into()
        })
    );
}

#[test]
fn framer_from_config_uses_its_settings() {
    let config = FramingConfig {
        max_frame: 2,
        ..FramingConfig::default()
    };
    let mut f = Framer::from_config(&config);
    assert_eq!(
        f.push(b"AB\r\nABC\r\n"),
        vec![code("AB"), overlong(b"AB", 2)]
    );
}

#[test]
fn overlong_is_reported_as_soon_as_a_byte_cannot_be_the_terminator() {
    let mut f = Framer::new(b"\r\n", false, 2);
    assert_eq!(f.push(b"AB\r"), vec![], "CR may still start the terminator");
    assert_eq!(f.push(b"X"), vec![overlong(b"AB", 2)]);
    assert_eq!(f.push(b"\r\nYZ\r\n"), vec![code("YZ")]);
}

#[test]
fn partial_terminator_is_the_longest_matching_beginning() {
    assert_eq!(partial_terminator(b"AB#E", b"#END"), 2);
    assert_eq!(partial_terminator(b"AB#EN", b"#END"), 3);
    assert_eq!(partial_terminator(b"ABC", b"#END"), 0);
    assert_eq!(partial_terminator(b"ABC", b""), 0);
    assert_eq!(partial_terminator(b"A\r", b"\r\n"), 1);
}

fn lost(bytes: &[u8]) -> Frame {
    Frame::Malformed {
        bytes: bytes.to_vec(),
        reason: "input lost".into(),
    }
}

#[test]
fn lost_input_makes_the_frame_in_progress_malformed() {
    let mut f = crlf();
    assert_eq!(f.push(b"DONE\r\n0109506"), vec![code("DONE")]);
    f.mark_lost("input lost");
    assert_eq!(
        f.push(b"2\r\nNEXT\r\n"),
        vec![lost(b"01095062"), code("NEXT")]
    );
}

#[test]
fn lost_input_between_frames_marks_the_next_one_even_if_empty() {
    let mut f = crlf();
    f.mark_lost("input lost");
    // A code lost up to its terminator is still reported.
    assert_eq!(f.push(b"\r\nOK\r\n"), vec![lost(b""), code("OK")]);
}

#[test]
fn lost_input_with_idle_timeout_stx_etx_and_overlong_frames() {
    let mut idle = Framer::new(b"", false, 64);
    idle.push(b"AB");
    idle.mark_lost("input lost");
    assert_eq!(idle.flush_idle(), Some(lost(b"AB")));
    assert_eq!(idle.push(b"CD"), vec![]);
    assert_eq!(idle.flush_idle(), Some(code("CD")));

    let mut wrapped = Framer::new(b"", true, 64);
    wrapped.push(b"\x02AB");
    wrapped.mark_lost("input lost");
    assert_eq!(
        wrapped.push(b"C\x03\x02D\x03"),
        vec![lost(b"ABC"), code("D")]
    );

    // Malformed anyway: the loss does not carry over to the next frame.
    let mut short = Framer::new(b"\r\n", false, 4);
    short.push(b"AB");
    short.mark_lost("input lost");
    assert_eq!(
        short.push(b"CDEF\r\nOK\r\n"),
        vec![overlong(b"ABCD", 4), code("OK")]
    );
}

/// Found while writing the fuzz target `framing` (its invariant "every frame ≤ max_frame"): with
/// a terminator of several bytes, the start of a terminator held at the end of a full frame
/// became part of it at the idle timeout, giving a data frame longer than `max_frame`.
#[test]
fn idle_timeout_never_yields_a_frame_longer_than_max_frame() {
    let mut framer = Framer::new(b"XY", false, 3);
    assert_eq!(framer.push(b"abcX"), []);
    assert_eq!(framer.flush_idle(), Some(overlong(b"abc", 3)));
    assert!(!framer.is_pending());
    // CR and LF trimmed off still fit.
    let mut framer = Framer::new(b"\r\n", false, 3);
    assert_eq!(framer.push(b"abc\r"), []);
    assert_eq!(framer.flush_idle(), Some(code("abc")));
}

/// The plain-mode rules as first written: every byte compared against the terminator and its
/// beginnings. [`Framer`] skips those comparisons where they cannot change the outcome; this
/// model is what it must agree with.
fn model_plain(term: &[u8], max: usize, input: &[u8]) -> Vec<Frame> {
    let (mut buf, mut discarding, mut frames) = (Vec::new(), false, Vec::new());
    for &byte in input {
        buf.push(byte);
        let at_end = !term.is_empty() && buf.ends_with(term);
        let partial = partial_terminator(&buf, term);
        if !discarding && at_end {
            frames.extend(data(&buf[..buf.len() - term.len()]));
            buf.clear();
        } else if !discarding && buf.len() - partial > max {
            frames.push(overlong(&buf[..max], max));
            buf.drain(..buf.len() - partial);
            discarding = true;
        } else if discarding && at_end {
            buf.clear();
            discarding = false;
        } else if discarding {
            buf.drain(..buf.len() - partial);
        }
    }
    frames
}

/// Every input of up to 6 bytes over the bytes that matter (data, CR, LF, the bytes of a
/// two-byte literal terminator), for several terminators and limits, whole and byte by byte.
#[test]
fn plain_framing_agrees_with_the_byte_by_byte_model_on_every_short_input() {
    let alphabet = b"a\r\nXY";
    let terms: [&[u8]; 5] = [b"\r\n", b"\r", b"\n", b"XY", b""];
    let mut checked = 0;
    for len in 0..=6u32 {
        for n in 0..alphabet.len().pow(len) {
            let (mut input, mut k) = (Vec::new(), n);
            for _ in 0..len {
                input.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            for term in terms {
                for max in [1, 2, 3, 5] {
                    let want = model_plain(term, max, &input);
                    let mut whole = Framer::new(term, false, max);
                    assert_eq!(whole.push(&input), want, "{term:?} {max} {input:?}");
                    let mut bytes = Framer::new(term, false, max);
                    let got: Vec<Frame> = input.iter().flat_map(|b| bytes.push(&[*b])).collect();
                    assert_eq!(got, want, "byte by byte: {term:?} {max} {input:?}");
                    assert_eq!(whole.flush_idle(), bytes.flush_idle());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300_000, "{checked}");
}
