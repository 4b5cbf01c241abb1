//! `aclc explain` for traffic: the allowing rules, or on a denial the nearest misses, with
//! the nodes' view where it differs from the tests' (ICMP, `via`, protocols without ports).

use super::*;

/// `aclc explain` for traffic: what the rules do with traffic from `src` to `dst`
/// (`host:port`, or a bare host for a protocol without ports), judged by [`judge`], the code
/// `tests` use, over the rules as the nodes' filters hold them ([`Judged::Traffic`]: a `via`
/// grant only through its routers), with a protocol without ports let through only by a
/// rule open on every port, and ICMP, when no rule opens it, by any rule open to the source
/// on some protocol and port (the client lets ICMP through to such an address). On a denial,
/// the near misses are the rules that reach the destination but fail the first source
/// address no rule lets through: by source, by posture gate, or by port and protocol.
pub(crate) fn explain(
    policy: &Policy,
    compiled: &Compiled,
    query: &crate::policytest::explain::NetworkQuery<'_>,
) -> Result<crate::policytest::explain::Explanation, TestError> {
    explain_with(policy, compiled, None, query)
}

/// The policy's network rules as [`explain`] judges them, built once for many questions (the
/// access diff asks one per change it attributes; building them resolves every rule, so
/// building them per question cost the policy's size each time).
#[derive(Debug)]
pub struct NetRules(Rules);

impl NetRules {
    /// The rules of `policy` over `compiled`'s nodes.
    pub(crate) fn new(policy: &Policy, compiled: &Compiled) -> NetRules {
        NetRules(rules(policy, compiled.table(), Judged::Traffic))
    }
}

