//! I/O tests of the modbus driver against an in-process PLC: tokio-modbus servers over TCP on
//! 127.0.0.1:0 and over a pseudo-terminal pair (RTU).

mod kit;
mod polled;
mod rtu;
mod tcp;
