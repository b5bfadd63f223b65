//! The OPC UA code handshake end to end: an in-process OPC UA server presents codes, the real
//! agent commits them to its queue, writes the ack back to the server and publishes them to a
//! real mosquitto.
//!
//! What the PLC and the subscriber can prove:
//! - every code presented arrives once, with its context, and is acknowledged;
//! - the server stopped and restarted mid-run: the subscription comes back and a code handed
//!   over while it was down is not lost;
//! - Basic256Sha256/SignAndEncrypt with a user name and password works once the server's
//!   certificate is trusted, and an untrusted one is refused with a message naming the file and
//!   the command (`tracegate opcua trust`), which then makes the agent connect.

use std::time::{Duration, Instant};

use tracegate_tests::opcua::{NS, OpcuaPlc, Options, PASSWORD, USER};
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, Subscriber, agent_config, bounded, wait_all_delivered,
};

const LONG: Duration = Duration::from_secs(15);

fn source(plc: &OpcuaPlc, extra: &str) -> String {
    format!(
        r#"[[sources]]
id = "plc1"
type = "opcua"
station = "st40"
endpoint = "{}"
publishing_interval = "10ms"
sampling_interval = "5ms"
reconnect_min = "50ms"
reconnect_max = "500ms"
request_timeout = "2s"
{extra}

[sources.handshake]
counter = "nsu={NS};s=Counter"
code = "nsu={NS};s=Code"
ack = "nsu={NS};s=Ack"
result = "nsu={NS};s=Result"

[[sources.context]]
name = "work_order"
node = "nsu={NS};s=Order"
"#,
        plc.endpoint()
    )
}

fn hand_over(plc: &OpcuaPlc, agent: &Agent, n: u32) {
    plc.present(n, &format!("CODE-{n:05}"));
    assert!(
        plc.wait_ack(n, LONG),
        "code {n} was not acknowledged (ack {})\n{}",
        plc.ack(),
        agent.log_tail(30)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn codes_arrive_once_with_context_and_each_is_acked_after_its_commit() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let plc = OpcuaPlc::start(Options::default());
        let agent = Agent::start(&agent_config(&broker.url(), "", &source(&plc, "")));
        const N: u32 = 200;
        let mut latencies = Vec::new();
        for n in 1..=N {
            let presented = Instant::now();
            hand_over(&plc, &agent, n);
            let acked = plc
                .ack_times()
                .into_iter()
                .find(|(_, a)| *a == n)
                .expect("ack recorded")
                .0;
            latencies.push(acked - presented);
            // Acked only after its commit: the queue already holds it.
            if n % 50 == 0 {
                let next_seq = agent.queue_stats().next_seq;
                assert!(next_seq > u64::from(n), "ack {n} before its commit");
            }
        }
        let (last, delivery) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, u64::from(N));
        for n in 1..=N {
            let e = &delivery.get(u64::from(n)).unwrap().event;
            assert_eq!(e["code"]["text"], format!("CODE-{n:05}"));
            assert_eq!(e["attributes"]["work_order"], format!("WO-{n}"));
        }
        latencies.sort();
        eprintln!(
            "opcua handover, data change -> committed and acked ({N} codes, publishing 10ms, \
             commit_window 5ms): p50 {:?}, p99 {:?}, max {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
        );
    });
}

#[test]
fn a_server_restart_mid_run_loses_no_handed_over_code() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut plc = OpcuaPlc::start(Options::default());
        let agent = Agent::start(&agent_config(&broker.url(), "", &source(&plc, "")));
        for n in 1..=10 {
            hand_over(&plc, &agent, n);
        }
        plc.stop();
        agent.wait_log("connection lost", 1, LONG);
        // Handed over while the agent cannot see the server.
        plc.present(11, "CODE-00011");
        plc.restart();
        assert!(
            plc.wait_ack(11, LONG),
            "code 11 lost\n{}",
            agent.log_tail(30)
        );
        agent.wait_log("connected again after", 1, LONG);
        // The subscription is back: new codes arrive by data change.
        for n in 12..=20 {
            hand_over(&plc, &agent, n);
        }
        let (last, delivery) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, 20);
        assert_eq!(
            delivery.get(11).unwrap().event["code"]["text"],
            "CODE-00011"
        );
    });
}

#[test]
fn an_untrusted_certificate_is_refused_then_trusted_by_the_cli_and_sign_and_encrypt_works() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let plc = OpcuaPlc::start(Options { secure: true });
        let secrets = tempfile::tempdir().unwrap();
        let password = secrets.path().join("opcua.password");
        std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        let extra = format!(
            "security_policy = \"Basic256Sha256\"\nsecurity_mode = \"SignAndEncrypt\"\n\
             identity = \"username\"\nusername = \"{USER}\"\npassword_file = {:?}",
            password.display().to_string()
        );
        let text = agent_config(&broker.url(), "", &source(&plc, &extra));
        let agent = Agent::start(&text);
        plc.present(1, "CODE-00001");
        agent.wait_log("is not trusted; move", 1, LONG);
        let log = agent.stderr_text();
        let line = log
            .lines()
            .find(|l| l.contains("is not trusted; move"))
            .unwrap();
        assert!(
            line.contains("tracegate opcua trust --config") && line.contains("pki/rejected/"),
            "{line}"
        );
        assert_eq!(plc.ack(), 0, "acked through an untrusted server");
        let rejected = agent.dir().join("pki/rejected");
        let file = std::fs::read_dir(&rejected)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let (code, out, err) = agent.cli(&["opcua", "trust", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("pki/trusted/"), "{out}");
        assert!(
            plc.wait_ack(1, LONG),
            "not connected after trusting\n{}",
            agent.log_tail(30)
        );
        hand_over(&plc, &agent, 2);
        let (last, _) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, 2);
    });
}
