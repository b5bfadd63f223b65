//! I/O tests of the scanner driver against real peers: a pseudo-terminal pair for serial,
//! TCP sockets on 127.0.0.1:0 for the TCP transports, a FIFO of key events and (where the
//! machine has /dev/uinput) a virtual keyboard for HID.

mod hid;
mod hid_uinput;
mod kit;
mod serial;
mod tcp_client;
mod tcp_server;
