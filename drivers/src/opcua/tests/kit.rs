//! The test as a PLC with an OPC UA server: an in-process async-opcua server on 127.0.0.1 with
//! the handshake's nodes in namespace [`NS`] (`Code` String, `Counter` UInt32, `Ack` UInt32,
//! `Result` Int16, `Order` String), stoppable and restartable on the same port with the same
//! certificate and the same node values. Acks are recorded as the client writes them; a test can
//! look at the world as each ack is written, or have the server refuse them.
//!
//! The HMI's String nodes [`HMI_NODES`] take the line context the agent writes; a write of
//! anything but a String is refused (BadTypeMismatch), as a PLC's String tag does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::VariableBuilder;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{SimpleNodeManager, simple_node_manager};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerBuilder, ServerEndpoint, ServerUserToken};
use opcua::types::{
    DataTypeId, DataValue, MessageSecurityMode, NodeId, QualifiedName, StatusCode, Variant,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const NS: &str = "urn:tracegate:test-plc";
pub const USER: &str = "operator";
pub const PASSWORD: &str = "s3cret-pass";
/// The String nodes the HMI shows the line context from (written by the agent).
pub const HMI_NODES: [&str; 2] = ["HmiOrder", "HmiBatch"];

/// How the server is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Offer only Basic256Sha256/SignAndEncrypt with user name/password (no None endpoint).
    pub secure: bool,
}

/// Node values that survive a restart.
#[derive(Debug, Default, Clone)]
struct Values {
    code: String,
    counter: u32,
    order: String,
}

/// An ack the client wrote: when, the value, and the result node's value at that moment.
pub type AckWrite = (Instant, u32, Option<i16>);

/// Called with each ack value inside the server's write handler, before the write is answered:
/// the client is still waiting, so what the hook observes is the state the client wrote in.
pub type AckHook = Box<dyn FnMut(u32) + Send>;

pub struct PlcServer {
    pub port: u16,
    pub options: Options,
    pki: Arc<tempfile::TempDir>,
    values: Arc<Mutex<Values>>,
    /// The last ack written (the server answers reads of Ack from it).
    acks: watch::Sender<u32>,
    /// Every (ack, result) write, with its time.
    pub writes: Arc<Mutex<Vec<AckWrite>>>,
    /// Runs on every ack write the server takes.
    pub on_ack: Arc<Mutex<Option<AckHook>>>,
    /// While set, ack writes are refused (BadOutOfService) and not recorded: a PLC that does
    /// not take the ack, so the client stays between its commit and its ack.
    pub refuse_acks: Arc<AtomicBool>,
    result: Arc<Mutex<i16>>,
    /// The values of [`HMI_NODES`], by node name, as last written.
    hmi: watch::Sender<BTreeMap<String, String>>,
    running: Option<Running>,
}

struct Running {
    handle: opcua::server::ServerHandle,
    task: tokio::task::JoinHandle<()>,
    manager: Arc<SimpleNodeManager>,
    ns: u16,
}

fn id(ns: u16, name: &str) -> NodeId {
    NodeId::new(ns, name)
}

