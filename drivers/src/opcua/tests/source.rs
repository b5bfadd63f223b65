use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kit::{HMI_NODES, NS, Options, PASSWORD, PlcServer, USER};
use crate::opcua::{OpcuaConfig, pki, run};
use crate::reading::{DeviceState, Reading, ReadingKind, Sink, Submission, Verdict};
use crate::shutdown::Shutdown;

const LONG: Duration = Duration::from_secs(15);

/// What the fake agent received, with when it answered "committed".
type Log = Arc<Mutex<Vec<(Instant, Reading)>>>;

fn config(server: &PlcServer, dir: &Path, extra: &str) -> OpcuaConfig {
    let text = format!(
        r#"
endpoint = "{}"
publishing_interval = "10ms"
sampling_interval = "5ms"
reconnect_min = "50ms"
reconnect_max = "300ms"
request_timeout = "2s"
{extra}

[handshake]
counter = "nsu={NS};s=Counter"
code = "nsu={NS};s=Code"
ack = "nsu={NS};s=Ack"
result = "nsu={NS};s=Result"

[[context]]
name = "order"
node = "nsu={NS};s=Order"
"#,
        server.endpoint()
    );
    let mut c: OpcuaConfig = toml::from_str(&text).unwrap();
    c.validate().unwrap();
    c.resolve_paths(&dir.join("line.toml"), dir);
    c
}

/// Runs the source with a fake agent that commits everything at once.
fn start(config: OpcuaConfig) -> (Log, Sink, crate::shutdown::ShutdownTrigger) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
        .with_test_writer()
        .try_init();
    let (sink, mut rx) = Sink::channel(16);
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        let mut seq = 0;
        while let Some(Submission { reading, reply }) = rx.recv().await {
            seq += 1;
            l.lock().unwrap().push((Instant::now(), reading));
            let _ = reply.send(Verdict::Committed { seq, valid: true });
        }
    });
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(run(config, "plc1".into(), sink.clone(), shutdown));
    (log, sink, trigger)
}

fn codes(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|(_, r)| match &r.kind {
            ReadingKind::Code(c) => Some(String::from_utf8_lossy(c).into_owned()),
            _ => None,
        })
        .collect()
}

