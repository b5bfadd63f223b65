//! The line context written into the PLC's String nodes: the I/O side of [`super::context`].

use opcua::client::Session;
use opcua::types::{AttributeId, DataValue, NodeId, StatusCode, Variant, WriteValue};
use tracing::{debug, error, warn};

use super::context::{self, ContextTagConfig};
use crate::reading::LineContext;

/// Writes `line` into the context tags' nodes (`nodes`, resolved from `tags`, in the same
/// order) in one Write request.
///
/// A node the server refuses (not a String, not writable, unknown) is logged as an error
/// naming the context key and the node; writing it again would not help, so it is not retried
/// until the context changes or the session starts again. `Err` means the request itself
/// failed (connection lost, timeout): worth retrying.
pub(crate) async fn write(
    session: &Session,
    source: &str,
    tags: &[ContextTagConfig],
    nodes: &[(String, NodeId)],
    line: &LineContext,
) -> Result<(), String> {
    let values = context::writes(tags, line);
    for w in values.iter().filter(|w| w.cut) {
        warn!(
            source,
            key = w.key.as_str(),
            "opcua {source}: context key `{}` is longer than its node takes (max_chars) and \
             was cut to {:?}",
            w.key,
            w.value
        );
    }
    let request: Vec<WriteValue> = nodes
        .iter()
        .zip(&values)
        .map(|((_, node), w)| WriteValue {
            node_id: node.clone(),
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(Variant::from(w.value.as_str())),
        })
        .collect();
    let codes = session
        .write(&request)
        .await
        .map_err(|e| format!("writing the line context failed: {e}"))?;
    let mut refused = 0;
    for (i, ((key, node), tag)) in nodes.iter().zip(tags).enumerate() {
        let code = codes.get(i).copied().unwrap_or(StatusCode::BadNoValue);
        if !code.is_good() {
            refused += 1;
            error!(
                source,
                key = key.as_str(),
                "opcua {source}: the server refused the line context's `{key}` for node {} \
                 (context_tags.node {}): {code}; the node must be a String the agent's \
                 identity may write",
                node,
                tag.node
            );
        }
    }
    if refused == 0 {
        debug!(
            source,
            "opcua {source}: line context written to the PLC ({} nodes)",
            nodes.len()
        );
    }
    Ok(())
}
