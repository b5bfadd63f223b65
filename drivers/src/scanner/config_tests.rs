use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<ScannerConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn problems(text: &str) -> Vec<(String, String)> {
    parse(text)
        .expect("parses")
        .validate()
        .expect_err("has problems")
}

fn keys(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|(key, _)| key).collect()
}

#[test]
fn a_serial_source_gets_every_default() {
    let config = parse("transport = \"serial\"\nport = \"/dev/ttyUSB0\"").unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.transport,
        Transport::Serial(SerialConfig {
            port: "/dev/ttyUSB0".into(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
            reopen_interval: Duration::from_secs(2),
        })
    );
    assert_eq!(config.framing, FramingConfig::default());
    assert_eq!(config.framing.terminator.as_bytes(), b"\r\n");
    assert_eq!(config.framing.noread, ["NOREAD", "ERROR"]);
    assert_eq!(config.dialogue, DialogueConfig::default());
    assert_eq!(config.dialogue.trigger_interval, Duration::from_secs(1));
}

#[test]
fn a_tcp_client_source_with_every_key() {
    let config = parse(
        r#"
        transport = "tcp_client"
        address = "192.168.0.20:23"
        connect_timeout = "3s"
        reconnect_min = "250ms"
        reconnect_max = "1m"
        keepalive = "15s"
        terminator = "\u0004"
        stx_etx = true
        idle_timeout = "200ms"
        max_frame = 512
        noread = ["NOREAD"]
        ignore = ["OK,LON"]
        trigger_command = "LON\r"
        trigger_interval = "500ms"
        accept_reply = "OK\r"
        reject_reply = "NG\r"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.transport,
        Transport::TcpClient(TcpClientConfig {
            address: "192.168.0.20:23".into(),
            connect_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(60),
            keepalive: Duration::from_secs(15),
        })
    );
    assert_eq!(config.framing.terminator, Terminator::Bytes(vec![4]));
    assert!(config.framing.stx_etx);
    assert_eq!(
        config.framing.idle_timeout,
        Some(Duration::from_millis(200))
    );
    assert_eq!(config.framing.max_frame, 512);
    assert_eq!(config.framing.ignore, ["OK,LON"]);
    assert_eq!(config.dialogue.trigger_command.as_deref(), Some("LON\r"));
    assert_eq!(config.dialogue.trigger_interval, Duration::from_millis(500));
    assert_eq!(config.dialogue.accept_reply.as_deref(), Some("OK\r"));
    assert_eq!(config.dialogue.reject_reply.as_deref(), Some("NG\r"));
}

#[test]
fn a_tcp_server_source_gets_its_defaults() {
    let config = parse("transport = \"tcp_server\"\nlisten = \"0.0.0.0:5001\"").unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.transport,
        Transport::TcpServer(TcpServerConfig {
            listen: "0.0.0.0:5001".into(),
            max_connections: 4,
        })
    );
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let err = parse("transport = \"serial\"\nport = \"/dev/ttyS0\"\nbaudrate = 9600").unwrap_err();
    assert!(err.contains("unknown field `baudrate`"), "{err}");
}

#[test]
fn a_key_of_another_transport_is_refused() {
    let err =
        parse("transport = \"tcp_client\"\naddress = \"h:1\"\nport = \"/dev/ttyS0\"").unwrap_err();
    assert!(
        err.contains("`port` is a serial setting and does not apply to transport = \"tcp_client\""),
        "{err}"
    );
    let err =
        parse("transport = \"serial\"\nport = \"/dev/ttyS0\"\nlisten = \"0.0.0.0:1\"").unwrap_err();
    assert!(err.contains("`listen` is a tcp_server setting"), "{err}");
}

#[test]
fn the_transport_and_its_address_are_required() {
    let err = parse("port = \"/dev/ttyS0\"").unwrap_err();
    assert!(err.contains("missing field `transport`"), "{err}");
    let err = parse("transport = \"serial\"").unwrap_err();
    assert!(err.contains("transport = \"serial\" needs `port`"), "{err}");
    let err = parse("transport = \"tcp_client\"").unwrap_err();
    assert!(err.contains("needs `address`"), "{err}");
    let err = parse("transport = \"tcp_server\"").unwrap_err();
    assert!(err.contains("needs `listen`"), "{err}");
    let err = parse("transport = \"usb\"").unwrap_err();
    assert!(err.contains("unknown variant `usb`"), "{err}");
}

#[test]
fn enum_and_duration_typos_are_refused() {
    let err = parse("transport = \"serial\"\nport = \"p\"\nparity = \"mark\"").unwrap_err();
    assert!(err.contains("unknown variant `mark`"), "{err}");
    let err =
        parse("transport = \"serial\"\nport = \"p\"\nreopen_interval = \"2 parsecs\"").unwrap_err();
    assert!(
        err.contains("reopen_interval") || err.contains("unknown time unit"),
        "{err}"
    );
}

