//! aclc's side of `tools/filter-diff`: reads the same cases as the Go oracle (JSON lines on
//! standard input: a filter, the node's addresses and routes, the capabilities sources hold,
//! outbound flows, inbound flows, capability questions) and writes aclc-matcher's verdicts in
//! the oracle's form, after checking the fast matcher against the reference one on each.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::net::IpAddr;

use aclc_matcher::{
    Allow, Flow, FlowCache, LocalNetworks, Matcher, Packet, ReferenceMatcher, Verdict,
};
use serde::{Deserialize, Serialize};

/// A flow as the oracle builds its packet (see `tools/filter-diff/main.go`).
#[derive(Deserialize)]
struct CaseFlow {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    #[serde(default)]
    sport: u16,
    #[serde(default)]
    dport: u16,
    #[serde(default)]
    pkt: String,
    #[serde(default)]
    flags: u8,
    #[serde(default)]
    itype: u8,
    #[serde(default)]
    icode: u8,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    filter: String,
    #[serde(default)]
    addrs: Vec<IpAddr>,
    #[serde(default)]
    routes: Vec<ipnet::IpNet>,
    #[serde(default)]
    caps: Vec<(IpAddr, String)>,
    #[serde(default)]
    out: Vec<CaseFlow>,
    #[serde(default)]
    flows: Vec<CaseFlow>,
    #[serde(default)]
    capq: Vec<(IpAddr, IpAddr)>,
}

#[derive(Serialize)]
struct Verdicts {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    jsonerr: Option<String>,
    v: Vec<String>,
    /// Each verdict's explanation, for the report.
    why: Vec<String>,
    caps: Vec<BTreeMap<String, Vec<String>>>,
    /// Flows (by index) and capability questions (`capq` + index) on which the fast and the
    /// reference matcher disagree.
    fast_vs_reference: Vec<String>,
}

fn flow(f: &CaseFlow) -> Flow {
    let flow = Flow::new(f.src, f.dst, f.proto, f.dport).with_src_port(f.sport);
    match f.pkt.as_str() {
        "tcp" => flow.with_packet(Packet::Tcp { flags: f.flags }),
        "icmp" => flow.with_packet(Packet::Icmp {
            icmp_type: f.itype,
            code: f.icode,
        }),
        _ => flow,
    }
}

/// The oracle's label: a flow the cache admitted is named by the rule that admits it
/// without the cache, if one does.
fn label(verdict: &Verdict, stateless: &Verdict) -> String {
    match (verdict, stateless) {
        (Verdict::Allow(Allow::Rule { rule, .. }), _)
        | (Verdict::Allow(Allow::ReturnTraffic), Verdict::Allow(Allow::Rule { rule, .. })) => {
            format!("A{rule}")
        }
        (Verdict::Allow(Allow::ReturnTraffic), _) => "AC".into(),
        (Verdict::Allow(_), _) => "A-".into(),
        (Verdict::Refuse(_), _) => "D".into(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let case: Case = serde_json::from_str(&line?)?;
        let local = LocalNetworks {
            addresses: case.addrs.clone(),
            routes: case.routes.clone(),
        };
        let mut res = Verdicts {
            id: case.id.clone(),
            jsonerr: None,
            v: Vec::new(),
            why: Vec::new(),
            caps: Vec::new(),
            fast_vs_reference: Vec::new(),
        };
        let (fast, reference) = match (
            Matcher::from_json(&case.filter, &local),
            ReferenceMatcher::from_json(&case.filter, &local),
        ) {
            (Ok(fast), Ok(reference)) => (fast, reference),
            (Err(e), _) | (_, Err(e)) => {
                res.jsonerr = Some(e.to_string());
                serde_json::to_writer(&mut out, &res)?;
                out.write_all(b"\n")?;
                continue;
            }
        };
        let held: HashSet<(IpAddr, String)> = case.caps.iter().cloned().collect();
        let holds = |ip: IpAddr, cap: &str| held.contains(&(ip, cap.to_string()));
        let (fast_cache, reference_cache) = (FlowCache::new(512), FlowCache::new(512));
        for f in &case.out {
            fast_cache.run_out(&flow(f));
            reference_cache.run_out(&flow(f));
        }
        for (i, f) in case.flows.iter().enumerate() {
            let f = flow(f);
            let verdict = fast_cache.run_in(&fast, &f, &holds);
            if reference_cache.run_in(&reference, &f, &holds) != verdict {
                res.fast_vs_reference.push(i.to_string());
            }
            res.v.push(label(&verdict, &fast.check_with(&f, &holds)));
            res.why.push(verdict.to_string());
        }
        for (i, (src, dst)) in case.capq.iter().enumerate() {
            let caps = fast.app_capabilities(*src, *dst);
            if caps != reference.app_capabilities(*src, *dst) {
                res.fast_vs_reference.push(format!("capq{i}"));
            }
            let mut texts = BTreeMap::new();
            for (name, values) in caps {
                let values: Result<Vec<String>, _> =
                    values.iter().map(serde_json::to_string).collect();
                texts.insert(name.to_string(), values?);
            }
            res.caps.push(texts);
        }
        serde_json::to_writer(&mut out, &res)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
