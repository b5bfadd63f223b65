//! The test as a PLC with an OPC UA server, for the black-box tests: the driver tests' in-process
//! async-opcua server (drivers/src/opcua/tests/kit.rs: the handshake's nodes in namespace
//! [`NS`], restartable on the same port, acks recorded with their time, the HMI's String nodes
//! [`HMI_NODES`] recording the line context the agent writes) on a runtime thread of its own,
//! behind the blocking facade [`OpcuaPlc`].

#[path = "../../drivers/src/opcua/tests/kit.rs"]
#[allow(dead_code)]
mod kit;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use kit::{HMI_NODES, NS, Options, PASSWORD, USER};

/// One OPC UA PLC; its server runs on the runtime owned here.
pub struct OpcuaPlc {
    server: Option<kit::PlcServer>,
    rt: tokio::runtime::Runtime,
}

impl OpcuaPlc {
    /// Starts the server on 127.0.0.1 and a free port.
    pub fn start(options: Options) -> OpcuaPlc {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let server = rt.block_on(kit::PlcServer::start(options));
        OpcuaPlc {
            server: Some(server),
            rt,
        }
    }

    fn s(&self) -> &kit::PlcServer {
        self.server.as_ref().expect("server")
    }

    /// `opc.tcp://127.0.0.1:<port>/`.
    pub fn endpoint(&self) -> String {
        self.s().endpoint()
    }

    /// The server certificate (DER).
    pub fn certificate(&self) -> Vec<u8> {
        self.s().certificate()
    }

    /// Writes code and order `WO-<counter>`, then the counter.
    pub fn present(&self, counter: u32, code: &str) {
        let _guard = self.rt.enter();
        self.s().present(counter, code);
    }

    pub fn ack(&self) -> u32 {
        self.s().ack()
    }

    /// Waits until the ack reaches `n`.
    pub fn wait_ack(&self, n: u32, timeout: Duration) -> bool {
        self.rt.block_on(self.s().wait_ack(n, timeout))
    }

    /// The HMI's String nodes as the agent last wrote them, by node name.
    pub fn hmi(&self) -> BTreeMap<String, String> {
        self.s().hmi()
    }

    /// Waits until the HMI's nodes hold `expected` (node name, value); false after `timeout`.
    pub fn wait_hmi(&self, expected: &[(&str, &str)], timeout: Duration) -> bool {
        self.rt.block_on(self.s().wait_hmi(expected, timeout))
    }

    /// Forgets the HMI's values (a PLC restarted without retentive memory).
    pub fn forget_hmi(&self) {
        self.s().forget_hmi();
    }

    /// Runs `check` on every ack value the agent writes, while the agent waits for the write's
    /// answer: what `check` sees of the agent (its queue file) is what it was when it wrote.
    pub fn on_each_ack(&self, check: impl FnMut(u32) + Send + 'static) {
        *self.s().on_ack.lock().unwrap() = Some(Box::new(check));
    }

    /// Refuses the agent's ack writes (a PLC that does not take them) until called with false.
    pub fn refuse_acks(&self, refuse: bool) {
        self.s()
            .refuse_acks
            .store(refuse, std::sync::atomic::Ordering::Relaxed);
    }

    /// When each ack value was written.
    pub fn ack_times(&self) -> Vec<(Instant, u32)> {
        self.s()
            .writes
            .lock()
            .unwrap()
            .iter()
            .map(|(at, n, _)| (*at, *n))
            .collect()
    }

    /// Stops the server (its connections drop); values are kept.
    pub fn stop(&mut self) {
        let server = self.server.as_mut().expect("server");
        self.rt.block_on(server.stop());
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        let server = self.server.as_mut().expect("server");
        self.rt.block_on(server.restart());
    }
}

impl Drop for OpcuaPlc {
    fn drop(&mut self) {
        let _guard = self.rt.enter();
        drop(self.server.take());
    }
}
