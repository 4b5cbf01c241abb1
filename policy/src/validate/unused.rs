//! Warnings for definitions nothing refers to (groups, tags, hosts, IP sets, postures), with
//! the names the policy's own tests mention counted as uses.

use std::collections::BTreeSet;

use super::{quote, Validator};
use crate::code::Code;
use crate::model::PostureValue;

impl Validator<'_> {
    /// Warnings for definitions nothing refers to.
    pub(super) fn unused(&mut self) {
        if !self.broken.is_empty() {
            // A reference inside an entry that could not be read was never seen.
            return;
        }
        let policy = self.policy;
        // Names mentioned in tests count as uses.
        let mut mentioned: BTreeSet<String> = BTreeSet::new();
        let mut mention = |text: &str| {
            let t = text.trim();
            mentioned.insert(t.to_string());
            if let Some((host, _)) = t.rsplit_once(':') {
                mentioned.insert(host.to_string());
            }
        };
        for test in &policy.tests {
            test.src.iter().for_each(|s| mention(&s.value));
            test.accept
                .iter()
                .chain(&test.deny)
                .for_each(|s| mention(&s.value));
        }
        for test in &policy.ssh_tests {
            test.src.iter().for_each(|s| mention(&s.value));
            test.dst.iter().for_each(|s| mention(&s.value));
        }
        // A posture condition's string values may name a definition (an IP set in
        // `ip:... IN ['ipset:home']`): counted as uses, whether or not aclc knows the
        // attribute.
        fn strings(value: &PostureValue, out: &mut dyn FnMut(&str)) {
            match value {
                PostureValue::Str(s) => out(s),
                PostureValue::List(items) => items.iter().for_each(|v| strings(v, out)),
                PostureValue::Num(_) | PostureValue::Bool(_) => {}
            }
        }
        for posture in &policy.postures {
            for condition in &posture.conditions {
                if let Some(value) = &condition.value.value {
                    // The value whole (not split at its last colon as a test's `host:port`).
                    strings(value, &mut |s| {
                        mentioned.insert(s.trim().to_string());
                    });
                }
            }
        }
        // Every definition with its kind, in the order the warnings come out.
        let definitions = (policy.groups.iter().map(|g| (&UNUSED_GROUP, &g.name)))
            .chain(policy.tag_owners.iter().map(|t| (&UNUSED_TAG, &t.tag)))
            .chain(policy.hosts.iter().map(|h| (&UNUSED_HOST, &h.name)))
            .chain(policy.ipsets.iter().map(|s| (&UNUSED_IPSET, &s.name)))
            .chain(policy.postures.iter().map(|p| (&UNUSED_POSTURE, &p.name)));
        // A rule from or to every device (`*`, `autogroup:tagged`) is a use of every tag: a
        // device given one takes part in it. Warning about each tag of such a policy was
        // noise (25 warnings for a policy of 25 tags and one `*` rule; the Kubernetes
        // operator's `tag:k8s`, owned by `tag:k8s-operator` and named by no rule).
        let tags_reached = self.every_device_in_a_rule();
        for (kind, name) in definitions {
            if tags_reached && kind.code == Code::UnusedTag {
                continue;
            }
            let referred = match kind.key_prefix {
                "" => self.used.contains(name.value.as_str()),
                prefix => self.used.contains(&format!("{prefix}{}", name.value)),
            };
            if referred || mentioned.contains(&name.value) {
                continue;
            }
            let message = format!("{} {} {}", kind.noun, quote(&name.value), kind.never);
            self.warning(kind.code, name.span, message, kind.help);
        }
    }
}

impl Validator<'_> {
    /// True when a network rule or grant has every device among its sources or
    /// destinations (`*`, `autogroup:tagged`).
    fn every_device_in_a_rule(&self) -> bool {
        use crate::model::{Alias, Autogroup};
        let every =
            |alias: &Alias| matches!(alias, Alias::Wildcard | Alias::Autogroup(Autogroup::Tagged));
        let acls = self.policy.acls.iter().flat_map(|a| &a.value);
        let grants = self.policy.grants.iter().flat_map(|g| &g.value);
        acls.flat_map(|a| {
            a.src
                .iter()
                .map(|s| &s.alias)
                .chain(a.dst.iter().map(|d| &d.target.alias))
        })
        .chain(grants.flat_map(|g| g.src.iter().chain(&g.dst).map(|s| &s.alias)))
        .any(every)
    }
}

/// A kind of definition that gets a warning when nothing refers to it.
struct Unused {
    code: Code,
    /// What the message calls it.
    noun: &'static str,
    /// The message after the quoted name.
    never: &'static str,
    /// What a reference to it is recorded under in `used`: this prefix and the name.
    key_prefix: &'static str,
    help: &'static str,
}

const REMOVE_OR_REFER: &str = "remove it, or refer to it in a rule";

const UNUSED_GROUP: Unused = Unused {
    code: Code::UnusedGroup,
    noun: "group",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};

const UNUSED_TAG: Unused = Unused {
    code: Code::UnusedTag,
    noun: "tag",
    never: "is never used in a rule",
    key_prefix: "",
    help: "a tag nothing refers to can still be applied to devices; remove it if it is not",
};

const UNUSED_HOST: Unused = Unused {
    code: Code::UnusedHost,
    noun: "host",
    never: "is never used",
    key_prefix: "host ",
    help: REMOVE_OR_REFER,
};

const UNUSED_IPSET: Unused = Unused {
    code: Code::UnusedIpset,
    noun: "IP set",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};

const UNUSED_POSTURE: Unused = Unused {
    code: Code::UnusedPosture,
    noun: "posture",
    never: "is never used",
    key_prefix: "",
    help: REMOVE_OR_REFER,
};
