//! The tailnet and policy of the phase-span tests (`engine_phases.rs`,
//! `engine_phases_scoped.rs`): a member's laptop, a web server and a subnet router.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use aclc_compiler::engine::{Engine, EngineOptions, NodeRecord, TailnetState, UserRecord};
use aclc_policy::model::Policy;

/// The policy, with a rule added at the top when `extra_rule`.
pub fn policy(extra_rule: bool) -> Arc<Policy> {
    let extra = if extra_rule {
        r#"{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:8443"]},"#
    } else {
        ""
    };
    let text = format!(
        r#"{{
  "tagOwners": {{"tag:web": ["alice@example.com"], "tag:router": ["alice@example.com"]}},
  "acls": [
    {extra}
    {{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443", "10.1.0.0/16:*"]}}
  ]
}}"#
    );
    let (_, parsed) =
        aclc_policy::parse_str("policy.hujson", &text, &aclc_policy::Options::default());
    Arc::new(parsed.unwrap().policy)
}

/// Node `i`'s addresses.
pub fn addresses(i: u8) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(100, 64, 0, i),
        Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, u16::from(i)),
    )
}

/// An engine on the tailnet and the policy without the extra rule.
pub fn engine() -> Engine {
    let (a1, b1) = addresses(1);
    let (a2, b2) = addresses(2);
    let (a3, b3) = addresses(3);
    let mut router = NodeRecord::tagged(3, "router-1", &["tag:router"], a3, b3);
    router.advertised_routes = vec!["10.1.0.0/24".parse().unwrap()];
    router.approved_routes = router.advertised_routes.clone();
    let state = TailnetState {
        users: vec![UserRecord {
            id: 1,
            login: "alice@example.com".to_string(),
            name: "alice".to_string(),
            roles: Vec::new(),
            groups: Vec::new(),
        }],
        nodes: vec![
            NodeRecord::owned(1, "alice-laptop", 1, a1, b1),
            NodeRecord::tagged(2, "web-1", &["tag:web"], a2, b2),
            router,
        ],
        tailnet: Default::default(),
        services: Vec::new(),
    };
    Engine::new(policy(false), state, EngineOptions::default()).unwrap()
}