/// [`explain`] with the rules built beforehand (`None`: built here, after the query's own
/// checks), which must be [`NetRules::new`] of the same `policy` and `compiled`.
pub(crate) fn explain_with(
    policy: &Policy,
    compiled: &Compiled,
    prebuilt: Option<&NetRules>,
    query: &crate::policytest::explain::NetworkQuery<'_>,
) -> Result<crate::policytest::explain::Explanation, TestError> {
    use crate::policytest::explain::{resolve_named, Explanation};
    let src_text = query.src.trim();
    let dst_text = query.dst.trim();
    let (protos, proto_name) = test_protocols(query.proto)?;
    let mut endpoints = Endpoints::new(policy, compiled);
    let (host, port) = split_port(dst_text)?;
    // Only TCP, UDP and SCTP have ports. A node lets ICMP through on addresses alone, and
    // another protocol (GRE, ESP, ...) only by a rule open on every port, whatever port is
    // named.
    let icmp_only = protos.iter().all(|p| matches!(p, 1 | 58));
    let portless = protos.iter().all(|p| !matches!(p, 6 | 17 | 132));
    let port = match port {
        _ if icmp_only => Asked::AnyPort,
        _ if portless => Asked::EveryPort,
        Some(port) => Asked::Port(port),
        None => {
            return Err(TestError::InvalidDestination(format!(
                "dst {} has no port: write DST:PORT ({proto_name} needs a port; ICMP, GRE and \
                 other protocols without ports do not)",
                quote(dst_text)
            )))
        }
    };
    let destinations = resolve_named(&mut endpoints, host, Side::Destination)?;
    let sources = match resolve_named(&mut endpoints, src_text, Side::Source) {
        Ok(devices) => devices,
        Err(error) if has_no_devices(&error, src_text) => {
            return Ok(Explanation {
                verdict: Verdict::Denied,
                reason: format!(
                    "src {} has no devices in the inventory, so it reaches nothing",
                    quote(src_text)
                ),
                misses: Vec::new(),
                also: Vec::new(),
                notes: Vec::new(),
            })
        }
        Err(error) => return Err(error),
    };
    // A name read as the policy's alias that is also an inventory node's, not meant here.
    let note = [
        crate::policytest::explain::shadowed(&endpoints, src_text, &sources),
        crate::policytest::explain::shadowed(&endpoints, host, &destinations),
    ]
    .concat();
    let answer = || -> Result<Explanation, TestError> {
        let table = compiled.table();
        let built;
        let rules: &Rules = match prebuilt {
            Some(NetRules(rules)) => rules,
            None => {
                built = rules(policy, table, Judged::Traffic);
                &built
            }
        };
        let posture = Posture {
            index: endpoints.index(),
            table,
            assumed: query.src_posture_attrs,
        };
        let what = match port {
            Asked::Port(port) => format!("port {port} ({proto_name})"),
            Asked::AnyPort => proto_name.clone(),
            // Nodes let such a protocol through only by a rule open on every port.
            Asked::EveryPort => format!("{proto_name} on every port"),
        };
        let ends = (&sources[..], &destinations[..]);
        let (verdict, denied, partial) = judge_traffic(rules, &posture, ends, &protos, port);
        // Every protocol: how a node judges ICMP (`matchIPsOnly`, below).
        let every: Vec<u8> = (0..=u8::MAX).collect();
        if denied.is_some() && icmp_only {
            // A node lets ICMP through to an address any rule opens to the source, whatever the
            // rule's protocols and ports (`matchIPsOnly`: "if any port is open, ping works").
            let (verdict, denied, partial) =
                judge_traffic(rules, &posture, ends, &every, Asked::AnyPort);
            if denied.is_none() && verdict.is_allowed() {
                return Ok(Explanation {
                    reason: format!(
                        "{src_text} reaches {dst_text} on {what}{}: no rule opens {what}, but a \
                         node lets ICMP through to any of its addresses a rule opens to the source \
                         on some protocol and port",
                        only_family(&partial)
                    ),
                    verdict,
                    misses: Vec::new(),
                    also: Vec::new(),
                    notes: Vec::new(),
                });
            }
        }
        // For ICMP, every rule open to the source on some protocol and port lets it through
        // (`matchIPsOnly`), so the other rules and the families reached are judged over
        // them all: a TCP rule beside an ICMP one keeps the ping, and lets it through over
        // the family the ICMP rule leaves out (found by a differential of explain against
        // the compiled filters).
        let (protos, partial) = match (icmp_only, denied) {
            (true, None) if !partial.is_empty() => (
                every.clone(),
                judge_traffic(rules, &posture, ends, &every, Asked::AnyPort).2,
            ),
            (true, None) => (every.clone(), partial),
            _ => (protos.clone(), partial),
        };
        let Some((addr, node)) = denied else {
            let only = only_family(&partial);
            let reason = match verdict.rules().len() {
                0 => "allowed by the default policy (no acls or grants)".to_string(),
                1 => format!("{src_text} reaches {dst_text} on {what} by 1 rule{only}"),
                n => format!("{src_text} reaches {dst_text} on {what} by {n} rules{only}"),
            };
            // The other rules that let some of it through too: an author removing only
            // the verdict's rules, to take the access away, would keep it.
            let also = also_through(rules, &posture, ends, &protos, port, verdict.rules());
            return Ok(Explanation {
                verdict,
                reason,
                misses: Vec::new(),
                also,
                notes: Vec::new(),
            });
        };
        // No destination address of the source's family: no packet can be sent at all.
        if !has_family(&destinations, addr) {
            return Ok(Explanation {
                verdict,
                reason: format!(
                    "{src_text} ({addr}) has no address of the family of {dst_text}'s: no packet \
                     can pass between them"
                ),
                misses: Vec::new(),
                also: Vec::new(),
                notes: Vec::new(),
            });
        }
        // The refused address, with its device's name when the source has several devices
        // (a group: which member's device is refused).
        let at = match node
            .filter(|_| sources.len() > 1)
            .and_then(|id| table.get(id))
        {
            Some(device) => format!("{}, {addr}", device.name),
            None => addr.to_string(),
        };
        let mut misses: Vec<crate::policytest::explain::Miss> = Vec::new();
        for rule in rules.iter() {
            let Some(span) = rule.span else {
                continue;
            };
            if !reaches(rule, table, node, &destinations) {
                continue;
            }
            let why = if !rule.src.iter().any(|part| part.contains(addr, node)) {
                format!("src {} ({at}) is not in the rule's src", quote(src_text))
            } else if !posture.admits(rule, node) {
                format!(
                    "the rule's posture gate does not admit src {} ({at})",
                    quote(src_text)
                )
            } else if !opens(rule, &protos, port) {
                let named: Vec<String> =
                    rule_protos(rule).map(|p| Protocol(p).to_string()).collect();
                let ports: Vec<String> = rule.ports.iter().map(ToString::to_string).collect();
                match rule_protos(rule).any(|p| protos.contains(&p)) {
                    // The port may be open: the protocol is what is missing.
                    false => format!(
                        "the rule opens {} (ports {}), not {proto_name}",
                        named.join("/"),
                        ports.join(",")
                    ),
                    true => format!(
                        "the rule opens {} on ports {}, not {what}",
                        named.join("/"),
                        ports.join(",")
                    ),
                }
            } else {
                continue;
            };
            if !misses.iter().any(|m| m.span == span && m.why == why) {
                misses.push(crate::policytest::explain::Miss { span, why });
            }
        }
        misses.sort_by_key(|m| m.span);
        let notes = recorder_note(policy, compiled, (addr, &destinations), (&protos, port))
            .into_iter()
            .collect();
        Ok(Explanation {
            verdict,
            reason: format!("no rule lets {src_text} ({at}) reach {dst_text} on {what}"),
            misses,
            also: Vec::new(),
            notes,
        })
    };
    let mut explanation = answer()?;
    explanation.reason.push_str(&note);
    Ok(explanation)
}

