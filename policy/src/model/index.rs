//! Name lookups over a policy's definitions (groups, hosts, tag owners, IP sets, postures) in
//! constant time, built once in one pass, for callers that look many names up.

use std::collections::HashMap;

use super::{GroupDef, HostDef, IpSetDef, Policy, PostureDef, TagOwnerDef};

/// The definitions of a [`Policy`] by name. Where a name is defined twice the first definition
/// wins, as with [`Policy::group`] and its siblings (validation refuses duplicates anyway).
///
/// Borrowing the policy keeps the index from going stale: the policy cannot change while an
/// index of it exists.
#[derive(Debug, Clone, Default)]
pub struct PolicyIndex<'p> {
    groups: HashMap<&'p str, &'p GroupDef>,
    hosts: HashMap<&'p str, &'p HostDef>,
    tag_owners: HashMap<&'p str, &'p TagOwnerDef>,
    ipsets: HashMap<&'p str, &'p IpSetDef>,
    postures: HashMap<&'p str, &'p PostureDef>,
}

/// A map from name to the first item carrying it.
fn first_by_name<'p, T>(
    items: &'p [T],
    name: impl Fn(&'p T) -> &'p str,
) -> HashMap<&'p str, &'p T> {
    let mut map = HashMap::with_capacity(items.len());
    for item in items {
        map.entry(name(item)).or_insert(item);
    }
    map
}

impl<'p> PolicyIndex<'p> {
    /// Index every definition of `policy` (linear in the number of definitions).
    pub fn new(policy: &'p Policy) -> PolicyIndex<'p> {
        PolicyIndex {
            groups: first_by_name(&policy.groups, |g| g.name.value.as_str()),
            hosts: first_by_name(&policy.hosts, |h| h.name.value.as_str()),
            tag_owners: first_by_name(&policy.tag_owners, |t| t.tag.value.as_str()),
            ipsets: first_by_name(&policy.ipsets, |s| s.name.value.as_str()),
            postures: first_by_name(&policy.postures, |p| p.name.value.as_str()),
        }
    }

    /// The group definition named `name` (`group:x`), if any.
    pub fn group(&self, name: &str) -> Option<&'p GroupDef> {
        self.groups.get(name).copied()
    }

    /// The host definition named `name`, if any.
    pub fn host(&self, name: &str) -> Option<&'p HostDef> {
        self.hosts.get(name).copied()
    }

    /// The `tagOwners` entry of `tag` (`tag:x`), if any.
    pub fn tag_owner(&self, tag: &str) -> Option<&'p TagOwnerDef> {
        self.tag_owners.get(tag).copied()
    }

    /// The IP set named `name` (`ipset:x`), if any.
    pub fn ipset(&self, name: &str) -> Option<&'p IpSetDef> {
        self.ipsets.get(name).copied()
    }

    /// The posture named `name` (`posture:x`), if any.
    pub fn posture(&self, name: &str) -> Option<&'p PostureDef> {
        self.postures.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn index_agrees_with_linear_lookups() {
        let text = r#"{
            "groups": {"group:a": ["x@example.com"], "group:b": []},
            "hosts": {"h1": "10.0.0.1", "h2": "10.0.0.0/24"},
            "tagOwners": {"tag:t": ["group:a"]},
            "ipsets": {"ipset:s": ["10.0.0.0/8"]},
            "postures": {"posture:p": ["node:os == 'linux'"]},
        }"#;
        let options = crate::Options::default();
        let (_, checked) = crate::parse_str("p", text, &options);
        let policy = checked.unwrap().policy;
        let index = policy.index();
        for name in ["group:a", "group:b", "group:c"] {
            assert_eq!(index.group(name), policy.group(name));
        }
        for name in ["h1", "h2", "h3"] {
            assert_eq!(index.host(name), policy.host(name));
        }
        assert_eq!(index.tag_owner("tag:t"), policy.tag_owner("tag:t"));
        assert_eq!(index.tag_owner("tag:u"), None);
        assert_eq!(index.ipset("ipset:s"), policy.ipset("ipset:s"));
        assert_eq!(index.posture("posture:p"), policy.posture("posture:p"));
        assert!(index.posture("posture:q").is_none());
    }
}
