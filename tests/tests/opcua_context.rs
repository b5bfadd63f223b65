//! The line context MES pushes down is written into the OPC UA server's String nodes (so the
//! line's HMI shows the order the agent stamps), at start and whenever it changes — a cleared
//! key clears its node, and a PLC that restarted gets it again. A context tag MES cannot set,
//! or a node that is not a NodeId, is a config error naming the source and the key.

use std::time::Duration;

use tracegate_tests::mqtt::publish_v4;
use tracegate_tests::opcua::{HMI_NODES, NS, OpcuaPlc, Options};
use tracegate_tests::{
    ALL_TOPICS, Agent, CONFIG_FILE, Mosquitto, PREFIX, Subscriber, agent_config, bounded, check,
};

const LONG: Duration = Duration::from_secs(15);

/// An opcua source with the handshake and a context tag per HMI node (work order, batch).
fn source(endpoint: &str, work_order_node: &str) -> String {
    format!(
        r#"[[sources]]
id = "plc1"
type = "opcua"
station = "st40"
endpoint = "{endpoint}"
publishing_interval = "10ms"
sampling_interval = "5ms"
reconnect_min = "50ms"
reconnect_max = "500ms"
request_timeout = "2s"

[sources.handshake]
counter = "nsu={NS};s=Counter"
code = "nsu={NS};s=Code"
ack = "nsu={NS};s=Ack"

[[sources.context_tags]]
key = "work_order"
node = "{work_order_node}"

[[sources.context_tags]]
key = "batch"
node = "nsu={NS};s={batch}"
max_chars = 6
"#,
        batch = HMI_NODES[1]
    )
}

fn line_config(broker_url: &str, source: &str, keys: &str) -> String {
    format!(
        "{}\n[context]\nkeys = {keys}\n",
        agent_config(broker_url, "", source)
    )
}

#[test]
fn mes_context_is_written_to_opcua_nodes_and_follows_every_change() {
    bounded(Duration::from_secs(90), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut plc = OpcuaPlc::start(Options::default());
        let work_order_node = format!("nsu={NS};s={}", HMI_NODES[0]);
        let config = line_config(
            &broker.url(),
            &source(&plc.endpoint(), &work_order_node),
            r#"["work_order", "batch"]"#,
        );
        let agent = Agent::start(&config);
        sub.wait_online(&agent, LONG);
        let topic = format!("{PREFIX}/cmd/context");
        publish_v4(
            broker.port(),
            &topic,
            br#"{"set": {"work_order": "WO-4711", "batch": "L-0815-X"}}"#,
        );
        // The batch node takes 6 characters (max_chars): cut, and said so in the log.
        let expected = [(HMI_NODES[0], "WO-4711"), (HMI_NODES[1], "L-0815")];
        assert!(
            plc.wait_hmi(&expected, LONG),
            "the HMI shows {:?}\n{}",
            plc.hmi(),
            agent.log_tail(20)
        );
        agent.wait_log("was cut to \"L-0815\"", 1, LONG);

        // The second change follows; a removed key is cleared on the PLC.
        publish_v4(
            broker.port(),
            &topic,
            br#"{"set": {"work_order": "WO-4712", "batch": null}}"#,
        );
        let expected = [(HMI_NODES[0], "WO-4712"), (HMI_NODES[1], "")];
        assert!(
            plc.wait_hmi(&expected, LONG),
            "the HMI shows {:?}\n{}",
            plc.hmi(),
            agent.log_tail(20)
        );

        // Codes are handed over beside it, stamped with the same context.
        plc.present(1, "CODE-00001");
        assert!(plc.wait_ack(1, LONG), "{}", agent.log_tail(20));
        assert!(sub.wait_for_seqs(1..=1, LONG));
        let event = &sub.events()[0];
        assert_eq!(event["context"]["work_order"], "WO-4712", "{event}");

        // The PLC restarts and has forgotten the values: the agent writes them again.
        plc.stop();
        plc.forget_hmi();
        plc.restart();
        assert!(
            plc.wait_hmi(&expected, LONG),
            "after the PLC's restart the HMI shows {:?}\n{}",
            plc.hmi(),
            agent.log_tail(20)
        );
    });
}

#[test]
fn a_context_tag_mes_cannot_set_or_a_bad_node_is_a_config_error_naming_source_and_key() {
    let good_node = format!("nsu={NS};s={}", HMI_NODES[0]);
    let endpoint = "opc.tcp://127.0.0.1:4840/";

    // `batch` is not among the context keys MES may set.
    let config = line_config(
        "mqtt://127.0.0.1:1883",
        &source(endpoint, &good_node),
        r#"["work_order"]"#,
    );
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 78, "{stderr}");
    let line = config
        .lines()
        .position(|l| l == r#"key = "batch""#)
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "{CONFIG_FILE}:{line}: sources[0].context_tags[1].key: source `plc1`: context key \
             `batch` is not one MES may set for station st40"
        )),
        "{stderr}"
    );

    // A node that is not a NodeId.
    let config = line_config(
        "mqtt://127.0.0.1:1883",
        &source(endpoint, "DB_Hmi.WorkOrder"),
        r#"["work_order", "batch"]"#,
    );
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(
            "sources[0].context_tags[0].node: source `plc1`: context key `work_order`: \
             \"DB_Hmi.WorkOrder\" is not a NodeId"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