/// What the note of [`recorder_note`] says Tailscale lets happen (the access diff finds the
/// note by it).
pub(crate) const RECORDER_ACCESS: &str =
    "SSH servers reach the session recorders their `ssh` rules name";

/// On a denial of TCP port 80 to session recorders: Tailscale lets SSH servers reach the
/// recorders their rules name with no rule written for it (the compile adds that access,
/// `lower::Builder::recorder_access`), so every destination's packet filter may admit the
/// source address the written rules refuse. Said beside the verdict, which judges the written
/// rules as `tests` do. O(the destinations' filters).
fn recorder_note(
    policy: &Policy,
    compiled: &Compiled,
    (addr, destinations): (IpAddr, &[Device]),
    (protos, port): (&[u8], Asked),
) -> Option<String> {
    const TCP: u8 = 6;
    let recording = policy
        .ssh
        .iter()
        .flat_map(|s| s.value.iter())
        .any(|rule| !rule.recorder.is_empty());
    // TCP port 80, or ICMP, which passes wherever a port is open (`Asked::AnyPort`).
    let icmp = match port {
        Asked::Port(crate::ssh::RECORDER_PORT) if protos.contains(&TCP) => false,
        Asked::AnyPort => true,
        _ => return None,
    };
    if !recording {
        return None;
    }
    let table = compiled.table();
    let mut names = Vec::new();
    for device in destinations {
        let node = table.get(device.node?)?;
        let dst = device
            .addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == addr.is_ipv4())?;
        let rules = compiled.filter_rules(&node.name)?;
        let json = serde_json::to_string(&rules).ok()?;
        let local = aclc_matcher::LocalNetworks::addresses(device.addrs.iter().copied());
        let matcher = aclc_matcher::ReferenceMatcher::from_json(&json, &local).ok()?;
        let flow = aclc_matcher::Flow::tcp(addr, dst, crate::ssh::RECORDER_PORT);
        if !matcher.check(&flow).is_allowed() {
            return None;
        }
        names.push(node.name.to_string());
    }
    let names = match names.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
    };
    let admits = match icmp {
        false => format!("admits {addr} on TCP port 80 all the same"),
        true => format!(
            "lets ICMP from {addr} through all the same (it admits it on TCP port 80, and ICMP \
             passes wherever a port is open)"
        ),
    };
    Some(format!(
        "the packet filter of {names} {admits}: Tailscale lets {RECORDER_ACCESS}, with no rule \
         written for it; this verdict judges the written rules, as `tests` do"
    ))
}

/// What an allowed flow's reason adds when some source addresses do not get through while
/// another address of their device does: `, over IPv4 only (no rule lets fd7a:... through)`.
pub(super) fn only_family(partial: &[IpAddr]) -> String {
    let Some(first) = partial.first() else {
        return String::new();
    };
    let more = match partial.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let other = match first.is_ipv4() {
        true => "IPv6",
        false => "IPv4",
    };
    match partial.iter().all(|a| a.is_ipv4() == first.is_ipv4()) {
        true => format!(", over {other} only (no rule lets {first}{more} through)"),
        false => format!(", not from every address (no rule lets {first}{more} through)"),
    }
}
