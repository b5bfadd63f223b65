//! TCP client transport: the test plays a reader in server mode on 127.0.0.1:0.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::kit::*;
use crate::reading::ReadingKind;

async fn reader_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn client_config(addr: SocketAddr, extra: &str) -> crate::scanner::ScannerConfig {
    config(&format!(
        "transport = \"tcp_client\"\naddress = \"{addr}\"\nreconnect_min = \"10ms\"\n\
         reconnect_max = \"200ms\"\nkeepalive = \"1s\"\n{extra}"
    ))
}

async fn accept(listener: &TcpListener) -> TcpStream {
    within("the driver to connect", listener.accept())
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn codes_arrive_and_the_driver_reconnects_after_the_reader_drops_it() {
    let (listener, addr) = reader_listener().await;
    let (mut agent, sink) = Agent::new(16);
    let driver = Driver::start(client_config(addr, "accept_reply = \"OK\\r\""), sink);

    let mut reader = accept(&listener).await;
    reader.write_all(b"CODE").await.unwrap();
    reader.write_all(b"-1\r\nCODE-2\r").await.unwrap();
    reader.write_all(b"\n").await.unwrap();
    agent.commit_code("CODE-1").await;
    agent.commit_code("CODE-2").await;
    assert_eq!(read_exact(&mut reader, 6).await, b"OK\rOK\r");

    // The reader drops the connection; the driver comes back on its own.
    drop(reader);
    let mut reader = accept(&listener).await;
    reader.write_all(b"CODE-3\r\n").await.unwrap();
    agent.commit_code("CODE-3").await;
    assert_eq!(read_exact(&mut reader, 3).await, b"OK\r");
    driver.stop().await;
}

#[tokio::test]
async fn trigger_command_is_sent_periodically_and_its_reply_ignored() {
    let (listener, addr) = reader_listener().await;
    let (mut agent, sink) = Agent::new(16);
    let extra = "terminator = \"cr\"\ntrigger_command = \"LON\\r\"\ntrigger_interval = \"20ms\"\n\
                 ignore = [\"OK,LON\"]";
    let driver = Driver::start(client_config(addr, extra), sink);

    let mut reader = accept(&listener).await;
    // Sent on connect and then every 20ms.
    assert_eq!(read_exact(&mut reader, 12).await, b"LON\rLON\rLON\r");
    // The reader answers the command, then reads a code: only the code is a reading.
    reader.write_all(b"OK,LON\rCODE-7\r").await.unwrap();
    agent.commit_code("CODE-7").await;
    driver.stop().await;
}

#[tokio::test]
async fn noread_strings_and_overlong_frames() {
    let (listener, addr) = reader_listener().await;
    let (mut agent, sink) = Agent::new(16);
    let extra = "max_frame = 10\nnoread = [\"NOREAD\", \"ERROR\", \"NG-READ\"]";
    let driver = Driver::start(client_config(addr, extra), sink);

    let mut reader = accept(&listener).await;
    reader
        .write_all(b"ERROR\r\nNG-READ\r\nTHIS-IS-FAR-TOO-LONG\r\nSHORT\r\n")
        .await
        .unwrap();
    agent.expect(ReadingKind::NoRead).await;
    agent.expect(ReadingKind::NoRead).await;
    agent
        .expect(ReadingKind::Malformed {
            bytes: b"THIS-IS-FA".to_vec(),
            reason: "frame longer than 10 bytes".into(),
        })
        .await;
    agent.commit_code("SHORT").await;
    driver.stop().await;
}

#[tokio::test]
async fn stx_etx_frames_over_tcp() {
    let (listener, addr) = reader_listener().await;
    let (mut agent, sink) = Agent::new(16);
    let driver = Driver::start(client_config(addr, "stx_etx = true"), sink);

    let mut reader = accept(&listener).await;
    reader
        .write_all(b"\x02]d2010950600013435217261231\x03\r\nstray\x02")
        .await
        .unwrap();
    reader.write_all(b"SECOND\x03").await.unwrap();
    agent.commit_code("]d2010950600013435217261231").await;
    agent.commit_code("SECOND").await;
    driver.stop().await;
}

#[tokio::test]
async fn shutdown_closes_the_connection() {
    let (listener, addr) = reader_listener().await;
    let (_agent, sink) = Agent::new(16);
    let driver = Driver::start(client_config(addr, ""), sink);
    let mut reader = accept(&listener).await;
    driver.stop().await;
    let mut buf = [0u8; 1];
    let read = within("EOF", tokio::io::AsyncReadExt::read(&mut reader, &mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn the_driver_stops_when_the_agent_stops_taking_readings() {
    let (listener, addr) = reader_listener().await;
    let (agent, sink) = Agent::new(16);
    let driver = Driver::start(client_config(addr, ""), sink);
    let _reader = accept(&listener).await;
    drop(agent);
    within("run to return", driver.task).await.unwrap();
}
