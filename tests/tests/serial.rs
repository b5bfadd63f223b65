//! A serial scanner on a pseudo-terminal: the test writes into the master like a reader would
//! (odd chunk sizes, several codes per write, partial codes, CRLF) and checks what the
//! subscriber receives and what the agent answers the reader.

use std::time::Duration;

use serde_json::json;
use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, FakeReader, Mosquitto, PREFIX, Subscriber, agent_config, bounded,
};

const LIMIT: Duration = Duration::from_secs(60);
const STARTUP: Duration = Duration::from_secs(15);

fn serial_source(id: &str, station: &str, port: &str, extra: &str) -> String {
    format!(
        r#"[[sources]]
id = "{id}"
type = "scanner"
station = "{station}"
transport = "serial"
port = "{port}"
baud = 9600
terminator = "crlf"
noread = ["NOREAD"]
accept_reply = "OK\r"
reject_reply = "NG\r"
{extra}
"#
    )
}

/// Writes `stream` in chunks of the (cycled) `sizes`. After each chunk, waits until the agent
/// has answered every frame completed so far: a frame is only complete at its CRLF, so a
/// partial code sits in the agent's framer while the test waits.
fn send_in_chunks(reader: &mut FakeReader, stream: &[u8], sizes: &[usize], agent: &Agent) {
    let (mut at, mut i) = (0, 0);
    while at < stream.len() {
        let end = (at + sizes[i % sizes.len()]).min(stream.len());
        assert!(reader.send(&stream[at..end]), "the pty master is gone");
        at = end;
        i += 1;
        let frames_done = stream[..at].windows(2).filter(|w| w == b"\r\n").count();
        let replied = |r: &FakeReader| r.count(b"OK\r") + r.count(b"NG\r");
        let timeout = if frames_done <= 1 {
            STARTUP
        } else {
            Duration::from_secs(5)
        };
        assert!(
            reader.wait_count(b"\r", frames_done, timeout),
            "{frames_done} frames sent, {} replies so far\n{}",
            replied(reader),
            agent.log_tail(30)
        );
    }
}

#[test]
fn codes_written_in_odd_chunks_arrive_in_order_with_replies() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut reader = FakeReader::pty();
        let source = serial_source("sc1", "st1", &reader.port(), "validation = \"none\"");
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        // 40 frames; frame 17 is the reader's no-read string.
        let frames: Vec<String> = (1..=40)
            .map(|i| {
                if i == 17 {
                    "NOREAD".to_string()
                } else {
                    format!("TG-SER-{i:04}-X")
                }
            })
            .collect();
        let stream: Vec<u8> = frames
            .iter()
            .flat_map(|f| format!("{f}\r\n").into_bytes())
            .collect();
        send_in_chunks(
            &mut reader,
            &stream,
            &[1, 7, 3, 13, 2, 41, 5, 17, 60, 4],
            &agent,
        );

        // Exactly one reply per frame, in frame order.
        let expected: String = frames
            .iter()
            .map(|f| if f == "NOREAD" { "NG\r" } else { "OK\r" })
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&reader.received()),
            expected,
            "replies to the reader"
        );

        assert!(
            sub.wait_for(40, Duration::from_secs(10)),
            "events: {}\n{}",
            sub.events().len(),
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=40);
        delivery.assert_ordered_per_source();
        for (i, frame) in frames.iter().enumerate() {
            let r = delivery.get(i as u64 + 1).expect("complete");
            let e = &r.event;
            assert_eq!(
                (e["agent"].as_str(), e["site"].as_str(), e["line"].as_str()),
                (Some("t1"), Some("plant"), Some("l1"))
            );
            assert_eq!(
                (e["station"].as_str(), e["source"].as_str()),
                (Some("st1"), Some("sc1"))
            );
            assert_eq!(e["validation"], "none");
            if frame == "NOREAD" {
                assert_eq!(r.topic, format!("{PREFIX}/st1/sc1/noread"));
                assert_eq!(e["kind"], "noread");
                assert!(e.get("code").is_none(), "a no-read carries no code: {e}");
            } else {
                assert_eq!(r.topic, format!("{PREFIX}/st1/sc1/scan"));
                assert_eq!(e["kind"], "scan");
                assert_eq!(
                    e["code"],
                    json!({"text": frame, "utf8": true, "len": frame.len()})
                );
            }
        }
    });
}

