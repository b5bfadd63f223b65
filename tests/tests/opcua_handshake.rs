//! The OPC UA code handshake end to end: an in-process OPC UA server presents codes, the real
//! agent commits them to its queue, writes the ack back to the server and publishes them to a
//! real mosquitto.
//!
//! What the PLC and the subscriber can prove:
//! - every code presented arrives once, with its context, and is acknowledged;
//! - no ack is written before its commit: at each ack write, while the agent waits for the
//!   server's answer, the queue file already holds the acknowledged code, once;
//! - SIGKILLs at any point of the handovers, and between a commit and its ack, lose nothing
//!   and store nothing twice: every code arrives under exactly one seq, and the code left
//!   unacknowledged by a kill is acknowledged after the restart with its original seq;
//! - the server stopped and restarted mid-run: the subscription comes back and a code handed
//!   over while it was down is not lost;
//! - Basic256Sha256/SignAndEncrypt with a user name and password works once the server's
//!   certificate is trusted, and an untrusted one is refused with a message naming the file and
//!   the command (`tracegate opcua trust`), which then makes the agent connect.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracegate_tests::opcua::{NS, OpcuaPlc, Options, PASSWORD, USER};
use tracegate_tests::process::tracegate_bin;
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, Subscriber, agent_config, bounded, wait_all_delivered,
};

const LONG: Duration = Duration::from_secs(15);

fn code(n: u32) -> String {
    format!("CODE-{n:05}")
}

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
    plc.present(n, &code(n));
    assert!(
        plc.wait_ack(n, LONG),
        "code {n} was not acknowledged (ack {})\n{}",
        plc.ack(),
        agent.log_tail(30)
    );
}

/// The seqs under which the queue file holds `code`, as a reader sees it (`tracegate queue
/// export`, which reads the file beside the running agent): only what commits made durable
/// is there.
fn committed_seqs(config: &Path, code: &str) -> Result<Vec<u64>, String> {
    let out = Command::new(tracegate_bin())
        .args(["queue", "export", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut seqs = Vec::new();
    for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if v["event"]["code"]["text"] == code {
            seqs.push(v["seq"].as_u64().ok_or("an exported line without seq")?);
        }
    }
    Ok(seqs)
}

/// What the server saw of the agent's queue file at each ack write.
#[derive(Debug, Default)]
struct AckAudit {
    /// Every ack value checked, in the order written.
    checked: Vec<u32>,
    /// Acks written while their code was not committed, or was committed more than once.
    violations: Vec<String>,
}

/// Has the server check, at every ack write (the agent waits for the answer meanwhile), that
/// the acknowledged code is in the queue file of the agent configured by `config` exactly once.
fn audit_acks(plc: &OpcuaPlc, config: PathBuf) -> Arc<Mutex<AckAudit>> {
    let audit = Arc::new(Mutex::new(AckAudit::default()));
    let seen = audit.clone();
    plc.on_each_ack(move |n| {
        let found = committed_seqs(&config, &code(n));
        let mut audit = seen.lock().unwrap();
        audit.checked.push(n);
        match found {
            Ok(seqs) if seqs.len() == 1 => {}
            Ok(seqs) => audit.violations.push(format!(
                "ack {n} written while {} was committed under seqs {seqs:?}",
                code(n)
            )),
            Err(e) => audit
                .violations
                .push(format!("ack {n}: cannot read the queue: {e}")),
        }
    });
    audit
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
        let audit = audit_acks(&plc, agent.config_path().to_owned());
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
        }
        {
            // Each code acked once, and only once its commit was in the queue file.
            let audit = audit.lock().unwrap();
            assert!(audit.violations.is_empty(), "{:#?}", audit.violations);
            assert_eq!(audit.checked, (1..=N).collect::<Vec<_>>());
        }
        let (last, delivery) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, u64::from(N));
        for n in 1..=N {
            let e = &delivery.get(u64::from(n)).unwrap().event;
            assert_eq!(e["code"]["text"], code(n));
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
fn kills_at_any_point_of_the_handovers_lose_nothing_and_ack_nothing_early() {
    bounded(Duration::from_secs(90), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let plc = Arc::new(OpcuaPlc::start(Options::default()));
        // A 100 ms group-commit window: a kill soon after the code is read lands before its
        // commit.
        let text = agent_config(&broker.url(), "", &source(&plc, ""))
            .replace("commit_window = \"5ms\"", "commit_window = \"100ms\"");
        let mut agent = Agent::start(&text);
        let audit = audit_acks(&plc, agent.config_path().to_owned());
        // The events a (dead) agent's queue file has ever committed.
        let committed_by = |agent: &Agent| agent.queue_stats().next_seq - 1;

        // A kill between the commit and the ack: the server refuses the ack until the code is
        // at the subscriber (so committed); then the agent dies.
        hand_over(&plc, &agent, 1);
        plc.refuse_acks(true);
        plc.present(2, &code(2));
        assert!(
            sub.wait_until(LONG, |m| m
                .iter()
                .any(|m| m.is_event() && m.json()["code"]["text"] == code(2))),
            "code 2 never arrived\n{}",
            agent.log_tail(30)
        );
        agent.kill9();
        assert_eq!((plc.ack(), committed_by(&agent)), (1, 2));
        plc.refuse_acks(false);
        agent.restart();
        assert!(plc.wait_ack(2, LONG), "{}", agent.log_tail(30));

        // A PLC that hands over the next code as soon as the last is acknowledged, and kills at
        // arbitrary moments of its handovers: each once the restarted agent acknowledges
        // again, after 0 to 290 ms more (a handover takes about one 100 ms commit window).
        let stop = Arc::new(AtomicBool::new(false));
        let presenter = {
            let (plc, stop) = (plc.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 2;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    plc.present(n, &code(n));
                    while !plc.wait_ack(n, Duration::from_millis(100)) {
                        if stop.load(Ordering::Relaxed) {
                            return n;
                        }
                    }
                }
                n
            })
        };
        let mut kills = 1;
        let mut acked = plc.ack();
        for round in 0..12u64 {
            assert!(
                plc.wait_ack(acked + 1, LONG),
                "round {round}: no ack after the restart\n{}",
                agent.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(round * 53 % 300));
            agent.kill9();
            kills += 1;
            acked = plc.ack();
            let committed = committed_by(&agent);
            assert!(
                u64::from(acked) <= committed,
                "round {round}: ack {acked} written but only {committed} committed"
            );
            agent.restart();
        }
        stop.store(true, Ordering::Relaxed);
        let last = presenter.join().unwrap();
        assert!(
            plc.wait_ack(last, LONG),
            "code {last} was not acknowledged\n{}",
            agent.log_tail(30)
        );

        // Every code the server saw acknowledged, and only those, arrived, each under exactly
        // one seq, in order: code 2, committed and killed before its ack, was acknowledged
        // after the restart without a second event.
        let (last_seq, delivery) = wait_all_delivered(&agent, &sub);
        assert_eq!(
            last_seq,
            u64::from(last),
            "{last_seq} events for {last} codes"
        );
        assert_eq!(
            delivery.code_texts(),
            (1..=last).map(code).collect::<Vec<_>>()
        );
        let audit = audit.lock().unwrap();
        assert!(audit.violations.is_empty(), "{:#?}", audit.violations);
        let mut acks = audit.checked.clone();
        acks.dedup();
        assert_eq!(
            acks,
            (1..=last).collect::<Vec<_>>(),
            "acks in order, none skipped"
        );
        assert!(last >= 14, "only {last} codes handed over in {kills} runs");
        eprintln!(
            "{kills} kills, {last} codes, {} ack writes",
            audit.checked.len()
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
