//! Automation graphs: nodes and the connections between them. firehook stores and validates
//! them; it does not execute them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NodeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum NodeType {
    Trigger,
    Wait,
    Filter,
    Split,
    SendEmail,
}

/// A connection in the graph, from one node id to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

/// Every structural problem of a graph, in the order found (empty: the graph is valid).
pub fn issues(nodes: &[Node], edges: &[Edge]) -> Vec<Value> {
    let mut issues = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for node in nodes {
        if !seen.insert(node.id.as_str()) {
            issues.push(json!({"code": "duplicate_node_id", "nodeId": node.id}));
        }
    }
    if !nodes.iter().any(|n| n.kind == NodeType::Trigger) {
        issues.push(json!({"code": "missing_trigger_node"}));
    }
    let kind_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.kind);
    for (i, edge) in edges.iter().enumerate() {
        if kind_of(&edge.from).is_none() {
            issues.push(
                json!({"code": "connection_unknown_from", "connection": i, "nodeId": edge.from}),
            );
        }
        match kind_of(&edge.to) {
            None => issues
                .push(json!({"code": "connection_unknown_to", "connection": i, "nodeId": edge.to})),
            Some(NodeType::Trigger) => issues.push(
                json!({"code": "connection_targets_trigger", "connection": i, "nodeId": edge.to}),
            ),
            Some(_) => {}
        }
        if edge.from == edge.to {
            issues.push(
                json!({"code": "connection_self_loop", "connection": i, "nodeId": edge.from}),
            );
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, kind: NodeType) -> Node {
        Node {
            id: id.into(),
            kind,
            label: None,
            config: None,
        }
    }
    fn edge(from: &str, to: &str) -> Edge {
        Edge {
            from: from.into(),
            to: to.into(),
        }
    }
    fn codes(issues: &[Value]) -> Vec<&str> {
        issues.iter().map(|i| i["code"].as_str().unwrap()).collect()
    }

    #[test]
    fn a_valid_graph_has_no_issues() {
        let nodes = [node("t", NodeType::Trigger), node("e", NodeType::SendEmail)];
        assert!(issues(&nodes, &[edge("t", "e")]).is_empty());
    }

    #[test]
    fn reports_every_kind_of_issue() {
        let nodes = [node("t", NodeType::Wait), node("t", NodeType::SendEmail)];
        let found = issues(&nodes, &[edge("x", "t"), edge("t", "y"), edge("t", "t")]);
        assert_eq!(
            codes(&found),
            vec![
                "duplicate_node_id",
                "missing_trigger_node",
                "connection_unknown_from",
                "connection_unknown_to",
                "connection_self_loop"
            ]
        );
        let nodes = [node("t", NodeType::Trigger), node("w", NodeType::Wait)];
        assert_eq!(
            codes(&issues(&nodes, &[edge("w", "t")])),
            vec!["connection_targets_trigger"]
        );
    }
}
