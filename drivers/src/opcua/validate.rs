//! Semantic checks of an [`OpcuaConfig`], run once at start-up. Each problem names its key
//! relative to the source's table (`security_mode`, `handshake.ack`, `context[1].node`).

use std::collections::HashSet;
use std::time::Duration;

use super::config::*;
use super::nodeid::NodeRef;

/// Collects `(key, message)` problems.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn check(&mut self, ok: bool, key: impl Into<String>, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push((key.into(), message()));
        }
    }

    fn node(&mut self, key: &str, text: &str) {
        if let Err(e) = text.parse::<NodeRef>() {
            self.0.push((key.to_string(), format!("{key}: {e}")));
        }
    }

    fn positive(&mut self, value: Duration, key: &str, why: &str) {
        self.check(!value.is_zero(), key, || {
            format!("{key} must be longer than 0s {why}")
        });
    }
}

impl OpcuaConfig {
    /// Checks what serde cannot. Returns every problem found as `(key, sentence)`.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut p = Problems::default();
        let url_ok = self
            .endpoint
            .strip_prefix("opc.tcp://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        p.check(url_ok, "endpoint", || {
            format!(
                "endpoint {:?} is not an OPC UA TCP URL; write it like opc.tcp://192.168.0.10:4840",
                self.endpoint
            )
        });
        let (policy, mode) = (self.security_policy, self.mode());
        p.check(
            (policy == Policy::None) == (mode == Mode::None),
            "security_mode",
            || match policy {
                Policy::None => format!(
                    "security_mode {mode:?} needs a security_policy (Basic256Sha256, \
                     Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss); policy None cannot sign"
                ),
                _ => format!(
                    "security_mode None with security_policy {} does not secure anything; use \
                     Sign or SignAndEncrypt, or security_policy = \"None\"",
                    policy.name()
                ),
            },
        );
        match self.identity {
            Identity::Anonymous => {}
            Identity::Username => {
                p.check(
                    self.username.as_deref().is_some_and(|u| !u.is_empty()),
                    "username",
                    || "identity = \"username\" needs `username`".into(),
                );
                p.check(self.password_file.is_some(), "password_file", || {
                    "identity = \"username\" needs `password_file`, the file holding the password"
                        .into()
                });
            }
            Identity::X509 => {
                p.check(self.user_certificate.is_some(), "user_certificate", || {
                    "identity = \"x509\" needs `user_certificate` (DER or PEM)".into()
                });
                p.check(self.user_private_key.is_some(), "user_private_key", || {
                    "identity = \"x509\" needs `user_private_key` (PEM)".into()
                });
            }
        }
        for (key, set, wants) in [
            ("username", self.username.is_some(), Identity::Username),
            (
                "password_file",
                self.password_file.is_some(),
                Identity::Username,
            ),
            (
                "user_certificate",
                self.user_certificate.is_some(),
                Identity::X509,
            ),
            (
                "user_private_key",
                self.user_private_key.is_some(),
                Identity::X509,
            ),
        ] {
            p.check(!set || self.identity == wants, key, || {
                format!(
                    "{key} applies only to identity = \"{}\" (identity is \"{}\")",
                    identity_name(wants),
                    identity_name(self.identity)
                )
            });
        }
        p.positive(
            self.publishing_interval,
            "publishing_interval",
            "or the server publishes in a busy loop",
        );
        p.positive(
            self.request_timeout,
            "request_timeout",
            "or no reply can arrive in time",
        );
        p.positive(
            self.session_timeout,
            "session_timeout",
            "or every session expires at once",
        );
        p.positive(
            self.reconnect_min,
            "reconnect_min",
            "so that reconnecting is not a busy loop",
        );
        p.check(
            self.reconnect_min <= self.reconnect_max,
            "reconnect_max",
            || {
                format!(
                    "reconnect_max ({}) is shorter than reconnect_min ({})",
                    humantime::format_duration(self.reconnect_max),
                    humantime::format_duration(self.reconnect_min)
                )
            },
        );
        p.check(self.queue_size >= 1, "queue_size", || {
            "queue_size must be at least 1".into()
        });
        match (&self.code, &self.handshake) {
            (Some(code), None) => p.node("code", code),
            (None, Some(h)) => {
                p.node("handshake.counter", &h.counter);
                p.node("handshake.code", &h.code);
                p.node("handshake.ack", &h.ack);
                if let Some(r) = &h.result {
                    p.node("handshake.result", r);
                    p.check(r != &h.ack, "handshake.result", || {
                        format!("result and ack are both {r}; they need a node each")
                    });
                }
                p.check(
                    h.ack != h.counter && h.ack != h.code,
                    "handshake.ack",
                    || {
                        format!(
                            "ack {} is also the counter or the code node, which the PLC writes",
                            h.ack
                        )
                    },
                );
                p.check(h.accepted != h.rejected, "handshake.rejected", || {
                    format!(
                        "rejected = accepted = {}; the PLC could not tell them apart",
                        h.accepted
                    )
                });
            }
            (Some(_), Some(_)) => p.0.push((
                "code".into(),
                "give either `code` (an event per data change) or [sources.handshake], not both"
                    .into(),
            )),
            (None, None) => p.0.push((
                "handshake".into(),
                "an opcua source needs `code` (an event per data change) or \
                 [sources.handshake] (counter, code and ack nodes)"
                    .into(),
            )),
        }
        let mut names = HashSet::new();
        for (i, c) in self.context.iter().enumerate() {
            p.node(&format!("context[{i}].node"), &c.node);
            p.check(
                !c.name.trim().is_empty(),
                format!("context[{i}].name"),
                || format!("context[{i}].name is empty; name the attribute (order, batch, …)"),
            );
            p.check(
                names.insert(c.name.as_str()),
                format!("context[{i}].name"),
                || format!("context node name {:?} is used twice", c.name),
            );
        }
        super::context::validate(&self.context_tags, &mut p.0);
        // The nodes the PLC writes (and the agent's ack) are not the HMI's.
        let plc_nodes: Vec<(&str, &String)> = match &self.handshake {
            Some(h) => [
                ("handshake.counter", Some(&h.counter)),
                ("handshake.code", Some(&h.code)),
                ("handshake.ack", Some(&h.ack)),
                ("handshake.result", h.result.as_ref()),
            ]
            .into_iter()
            .filter_map(|(k, n)| Some((k, n?)))
            .collect(),
            None => self.code.iter().map(|c| ("code", c)).collect(),
        };
        for (i, t) in self.context_tags.iter().enumerate() {
            if let Some((key, _)) = plc_nodes.iter().find(|(_, n)| **n == t.node) {
                p.0.push((
                    format!("context_tags[{i}].node"),
                    format!(
                        "context key `{}`: node {} is also {key}; the line context needs a \
                         node of its own",
                        t.key, t.node
                    ),
                ));
            }
        }
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }
}

fn identity_name(i: Identity) -> &'static str {
    match i {
        Identity::Anonymous => "anonymous",
        Identity::Username => "username",
        Identity::X509 => "x509",
    }
}
