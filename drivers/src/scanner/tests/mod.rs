//! I/O tests of the scanner driver against real peers: a pseudo-terminal pair for serial,
//! TCP sockets on 127.0.0.1:0 for the TCP transports.

mod kit;
mod serial;
mod tcp_client;
mod tcp_server;