async fn hand_over(server: &PlcServer, from: u32, to: u32) {
    for n in from..=to {
        server.present(n, &format!("CODE-{n:04}"));
        assert!(
            server.wait_ack(n, LONG).await,
            "code {n} not acknowledged (ack {})",
            server.ack()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_code_is_acknowledged_after_its_commit_with_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let server = PlcServer::start(Options::default()).await;
    let (log, sink, _stop) = start(config(&server, dir.path(), ""));
    hand_over(&server, 1, 20).await;
    let expected: Vec<String> = (1..=20).map(|n| format!("CODE-{n:04}")).collect();
    assert_eq!(codes(&log), expected);
    let log = log.lock().unwrap();
    let writes = server.writes.lock().unwrap();
    for (i, (committed_at, reading)) in log.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(reading.attributes["order"], format!("WO-{n}"));
        assert_eq!(
            reading.handover.as_deref(),
            Some(
                crate::opcua::handshake::handover_key(
                    u64::from(n),
                    format!("CODE-{n:04}").as_bytes()
                )
                .as_str()
            )
        );
        let (acked_at, _, result) = writes.iter().find(|w| w.1 == n).unwrap();
        assert!(acked_at >= committed_at, "code {n} acked before its commit");
        assert_eq!(*result, Some(1), "result written with (before) the ack");
    }
    assert_eq!(*sink.device_state().borrow(), DeviceState::Connected);
    // The client's own certificate was created in the state directory.
    assert!(dir.path().join("pki/own/cert.der").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_no_handed_over_code_and_the_subscription_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PlcServer::start(Options::default()).await;
    let (log, sink, _stop) = start(config(&server, dir.path(), ""));
    hand_over(&server, 1, 5).await;
    server.stop().await;
    let mut state = sink.device_state();
    tokio::time::timeout(LONG, state.wait_for(|s| *s == DeviceState::Disconnected))
        .await
        .expect("the loss is reported")
        .unwrap();
    // The PLC hands over code 6 while the agent cannot see it.
    server.present(6, "CODE-0006");
    server.restart().await;
    assert!(
        server.wait_ack(6, LONG).await,
        "code 6 lost across the restart"
    );
    // Monitored items are back: new codes arrive by data change.
    hand_over(&server, 7, 10).await;
    let expected: Vec<String> = (1..=10).map(|n| format!("CODE-{n:04}")).collect();
    assert_eq!(codes(&log), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_sign_and_encrypt_with_user_name_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = PlcServer::start(Options { secure: true }).await;
    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    let extra = format!(
        "security_policy = \"Basic256Sha256\"\nsecurity_mode = \"SignAndEncrypt\"\n\
         identity = \"username\"\nusername = \"{USER}\"\npassword_file = \"password\""
    );
    let config = config(&server, dir.path(), &extra);
    let cert = dir.path().join("server.der");
    std::fs::write(&cert, server.certificate()).unwrap();
    pki::trust(&config.pki(), &cert).unwrap();
    let (log, _sink, _stop) = start(config);
    hand_over(&server, 1, 3).await;
    assert_eq!(codes(&log).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_certificate_is_refused_until_it_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let server = PlcServer::start(Options { secure: true }).await;
    std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
    let extra = format!(
        "security_policy = \"Basic256Sha256\"\nidentity = \"username\"\nusername = \"{USER}\"\n\
         password_file = \"password\""
    );
    let config = config(&server, dir.path(), &extra);
    let pki_dir = config.pki();
    // The refusal, as the source logs it.
    let e = pki::check_server(
        &pki_dir,
        &server.certificate(),
        &dir.path().join("line.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is not trusted; move")
            && e.contains("rejected/")
            && e.contains("trusted/")
            && e.contains("tracegate opcua trust --config"),
        "{e}"
    );
    let (log, sink, _stop) = start(config);
    server.present(1, "CODE-0001");
    assert!(
        !server.wait_ack(1, Duration::from_secs(2)).await,
        "acked an untrusted server"
    );
    assert!(log.lock().unwrap().is_empty());
    assert_ne!(*sink.device_state().borrow(), DeviceState::Connected);
    let rejected: Vec<_> = std::fs::read_dir(pki_dir.join("rejected"))
        .unwrap()
        .collect();
    assert_eq!(
        rejected.len(),
        1,
        "the refused certificate is saved for the operator"
    );
    // The operator trusts it (what `tracegate opcua trust` does); the retry connects.
    let file = rejected[0].as_ref().unwrap().path();
    pki::trust(&pki_dir, &file).unwrap();
    assert!(!file.exists(), "trusting removes it from rejected/");
    assert!(
        server.wait_ack(1, LONG).await,
        "not connected after trusting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_handshake_each_code_change_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = PlcServer::start(Options::default()).await;
    server.set_code("OLD");
    let mut c = config(&server, dir.path(), "");
    c.handshake = None;
    c.code = Some(format!("nsu={NS};s=Code"));
    c.validate().unwrap();
    let (log, sink, _stop) = start(c);
    // The value at start is a baseline, not an event; wait until subscribed.
    let mut state = sink.device_state();
    tokio::time::timeout(LONG, state.wait_for(|s| *s == DeviceState::Connected))
        .await
        .unwrap()
        .unwrap();
    for n in 1..=5 {
        server.set_code(&format!("C{n}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + LONG;
    while codes(&log).len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(codes(&log), ["C1", "C2", "C3", "C4", "C5"]);
    assert_eq!(log.lock().unwrap()[0].1.attributes["order"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_context_is_written_to_the_hmi_nodes_at_every_session_and_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PlcServer::start(Options::default()).await;
    let extra = format!(
        "[[context_tags]]\nkey = \"work_order\"\nnode = \"nsu={NS};s={}\"\n\n\
         [[context_tags]]\nkey = \"batch\"\nnode = \"nsu={NS};s={}\"\nmax_chars = 6\n",
        HMI_NODES[0], HMI_NODES[1]
    );
    // `extra` goes before [handshake]: context_tags are the source's own tables.
    let config = config(&server, dir.path(), &extra);
    assert_eq!(config.context_tags.len(), 2);
    let (log, sink, _stop) = start(config);
    let feed = sink.context_feed();
    let set = |pairs: &[(&str, &str)]| {
        feed.set(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    set(&[("work_order", "WO-4711"), ("batch", "L-0815-XYZ")]);
    let hmi = [(HMI_NODES[0], "WO-4711"), (HMI_NODES[1], "L-0815")];
    assert!(
        server.wait_hmi(&hmi, LONG).await,
        "the HMI shows {:?}",
        server.hmi()
    );
    // The handshake runs beside it.
    hand_over(&server, 1, 3).await;
    assert_eq!(codes(&log), ["CODE-0001", "CODE-0002", "CODE-0003"]);

    // A change follows; a key MES cleared is cleared on the PLC.
    set(&[("work_order", "WO-4712")]);
    let hmi = [(HMI_NODES[0], "WO-4712"), (HMI_NODES[1], "")];
    assert!(
        server.wait_hmi(&hmi, LONG).await,
        "the HMI shows {:?}",
        server.hmi()
    );

    // The PLC restarts and forgets: the next session writes the context again.
    server.stop().await;
    server.forget_hmi();
    server.restart().await;
    assert!(
        server.wait_hmi(&hmi, LONG).await,
        "after the restart the HMI shows {:?}",
        server.hmi()
    );
}