#[test]
fn terminator_keywords_and_literals() {
    assert_eq!(Terminator::parse("cr").as_bytes(), b"\r");
    assert_eq!(Terminator::parse("LF").as_bytes(), b"\n");
    assert_eq!(Terminator::parse("CrLf").as_bytes(), b"\r\n");
    assert_eq!(Terminator::parse("none"), Terminator::None);
    assert_eq!(Terminator::parse("\u{4}").as_bytes(), b"\x04");
    assert_eq!(Terminator::parse("#END").as_bytes(), b"#END");
    assert_eq!(Terminator::parse("crlf").to_string(), "crlf");
    assert_eq!(Terminator::parse("\u{4}").to_string(), "\"\\x04\"");
}

#[test]
fn a_non_standard_baud_rate_is_named() {
    let p = problems("transport = \"serial\"\nport = \"/dev/ttyUSB0\"\nbaud = 96000");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "baud");
    assert!(
        p[0].1.starts_with("baud 96000 is not a standard rate"),
        "{}",
        p[0].1
    );
    assert!(p[0].1.contains("9600, "), "{}", p[0].1);
}

#[test]
fn serial_line_settings_out_of_range() {
    let k = keys(
        "transport = \"serial\"\nport = \" \"\ndata_bits = 9\nstop_bits = 3\nreopen_interval = \"0s\"",
    );
    assert_eq!(k, ["port", "data_bits", "stop_bits", "reopen_interval"]);
}

#[test]
fn terminator_none_needs_an_idle_timeout_unless_stx_etx() {
    let base = "transport = \"serial\"\nport = \"p\"\nterminator = \"none\"";
    assert_eq!(keys(base), ["idle_timeout"]);
    parse(&format!("{base}\nidle_timeout = \"200ms\""))
        .unwrap()
        .validate()
        .unwrap();
    parse(&format!("{base}\nstx_etx = true"))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        keys(&format!("{base}\nidle_timeout = \"0s\"")),
        ["idle_timeout"]
    );
    let empty = "transport = \"serial\"\nport = \"p\"\nterminator = \"\"";
    assert_eq!(keys(empty), ["terminator"]);
}

#[test]
fn max_frame_bounds() {
    let base = "transport = \"serial\"\nport = \"p\"\nmax_frame";
    assert_eq!(keys(&format!("{base} = 0")), ["max_frame"]);
    assert_eq!(keys(&format!("{base} = 1048577")), ["max_frame"]);
    parse(&format!("{base} = 1048576"))
        .unwrap()
        .validate()
        .unwrap();
    parse(&format!("{base} = 1")).unwrap().validate().unwrap();
}

#[test]
fn tcp_client_addresses_and_delays() {
    let ok = |address: &str| {
        parse(&format!(
            "transport = \"tcp_client\"\naddress = \"{address}\""
        ))
        .unwrap()
        .validate()
        .is_ok()
    };
    assert!(ok("192.168.0.20:23"));
    assert!(ok("reader-7.line3:9004"));
    assert!(ok("[::1]:23"));
    assert!(!ok("192.168.0.20"));
    assert!(!ok("reader:0"));
    assert!(!ok("reader:telnet"));
    assert!(!ok(":23"));
    assert!(!ok("::1:23"));
    let k = keys(
        "transport = \"tcp_client\"\naddress = \"h:1\"\nconnect_timeout = \"0s\"\n\
         reconnect_min = \"10s\"\nreconnect_max = \"1s\"\nkeepalive = \"500ms\"",
    );
    assert_eq!(k, ["connect_timeout", "reconnect_max", "keepalive"]);
}

#[test]
fn tcp_server_listen_and_limit() {
    let k = keys("transport = \"tcp_server\"\nlisten = \"localhost\"\nmax_connections = 0");
    assert_eq!(k, ["listen", "max_connections"]);
}

#[test]
fn noread_ignore_and_dialogue_strings() {
    let p = problems(
        r#"
        transport = "serial"
        port = "p"
        noread = ["NOREAD", ""]
        ignore = ["NOREAD"]
        trigger_command = ""
        accept_reply = ""
        reject_reply = "NG"
        "#,
    );
    let k: Vec<&str> = p.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        k,
        ["noread[1]", "ignore[0]", "trigger_command", "accept_reply"]
    );
    assert!(p[1].1.contains("also listed in noread"), "{}", p[1].1);
    let k = keys(
        "transport = \"serial\"\nport = \"p\"\ntrigger_command = \"T\"\ntrigger_interval = \"0s\"",
    );
    assert_eq!(k, ["trigger_interval"]);
}

