//! The driver against an in-process async-opcua server (kit.rs), with a test channel standing
//! in for the agent.

mod kit;
mod source;
