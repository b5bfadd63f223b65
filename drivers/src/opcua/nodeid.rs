//! NodeIds as written in the config, pure: the standard string form (OPC UA Part 6, 5.3.1.10)
//! `ns=<index>;<i|s|g|b>=<id>` and the namespace-URI form `nsu=<uri>;<i|s|g|b>=<id>`.
//!
//! Namespace indexes belong to one server configuration: an S7-1500 puts its PLC tags at index
//! 3 today and at 4 after a server-interface change. `nsu=` names the namespace by URI and is
//! resolved against the server's `NamespaceArray` at every connect.

use std::fmt;
use std::str::FromStr;

use opcua::types::{Identifier, NodeId};

/// Which namespace a node is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// `ns=<index>` (or none: 0).
    Index(u16),
    /// `nsu=<uri>`, looked up at connect.
    Uri(String),
}

/// A NodeId as configured, before its namespace is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRef {
    pub namespace: Namespace,
    pub identifier: Identifier,
}

impl FromStr for NodeRef {
    type Err = String;

    fn from_str(text: &str) -> Result<NodeRef, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not a NodeId ({why}); write it like ns=3;s=\"DB_Trace\".\"Code\", \
                 ns=2;i=1001 or nsu=http://www.siemens.com/simatic-s7-opcua;s=\"DB_Trace\".\"Code\""
            )
        };
        let (namespace, rest) = if let Some(rest) = text.strip_prefix("nsu=") {
            // The URI ends at the `;` that starts the identifier.
            let at = [";i=", ";s=", ";g=", ";b="]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .ok_or_else(|| bad("nsu= needs ;i=, ;s=, ;g= or ;b= after the URI"))?;
            let uri = &rest[..at];
            if uri.is_empty() {
                return Err(bad("the namespace URI is empty"));
            }
            (Namespace::Uri(uri.to_string()), &rest[at + 1..])
        } else if let Some(rest) = text.strip_prefix("ns=") {
            let (index, id) = rest
                .split_once(';')
                .ok_or_else(|| bad("ns=<index> needs ;i=, ;s=, ;g= or ;b= after it"))?;
            let index = index
                .parse::<u16>()
                .map_err(|_| bad("the namespace index must be a number 0 to 65535"))?;
            (Namespace::Index(index), id)
        } else {
            (Namespace::Index(0), text)
        };
        if rest.len() < 3 || !matches!(&rest[..2], "i=" | "s=" | "g=" | "b=") {
            return Err(bad("the identifier must start with i=, s=, g= or b="));
        }
        let identifier = Identifier::from_str(rest).map_err(|_| {
            bad(match &rest[..1] {
                "i" => "i= takes a number 0 to 4294967295",
                "g" => "g= takes a GUID like 09087e75-8e5e-499b-954f-f2a9603db28a",
                "b" => "b= takes base64",
                _ => "the identifier is empty",
            })
        })?;
        Ok(NodeRef {
            namespace,
            identifier,
        })
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Namespace::Index(0) => write!(f, "{}", self.identifier),
            Namespace::Index(i) => write!(f, "ns={i};{}", self.identifier),
            Namespace::Uri(u) => write!(f, "nsu={u};{}", self.identifier),
        }
    }
}

impl NodeRef {
    /// The NodeId on a server whose `NamespaceArray` is `namespaces`.
    pub fn resolve(&self, namespaces: &[String]) -> Result<NodeId, String> {
        let index = match &self.namespace {
            Namespace::Index(i) => *i,
            Namespace::Uri(uri) => namespaces
                .iter()
                .position(|n| n == uri)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| {
                    format!(
                        "the server has no namespace {uri:?} (its namespaces: {})",
                        namespaces
                            .iter()
                            .enumerate()
                            .map(|(i, n)| format!("{i} = {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
        };
        Ok(NodeId::new(index, self.identifier.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> NodeRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn standard_forms_parse_and_print_back() {
        for s in [
            "ns=3;s=\"DB_Trace\".\"Code\"",
            "ns=2;i=1001",
            "i=2255",
            "ns=4;s=|var|CODESYS Control.Application.GVL.sCode",
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            "nsu=http://www.siemens.com/simatic-s7-opcua;s=\"DB_Trace\".\"Code\"",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
        let n = parse("ns=3;s=\"DB_Trace\".\"Code\"");
        assert_eq!(n.namespace, Namespace::Index(3));
        assert_eq!(
            n.identifier,
            Identifier::String("\"DB_Trace\".\"Code\"".into())
        );
        assert_eq!(parse("ns=2;i=1001").identifier, Identifier::Numeric(1001));
    }

    #[test]
    fn a_string_identifier_may_contain_semicolons_and_equals() {
        let n = parse("nsu=urn:x;s=a;b=c");
        assert_eq!(n.namespace, Namespace::Uri("urn:x".into()));
        assert_eq!(n.identifier, Identifier::String("a;b=c".into()));
    }

    #[test]
    fn namespace_uris_resolve_against_the_servers_namespace_array() {
        let ns: Vec<String> = [
            "http://opcfoundation.org/UA/",
            "urn:SIMATIC.S7-1500.OPC-UA.Application:PLC_1",
            "http://www.siemens.com/simatic-s7-opcua",
        ]
        .map(String::from)
        .into();
        let n = parse("nsu=http://www.siemens.com/simatic-s7-opcua;s=\"DB_Trace\".\"Code\"");
        assert_eq!(
            n.resolve(&ns).unwrap(),
            NodeId::new(2, "\"DB_Trace\".\"Code\"")
        );
        // The same server after a configuration change: the index moved, the URI did not.
        let mut moved = ns.clone();
        moved.insert(1, "urn:other".into());
        assert_eq!(
            n.resolve(&moved).unwrap(),
            NodeId::new(3, "\"DB_Trace\".\"Code\"")
        );
        let e = parse("nsu=urn:missing;i=1").resolve(&ns).unwrap_err();
        assert!(
            e.contains("no namespace \"urn:missing\"") && e.contains("2 = http://www.siemens.com"),
            "{e}"
        );
        assert_eq!(
            parse("ns=7;i=1").resolve(&ns).unwrap(),
            NodeId::new(7, 1u32)
        );
    }

    #[test]
    fn malformed_node_ids_are_refused_with_a_hint() {
        for (s, why) in [
            ("", "must start with i="),
            ("ns=x;i=1", "namespace index must be a number"),
            ("ns=70000;i=1", "namespace index must be a number"),
            ("ns=3", "needs ;i="),
            ("ns=2;i=abc", "i= takes a number"),
            ("ns=2;x=1", "must start with i="),
            ("nsu=urn:x", "nsu= needs"),
            ("nsu=;s=a", "URI is empty"),
            ("ns=2;s=", "must start with"),
            ("\"DB_Trace\".\"Code\"", "must start with i="),
        ] {
            let e = s.parse::<NodeRef>().unwrap_err();
            assert!(e.contains(why) && e.contains("write it like"), "{s}: {e}");
        }
    }
}