#[test]
fn a_hid_source_by_path_gets_its_defaults() {
    let config =
        parse("transport = \"hid\"\ndevice = \"/dev/input/by-id/usb-S-event-kbd\"").unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.transport,
        Transport::Hid(HidConfig {
            device: HidDevice::Path("/dev/input/by-id/usb-S-event-kbd".into()),
            layout: Layout::Us,
            grab: true,
            reopen_interval: Duration::from_secs(2),
        })
    );
    assert_eq!(config.framing, FramingConfig::default());
}

#[test]
fn a_hid_source_by_ids_and_name_with_every_key() {
    let config = parse(
        r#"
        transport = "hid"
        vendor_id = "05E0"
        product_id = 0x1200
        name = "Symbol"
        layout = "de"
        grab = false
        reopen_interval = "500ms"
        terminator = "cr"
        idle_timeout = "300ms"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.transport,
        Transport::Hid(HidConfig {
            device: HidDevice::Match(HidMatch {
                vendor_id: Some(UsbId(0x05e0)),
                product_id: Some(UsbId(0x1200)),
                name: Some("Symbol".into()),
            }),
            layout: Layout::De,
            grab: false,
            reopen_interval: Duration::from_millis(500),
        })
    );
    let fr = parse("transport = \"hid\"\nname = \"scanner\"\nlayout = \"fr\"").unwrap();
    assert!(matches!(
        fr.transport,
        Transport::Hid(HidConfig {
            layout: Layout::Fr,
            ..
        })
    ));
}

#[test]
fn a_hid_source_names_its_device_exactly_one_way() {
    let err = parse("transport = \"hid\"").unwrap_err();
    assert!(err.contains("transport = \"hid\" needs `device`"), "{err}");
    let err = parse("transport = \"hid\"\ndevice = \"/dev/input/event3\"\nvendor_id = \"05e0\"")
        .unwrap_err();
    assert!(
        err.contains("either `device` or `vendor_id`/`product_id`/`name`, not both"),
        "{err}"
    );
    assert_eq!(
        keys("transport = \"hid\"\nproduct_id = \"1200\""),
        ["product_id"]
    );
    assert_eq!(keys("transport = \"hid\"\nname = \" \""), ["name"]);
    assert_eq!(
        keys("transport = \"hid\"\ndevice = \"\"\nreopen_interval = \"0s\""),
        ["device", "reopen_interval"]
    );
}

#[test]
fn usb_ids_and_layouts_are_checked_where_they_are_written() {
    for bad in ["\"5e0g\"", "\"05e00\"", "\"\"", "\"0x\"", "70000", "-1"] {
        let err = parse(&format!("transport = \"hid\"\nvendor_id = {bad}")).unwrap_err();
        assert!(
            err.contains("is not a USB id") || err.contains("USB id"),
            "{bad}: {err}"
        );
    }
    assert_eq!(UsbId::parse("0x05e0"), Some(UsbId(0x05e0)));
    assert_eq!(UsbId::parse("1"), Some(UsbId(1)));
    assert_eq!(UsbId(0x5e0).to_string(), "05e0");
    let err = parse("transport = \"hid\"\nname = \"s\"\nlayout = \"uk\"").unwrap_err();
    assert!(err.contains("unknown variant `uk`"), "{err}");
}

#[test]
fn hid_and_serial_keys_stay_with_their_transport() {
    let err = parse("transport = \"hid\"\ndevice = \"d\"\nbaud = 9600").unwrap_err();
    assert!(
        err.contains("`baud` is a serial setting and does not apply to transport = \"hid\""),
        "{err}"
    );
    let err = parse("transport = \"serial\"\nport = \"p\"\nlayout = \"de\"").unwrap_err();
    assert!(err.contains("`layout` is a hid setting"), "{err}");
    // reopen_interval belongs to both.
    parse("transport = \"hid\"\ndevice = \"d\"\nreopen_interval = \"1s\"").unwrap();
    let err = parse("transport = \"tcp_server\"\nlisten = \"0.0.0.0:1\"\nreopen_interval = \"1s\"")
        .unwrap_err();
    assert!(
        err.contains("`reopen_interval` is a serial/hid setting"),
        "{err}"
    );
}

#[test]
fn a_keyboard_wedge_takes_no_replies_and_no_trigger() {
    let p = problems(
        r#"
        transport = "hid"
        device = "/dev/input/event3"
        trigger_command = "T"
        accept_reply = "OK"
        reject_reply = "NG"
        "#,
    );
    let k: Vec<&str> = p.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(k, ["trigger_command", "accept_reply", "reject_reply"]);
    assert!(p[1].1.contains("has no back-channel"), "{}", p[1].1);
}