#[test]
fn gs1_codes_are_parsed_and_bad_ones_go_to_invalid() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut reader = FakeReader::pty();
        let source = serial_source(
            "sc2",
            "st2",
            &reader.port(),
            "validation = \"gs1\"\naim = true",
        );
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        // domain.md V1, I1 (bad GTIN check digit), then a no-read.
        let v1_data = b"01095060001343521726123110ABC123\x1d21SN0001".to_vec();
        let i1_data = b"01095060001343531726123110ABC123\x1d21SN0001".to_vec();
        let mut stream = Vec::new();
        for data in [&v1_data, &i1_data] {
            stream.extend_from_slice(b"]d2");
            stream.extend_from_slice(data);
            stream.extend_from_slice(b"\r\n");
        }
        stream.extend_from_slice(b"NOREAD\r\n");
        send_in_chunks(&mut reader, &stream, &[5, 11, 23, 2], &agent);
        assert_eq!(
            String::from_utf8_lossy(&reader.received()),
            "OK\rNG\rNG\r",
            "replies: valid, invalid, no-read"
        );

        assert!(
            sub.wait_for(3, Duration::from_secs(10)),
            "events: {:?}\n{}",
            sub.events(),
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=3);

        let v1 = delivery.get(1).unwrap();
        assert_eq!(v1.topic, format!("{PREFIX}/st2/sc2/scan"));
        let e = &v1.event;
        assert_eq!(e["kind"], "scan");
        assert_eq!(e["validation"], "gs1");
        let text = String::from_utf8(v1_data.clone()).unwrap();
        assert_eq!(
            e["code"],
            json!({"text": text, "utf8": true, "len": v1_data.len()}),
            "code without the AIM id"
        );
        assert_eq!(e["symbology"]["aim"], "]d2");
        assert_eq!(e["symbology"]["gs1"], true);
        let elements = e["gs1"]["elements"].as_array().expect("gs1 elements");
        let summary: Vec<(&str, &str)> = elements
            .iter()
            .map(|el| (el["ai"].as_str().unwrap(), el["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ("01", "09506000134352"),
                ("17", "261231"),
                ("10", "ABC123"),
                ("21", "SN0001")
            ]
        );
        assert_eq!(elements[1]["date"], "2026-12-31", "expiry as a date");
        assert_eq!(e["gs1"]["errors"], json!([]));

        let i1 = delivery.get(2).unwrap();
        assert_eq!(i1.topic, format!("{PREFIX}/st2/sc2/invalid"));
        assert_eq!(i1.event["kind"], "invalid");
        let reason = i1.event["reason"]
            .as_str()
            .expect("an invalid event says why");
        assert!(
            reason.to_lowercase().contains("check digit"),
            "reason names the check digit: {reason}"
        );
        assert_eq!(
            i1.event["code"]["text"],
            String::from_utf8(i1_data).unwrap()
        );

        let noread = delivery.get(3).unwrap();
        assert_eq!(noread.topic, format!("{PREFIX}/st2/sc2/noread"));
        assert_eq!(noread.event["kind"], "noread");
    });
}

#[test]
fn bytes_that_are_not_utf8_are_kept_exactly() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut reader = FakeReader::pty();
        let source = serial_source("sc3", "st3", &reader.port(), "");
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        let code: &[u8] = b"LOT\xff\xfe-7\x1d9";
        send_in_chunks(&mut reader, &[code, b"\r\n"].concat(), &[4, 100], &agent);
        assert_eq!(reader.received(), b"OK\r");

        assert!(
            sub.wait_for(1, Duration::from_secs(10)),
            "{}",
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=1);
        let c = &delivery.get(1).unwrap().event["code"];
        // Base64 of the exact bytes; the text escapes what is not UTF-8.
        assert_eq!(
            c,
            &json!({"text": "LOT\\xFF\\xFE-7\u{1d}9", "utf8": false, "base64": "TE9U//4tNx05", "len": 9})
        );
    });
}
