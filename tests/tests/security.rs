//! Who gets in: mutual TLS to mosquitto with certificates made in the test, the broker's
//! certificate always verified, refused credentials answered with a clear error and no hot
//! reconnect loop, secrets never printed, and a warning for secrets others can read.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use tracegate_tests::tls::make_pki;
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, Subscriber, agent_config, bounded, free_port, wait_until,
};

const SOURCES: &str = "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = 100.0\ncount = 20\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n";

/// A broker with a mutual-TLS listener and a plain one (for the test's subscriber).
fn mtls_broker(pki: &tracegate_tests::tls::Pki, plain: u16) -> Mosquitto {
    Mosquitto::start_secured(&format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\nallow_anonymous false\n\
         listener {plain} 127.0.0.1\nallow_anonymous true\n",
        pki.ca_cert.display(),
        pki.server_cert.display(),
        pki.server_key.display(),
    ))
}

fn tls_config(port: u16, mqtt_extra: &str) -> String {
    agent_config(&format!("mqtts://127.0.0.1:{port}"), "", SOURCES)
        .replace("[mqtt]\n", &format!("[mqtt]\n{mqtt_extra}\n"))
}

#[test]
fn events_reach_the_broker_over_mutual_tls() {
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "line3-gw");
        let plain = free_port();
        let broker = mtls_broker(&pki, plain);
        let sub = Subscriber::connect(plain, ALL_TOPICS);
        let extra = format!(
            "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            pki.ca_cert.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        );
        let agent = Agent::start(&tls_config(broker.port(), &extra));
        assert!(
            sub.wait_for_seqs(1..=20, Duration::from_secs(15)),
            "{}",
            agent.log_tail(20)
        );
        assert!(
            broker.log().contains("line3-gw"),
            "the broker saw our certificate's identity:\n{}",
            broker.log()
        );
    });
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused_with_a_clear_error() {
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "line3-gw");
        let broker = mtls_broker(&pki, free_port());
        let extra = format!(
            "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            pki.other_ca_cert.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        );
        let agent = Agent::start(&tls_config(broker.port(), &extra));
        agent.wait_log("cannot reach the MQTT broker", 1, Duration::from_secs(10));
        let log = agent.stderr_text();
        assert!(
            log.contains("invalid peer certificate") || log.contains("UnknownIssuer"),
            "{log}"
        );
        // Nothing was sent: the scans wait in the queue.
        agent.wait_queue("20 queued", Duration::from_secs(10), |s| s.depth == 20);
    });
}

#[test]
fn without_a_client_certificate_the_broker_does_not_let_the_agent_in() {
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "line3-gw");
        let broker = mtls_broker(&pki, free_port());
        let extra = format!("ca_file = \"{}\"", pki.ca_cert.display());
        let agent = Agent::start(&tls_config(broker.port(), &extra));
        agent.wait_log("cannot reach the MQTT broker", 1, Duration::from_secs(10));
        agent.wait_queue("20 queued", Duration::from_secs(10), |s| s.depth == 20);
        assert!(!agent.stderr_text().contains("connected to the MQTT broker"));
    });
}

#[test]
fn refused_credentials_give_a_clear_error_and_no_hot_reconnect_loop() {
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let passwords = dir.path().join("passwd");
        std::fs::write(&passwords, "").unwrap();
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&passwords)
            .args(["line3", "right-pw"])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "mosquitto_passwd (from the mosquitto package) is needed"
        );
        let broker = Mosquitto::start_secured(&format!(
            "allow_anonymous false\npassword_file {}\n",
            passwords.display()
        ));
        let secret = dir.path().join("mqtt.password");
        std::fs::write(&secret, "wr0ng-s3cret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = agent_config(&broker.url(), "", SOURCES).replace(
            "[mqtt]\n",
            &format!(
                "[mqtt]\nusername = \"line3\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        );
        let config = config.replace("reconnect_max = \"1s\"", "reconnect_max = \"2s\"");
        let agent = Agent::start(&config);
        agent.wait_log(
            "the MQTT broker refused our credentials",
            1,
            Duration::from_secs(10),
        );
        let attempts_before = broker.log().matches("not authorised").count();
        std::thread::sleep(Duration::from_secs(3));
        let attempts = broker.log().matches("not authorised").count() - attempts_before;
        assert!(
            attempts <= 3,
            "{attempts} connection attempts in 3s with reconnect_max = 2s:\n{}",
            broker.log()
        );
        let log = agent.stderr_text();
        assert!(
            log.contains("BadUserNamePassword") || log.contains("NotAuthorized"),
            "{log}"
        );
        assert!(
            !log.contains("wr0ng-s3cret"),
            "the password must never be logged"
        );
        let (_, out, err) = agent.cli(&["check"]);
        assert!(!out.contains("wr0ng-s3cret") && !err.contains("wr0ng-s3cret"));
        assert!(
            !err.contains("mqtt.password_file"),
            "0600 secret: no warning about it: {err}"
        );
        assert!(
            err.contains("the config file") && err.contains("readable by every user"),
            "{err}"
        );
        // The same secret readable by everybody: a warning, the config still valid.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, _, err) = agent.cli(&["check"]);
        assert_eq!(code, 0);
        assert!(
            err.contains("mqtt.password_file") && err.contains("readable by every user"),
            "{err}"
        );
    });
}

#[test]
fn the_broker_is_never_trusted_blindly_even_without_a_ca_file() {
    // No ca_file: the system's trust store, which does not know the test CA.
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path(), "x");
        let broker = Mosquitto::start_secured(&format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\n",
            pki.ca_cert.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        ));
        let agent = Agent::start(&tls_config(broker.port(), ""));
        wait_until(
            "a TLS refusal",
            Duration::from_secs(10),
            || {
                let log = agent.stderr_text();
                log.contains("invalid peer certificate") || log.contains("no CA certificates")
            },
            || agent.log_tail(20),
        );
        assert!(!agent.stderr_text().contains("connected to the MQTT broker"));
    });
}
