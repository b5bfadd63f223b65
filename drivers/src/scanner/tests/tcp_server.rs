//! TCP server transport: the test connects as push-mode readers. The listener is bound by the
//! test on 127.0.0.1:0 and handed to the accept loop, so no port is guessed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::kit::*;
use crate::reading::Sink;
use crate::scanner::pipeline::Context;
use crate::scanner::tcp::serve_listener;
use crate::scanner::{Transport, run};
use crate::shutdown::Shutdown;

/// Starts the accept loop on a fresh listener; the task ends when the test aborts it.
async fn start_server(
    sink: Sink,
    max_connections: usize,
    extra: &str,
) -> (SocketAddr, JoinHandle<()>) {
    let config = config(&format!(
        "transport = \"tcp_server\"\nlisten = \"127.0.0.1:0\"\n\
         max_connections = {max_connections}\n{extra}"
    ));
    let (trigger, stopping) = crate::shutdown::Shutdown::new();
    // Never stopped: the test ends by dropping the task.
    std::mem::forget(trigger);
    let ctx = Arc::new(Context::new(
        "test-scanner".into(),
        sink,
        config.framing,
        config.dialogue,
        stopping,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        tokio::spawn(serve_listener(listener, max_connections, ctx)),
    )
}

async fn connect(addr: SocketAddr) -> TcpStream {
    within("connect", TcpStream::connect(addr)).await.unwrap()
}

#[tokio::test]
async fn two_readers_each_with_their_own_framing_and_replies() {
    let (mut agent, sink) = Agent::new(16);
    let (addr, server) = start_server(sink, 4, "accept_reply = \"ACK\\r\\n\"").await;

    let mut one = connect(addr).await;
    let mut two = connect(addr).await;
    // Reader one leaves a partial code; reader two's code must not be glued to it.
    one.write_all(b"ONE-").await.unwrap();
    two.write_all(b"TWO-1\r\n").await.unwrap();
    let reading = agent.commit_code("TWO-1").await;
    assert_eq!(reading.attributes["reader_addr"], "127.0.0.1");
    assert_eq!(read_exact(&mut two, 5).await, b"ACK\r\n");

    one.write_all(b"1\r\n").await.unwrap();
    agent.commit_code("ONE-1").await;
    assert_eq!(read_exact(&mut one, 5).await, b"ACK\r\n");

    // A reader disconnecting does not take the listener or the other reader down.
    drop(two);
    one.write_all(b"ONE-2\r\n").await.unwrap();
    agent.commit_code("ONE-2").await;
    let mut three = connect(addr).await;
    three.write_all(b"THREE-1\r\n").await.unwrap();
    agent.commit_code("THREE-1").await;
    server.abort();
}

/// True when the server closed `stream` without serving it (EOF or reset).
async fn refused(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        within("the refusal", stream.read(&mut buf)).await,
        Ok(0) | Err(_)
    )
}

#[tokio::test]
async fn max_connections_is_enforced_and_a_freed_slot_is_reused() {
    let (mut agent, sink) = Agent::new(16);
    let (addr, server) = start_server(sink, 2, "").await;

    let mut one = connect(addr).await;
    let _two = connect(addr).await;
    one.write_all(b"ONE\r\n").await.unwrap();
    agent.commit_code("ONE").await;

    let mut third = connect(addr).await;
    let _ = third.write_all(b"THIRD\r\n").await;
    assert!(
        refused(&mut third).await,
        "a third reader is over the limit"
    );

    // Once reader one leaves, a new reader is served. The server notices the departure
    // asynchronously, so a reader that connects in between may still be refused: retry.
    drop(one);
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 50, "no slot was freed");
        let mut next = connect(addr).await;
        next.write_all(b"NEXT\r\n").await.unwrap();
        tokio::select! {
            submission = agent.next() => {
                assert_eq!(submission.reading.kind, code("NEXT"));
                break;
            }
            true = refused(&mut next) => continue,
        }
    }
    assert!(
        agent.rx.try_recv().is_err(),
        "the refused reader's code never arrives"
    );
    server.abort();
}

#[tokio::test]
async fn run_with_tcp_server_binds_and_stops_on_shutdown() {
    let (mut agent, sink) = Agent::new(16);
    let config = config("transport = \"tcp_server\"\nlisten = \"127.0.0.1:0\"");
    assert!(matches!(config.transport, Transport::TcpServer(_)));
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(run(config, "test-scanner".into(), sink, shutdown));
    trigger.trigger();
    within("run to return", task).await.unwrap();
    assert!(
        agent.rx.recv().await.is_none(),
        "the sink was dropped with the driver"
    );
}

#[tokio::test]
async fn a_reader_hanging_up_ends_its_last_frame() {
    let (mut agent, sink) = Agent::new(16);
    let (addr, server) = start_server(sink, 4, "").await;
    let mut reader = connect(addr).await;
    reader.write_all(b"FIRST\r\nNO-SUFFIX").await.unwrap();
    drop(reader);
    agent.commit_code("FIRST").await;
    agent.commit_code("NO-SUFFIX").await;
    server.abort();
}

#[tokio::test]
async fn outstanding_verdicts_are_bounded_per_connection() {
    use crate::scanner::pipeline::MAX_OUTSTANDING;
    use std::time::Duration;

    let (mut agent, sink) = Agent::new(1000);
    let (addr, server) = start_server(sink, 1, "").await;
    let mut reader = connect(addr).await;
    let codes: String = (0..MAX_OUTSTANDING + 50)
        .map(|i| format!("C{i:04}\r\n"))
        .collect();
    reader.write_all(codes.as_bytes()).await.unwrap();

    // One verdict being awaited, MAX_OUTSTANDING queued, one submitted ticket waiting for room.
    let mut unanswered = Vec::new();
    for i in 0..MAX_OUTSTANDING + 2 {
        let submission = agent.next().await;
        assert_eq!(submission.reading.kind, code(&format!("C{i:04}")));
        unanswered.push(submission);
    }
    let more = tokio::time::timeout(Duration::from_millis(300), agent.rx.recv()).await;
    assert!(
        more.is_err(),
        "reading stops while verdicts are outstanding"
    );

    // Answering the oldest makes room for exactly one more reading.
    let first = unanswered.remove(0);
    first.reply.send(valid(1)).unwrap();
    let next = agent.next().await;
    assert_eq!(
        next.reading.kind,
        code(&format!("C{:04}", MAX_OUTSTANDING + 2))
    );
    server.abort();
}