impl PlcServer {
    pub async fn start(options: Options) -> PlcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = PlcServer {
            port,
            options,
            pki: Arc::new(tempfile::tempdir().unwrap()),
            values: Arc::default(),
            acks: watch::channel(0).0,
            writes: Arc::default(),
            on_ack: Arc::default(),
            refuse_acks: Arc::default(),
            result: Arc::default(),
            hmi: watch::channel(BTreeMap::new()).0,
            running: None,
        };
        s.run(listener);
        s
    }

    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.port)
    }

    /// The server's own certificate (DER), as the client receives it.
    pub fn certificate(&self) -> Vec<u8> {
        std::fs::read(self.pki.path().join("own/cert.der")).unwrap()
    }

    fn run(&mut self, listener: TcpListener) {
        let url = self.endpoint();
        let mut b = ServerBuilder::new()
            .application_name("tracegate test PLC")
            .application_uri("urn:tracegate:test-plc-server")
            .product_uri("urn:tracegate:test")
            .host("127.0.0.1")
            .port(self.port)
            .pki_dir(self.pki.path())
            .create_sample_keypair(true)
            .trust_client_certs(true)
            .discovery_urls(vec![url])
            .add_user_token(USER, ServerUserToken::user_pass(USER, PASSWORD))
            .with_node_manager(simple_node_manager(
                NamespaceMetadata {
                    namespace_uri: NS.to_string(),
                    ..Default::default()
                },
                "plc",
            ));
        b.limits_mut().subscriptions.min_sampling_interval_ms = 5.0;
        b.limits_mut().subscriptions.min_publishing_interval_ms = 5.0;
        let tokens: Vec<String> = vec![ANONYMOUS_USER_TOKEN_ID.to_string(), USER.to_string()];
        b = if self.options.secure {
            b.add_endpoint(
                "secure",
                ServerEndpoint::new(
                    "/",
                    SecurityPolicy::Basic256Sha256,
                    MessageSecurityMode::SignAndEncrypt,
                    &[USER.to_string()],
                ),
            )
        } else {
            b.add_endpoint("none", ServerEndpoint::new_none("/", &tokens))
        };
        let (server, handle) = b.subscription_poll_interval_ms(5).build().unwrap();
        let manager = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .unwrap();
        let ns = handle.get_namespace_index(NS).unwrap();
        let v = self.values.lock().unwrap().clone();
        {
            let mut space = manager.address_space().write();
            let folder = NodeId::objects_folder_id();
            let mut add = |name: &str, ty: DataTypeId, value: Variant| {
                assert!(
                    VariableBuilder::new(&id(ns, name), QualifiedName::new(ns, name), name)
                        .data_type(ty)
                        .value(value)
                        .writable()
                        .organized_by(folder.clone())
                        .insert(&mut *space)
                );
            };
            add("Code", DataTypeId::String, v.code.into());
            add("Counter", DataTypeId::UInt32, v.counter.into());
            add("Ack", DataTypeId::UInt32, (*self.acks.borrow()).into());
            add(
                "Result",
                DataTypeId::Int16,
                (*self.result.lock().unwrap()).into(),
            );
            add("Order", DataTypeId::String, v.order.into());
            for name in HMI_NODES {
                add(name, DataTypeId::String, "".into());
            }
        }
        let inner = manager.inner();
        let acks = self.acks.clone();
        let writes = self.writes.clone();
        let result = self.result.clone();
        let on_ack = self.on_ack.clone();
        let refuse = self.refuse_acks.clone();
        inner.add_write_callback(id(ns, "Ack"), move |dv: DataValue, _| {
            let Some(Variant::UInt32(n)) = dv.value else {
                return StatusCode::BadTypeMismatch;
            };
            if refuse.load(Ordering::Relaxed) {
                return StatusCode::BadOutOfService;
            }
            let at = Instant::now();
            if let Some(hook) = on_ack.lock().unwrap().as_mut() {
                hook(n);
            }
            let r = *result.lock().unwrap();
            writes.lock().unwrap().push((at, n, Some(r)));
            acks.send_replace(n);
            StatusCode::Good
        });
        let acks = self.acks.subscribe();
        inner.add_read_callback(id(ns, "Ack"), move |_, _, _| {
            Ok(DataValue::new_now(*acks.borrow()))
        });
        let result = self.result.clone();
        inner.add_write_callback(id(ns, "Result"), move |dv: DataValue, _| {
            let Some(Variant::Int16(n)) = dv.value else {
                return StatusCode::BadTypeMismatch;
            };
            *result.lock().unwrap() = n;
            StatusCode::Good
        });
        let result = self.result.clone();
        inner.add_read_callback(id(ns, "Result"), move |_, _, _| {
            Ok(DataValue::new_now(*result.lock().unwrap()))
        });
        for name in HMI_NODES {
            let hmi = self.hmi.clone();
            inner.add_write_callback(id(ns, name), move |dv: DataValue, _| {
                let Some(Variant::String(text)) = dv.value else {
                    return StatusCode::BadTypeMismatch;
                };
                let text = text.value().clone().unwrap_or_default();
                hmi.send_modify(|m| {
                    m.insert(name.to_string(), text);
                });
                StatusCode::Good
            });
            let hmi = self.hmi.subscribe();
            inner.add_read_callback(id(ns, name), move |_, _, _| {
                let text = hmi.borrow().get(name).cloned().unwrap_or_default();
                Ok(DataValue::new_now(text))
            });
        }
        let task = tokio::spawn(async move {
            let _ = server.run_with(listener).await;
        });
        self.running = Some(Running {
            handle,
            task,
            manager,
            ns,
        });
    }

    /// Writes the code and the order, then the counter (the PLC's side of the handshake).
    pub fn present(&self, counter: u32, code: &str) {
        let mut v = self.values.lock().unwrap();
        v.code = code.to_string();
        v.counter = counter;
        v.order = format!("WO-{counter}");
        if let Some(r) = &self.running {
            let subs = r.handle.subscriptions();
            let set = |name: &str, value: Variant| {
                r.manager
                    .set_value(subs, &id(r.ns, name), None, DataValue::new_now(value))
                    .unwrap();
            };
            set("Code", code.into());
            set("Order", v.order.clone().into());
            set("Counter", counter.into());
        }
    }

    /// Writes the code node alone (the code-per-data-change mode).
    pub fn set_code(&self, code: &str) {
        self.values.lock().unwrap().code = code.to_string();
        if let Some(r) = &self.running {
            r.manager
                .set_value(
                    r.handle.subscriptions(),
                    &id(r.ns, "Code"),
                    None,
                    DataValue::new_now(Variant::from(code)),
                )
                .unwrap();
        }
    }

    pub fn ack(&self) -> u32 {
        *self.acks.borrow()
    }

    /// The values of the HMI's nodes, by node name (a node never written is absent).
    pub fn hmi(&self) -> BTreeMap<String, String> {
        self.hmi.borrow().clone()
    }

    /// Waits until the HMI's nodes hold `expected` (node name, value); false after `timeout`.
    pub async fn wait_hmi(&self, expected: &[(&str, &str)], timeout: Duration) -> bool {
        let mut rx = self.hmi.subscribe();
        let holds = |m: &BTreeMap<String, String>| {
            expected
                .iter()
                .all(|(k, v)| m.get(*k).map(String::as_str) == Some(*v))
        };
        tokio::time::timeout(timeout, rx.wait_for(holds))
            .await
            .is_ok()
    }

    /// Forgets what the HMI's nodes hold (a PLC that restarted without retentive memory).
    pub fn forget_hmi(&self) {
        self.hmi.send_replace(BTreeMap::new());
    }

    /// Waits until the ack reaches `n`.
    pub async fn wait_ack(&self, n: u32, timeout: Duration) -> bool {
        let mut rx = self.acks.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a == n))
            .await
            .is_ok()
    }

    /// Stops the server (connections drop) without forgetting its values.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.handle.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot bind port {} again: {e}", self.port),
            }
        };
        self.run(listener);
    }
}

impl Drop for PlcServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.handle.cancel();
            r.task.abort();
        }
    }
}
