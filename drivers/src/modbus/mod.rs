//! Modbus driver: PLCs over Modbus TCP and RTU, with the code handshake.

pub mod address;
pub mod codec;
pub mod config;
pub mod handshake;
pub mod plan;
mod raw;
pub mod trigger;
mod validate;

pub use config::{HandshakeConfig, ModbusConfig, RtuConfig, TagConfig, TcpConfig, Transport};
