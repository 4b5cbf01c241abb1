//! Matcher benchmarks: our fast [`Matcher`] beside tailscale-rs's `BartFilter`, on the filter
//! tailscale-rs publishes and on the heaviest node's filter of the `large` workload.
//!
//! Groups (ids are stable so runs can be compared):
//! - `matcher/sample`: `aclc/allowed`, `aclc/denied`, `tailscale-rs/allowed`,
//!   `tailscale-rs/denied` on `testdata/bench/sample_filter.json`;
//! - `matcher/generated`: `aclc/{allowed,denied,hot}` and `tailscale-rs/{allowed,denied,hot}`
//!   on the filter of the node with the most source entries in the `large` workload (100k
//!   nodes), compiled by [`aclc_compiler::compile`];
//! - `matcher/build`: `aclc/{sample,generated}` (from parsed rules), `aclc/generated-json`
//!   (from the JSON text) and `tailscale-rs/{sample,generated}`.
//!
//! Every flow's verdict is checked against the [`ReferenceMatcher`] before timing. Flows on
//! which `BartFilter` disagrees with the reference are left out of its side and counted.
//! After criterion, a summary measures per-lookup medians over batches of distinct flows and
//! prints them next to the targets of the issue, with the memory per source entry.
//!
//! `ACLC_BENCH_SUBJECTS=sample` (a comma-separated list of `sample`, `generated`,
//! `prefixes-100k`) limits the filters for a quick run; the sample filter is always loaded.
//!
//! The workload comes from the seeded generator (`testdata/bench/gen_workload.py --preset large
//! --seed 1 --flows 100000`): set `ACLC_BENCH_DIR` to a directory holding `large/`, or let the
//! bench generate it under `target/bench-workloads`. Without the generator the generated
//! groups are skipped with a message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aclc_compiler::matcher::{
    Flow, LocalNetworks, Matcher, ParsedRules, ReferenceMatcher, Verdict,
};
use criterion::{criterion_group, criterion_main, Criterion};
use ts_bart_packetfilter::BartFilter;
use ts_packetfilter::{FilterExt, FilterStorageExt, PacketInfo};

mod support;
use support::{compile, load_workload};

const PRESET: &str = "large";

/// The workload's directory (generated with 100,000 flows if missing), or `None` after saying
/// why.
fn workload_dir(preset: &str) -> Option<PathBuf> {
    aclc_testkit::workloads::workload_dir(preset, 100_000, &["policy.hujson", "inventory.json"])
}

/// A deterministic xorshift generator, so that flow sets are the same run to run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One filter with everything built from it.
struct Subject {
    name: String,
    json: String,
    parsed: ParsedRules,
    local: LocalNetworks,
    fast: Matcher,
    reference: ReferenceMatcher,
    bart: BartFilter,
    allowed: Vec<Flow>,
    denied: Vec<Flow>,
    /// Flows `BartFilter` gets wrong, left out of its side.
    bart_allowed: Vec<Flow>,
    bart_denied: Vec<Flow>,
    bart_wrong: usize,
}

/// tailscale-rs's rules for a filter: its own serde crate, then its `Rule` type (what
/// `ts_packetfilter_state` does when it applies a map response). App rules are skipped.
fn bart_rules(json: &str) -> Vec<ts_packetfilter::Rule> {
    let wire: Vec<ts_packetfilter_serde::FilterRule<'_>> = serde_json::from_str(json).unwrap();
    wire.into_iter()
        .filter_map(|rule| rule.into_network())
        .map(|rule| {
            let mut src = ts_packetfilter::SrcMatch::default();
            for s in &rule.src_ips {
                match s {
                    ts_packetfilter_serde::SrcIp::IpRange(r) => src.pfxs.extend(r.iter_prefixes()),
                    ts_packetfilter_serde::SrcIp::NodeCap(c) => src.caps.push(c.to_string()),
                }
            }
            ts_packetfilter::Rule {
                src,
                protos: rule
                    .ip_proto
                    .iter()
                    .map(|p| ts_packetfilter::IpProto::new(isize::from(*p) as i64))
                    .collect(),
                dst: rule
                    .dst_ports
                    .iter()
                    .map(|d| ts_packetfilter::DstMatch {
                        ports: d.ports.clone(),
                        ips: d.ip.iter_prefixes().collect(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn build_bart(rules: &[ts_packetfilter::Rule]) -> BartFilter {
    let mut bart = BartFilter::default();
    bart.insert("base", rules.iter().cloned());
    bart
}

fn bart_allows(bart: &BartFilter, flow: &Flow) -> bool {
    let info = PacketInfo {
        src: flow.src,
        dst: flow.dst,
        ip_proto: ts_packetfilter::IpProto::new(i64::from(flow.proto)),
        port: flow.dst_port,
    };
    bart.can_access(&info, std::iter::empty::<&str>())
}

impl Subject {
    fn new(name: &str, json: String, local: LocalNetworks, seed: u64) -> Subject {
        let parsed = ParsedRules::from_json(&json).unwrap();
        assert!(parsed.problems().is_empty(), "{:?}", parsed.problems());
        let fast = Matcher::new(&parsed, &local);
        let reference = ReferenceMatcher::new(&parsed, &local);
        let bart = build_bart(&bart_rules(&json));
        let (allowed, denied) = flows(&json, &local, &reference, seed);
        // Before timing: the fast matcher agrees with the reference on every flow.
        for flow in allowed.iter().chain(&denied) {
            assert_eq!(fast.check(flow), reference.check(flow), "{flow:?}");
        }
        let mut bart_wrong = 0;
        let mut keep = |flows: &[Flow], expect: bool| -> Vec<Flow> {
            flows
                .iter()
                .filter(|f| {
                    let right = bart_allows(&bart, f) == expect;
                    bart_wrong += usize::from(!right);
                    right
                })
                .copied()
                .collect()
        };
        let bart_allowed = keep(&allowed, true);
        let bart_denied = keep(&denied, false);
        eprintln!(
            "{name}: {} rules, {} source entries, {} allowed and {} denied flows; \
             BartFilter is wrong on {bart_wrong} of them (left out of its side)",
            parsed.len(),
            parsed.source_entries(),
            allowed.len(),
            denied.len(),
        );
        Subject {
            name: name.to_string(),
            json,
            parsed,
            local,
            fast,
            reference,
            bart,
            allowed,
            denied,
            bart_allowed,
            bart_denied,
            bart_wrong,
        }
    }
}

/// TCP connection attempts towards the node: ones some rule allows (a source, destination and
/// port taken from a rule) and ones no rule allows (unknown sources, or ports no rule opens).
fn flows(
    json: &str,
    local: &LocalNetworks,
    reference: &ReferenceMatcher,
    seed: u64,
) -> (Vec<Flow>, Vec<Flow>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct WireRule {
        #[serde(rename = "SrcIPs", default)]
        src_ips: Vec<String>,
        #[serde(default)]
        dst_ports: Vec<WireDst>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct WireDst {
        #[serde(rename = "IP")]
        ip: String,
        ports: WirePorts,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct WirePorts {
        first: u16,
        last: u16,
    }
    let rules: Vec<WireRule> = serde_json::from_str(json).unwrap();
    let rules: Vec<WireRule> = rules
        .into_iter()
        .filter(|r| !r.dst_ports.is_empty())
        .collect();
    let mut rng = Rng(seed);
    let node_addresses = &local.addresses;
    let sources: Vec<&str> = rules
        .iter()
        .flat_map(|r| r.src_ips.iter().map(String::as_str))
        .collect();

    // A random address of an entry (IP, CIDR, range, `*`) of the given family.
    let address_in = |rng: &mut Rng, entry: &str, v6: bool| -> Option<IpAddr> {
        let (lo, hi): (u128, u128) = if entry == "*" {
            if v6 {
                (0, u128::MAX)
            } else {
                (0, u128::from(u32::MAX))
            }
        } else if let Some((a, b)) = entry.split_once('-') {
            (to_bits(a.parse().ok()?), to_bits(b.parse().ok()?))
        } else if let Some((a, bits)) = entry.split_once('/') {
            let a: IpAddr = a.parse().ok()?;
            let width = if a.is_ipv6() { 128 } else { 32 };
            let host = width - bits.parse::<u32>().ok()?;
            let span = if host >= 128 {
                u128::MAX
            } else {
                (1u128 << host) - 1
            };
            (to_bits(a), to_bits(a) | span)
        } else {
            let a: IpAddr = entry.parse().ok()?;
            (to_bits(a), to_bits(a))
        };
        let is_v6 = entry.contains(':') || (entry == "*" && v6);
        if is_v6 != v6 {
            return None;
        }
        let offset = u128::from(rng.next()) % (hi - lo).saturating_add(1).max(1);
        Some(from_bits(lo + offset, v6))
    };

    let mut allowed = Vec::new();
    let mut attempts = 0;
    while allowed.len() < 4096 && attempts < 200_000 && !rules.is_empty() {
        attempts += 1;
        let rule = rng.pick(&rules);
        let dst_entry = rng.pick(&rule.dst_ports);
        // Destination: one of the node's addresses inside the entry, of the entry's family.
        let candidates: Vec<IpAddr> = node_addresses
            .iter()
            .copied()
            .filter(|a| {
                let entry = &dst_entry.ip;
                entry == "*" || *entry == a.to_string() || contains(entry, *a)
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let dst = *rng.pick(&candidates);
        let Some(src) = rule
            .src_ips
            .get(rng.below(rule.src_ips.len() as u64) as usize)
            .and_then(|e| address_in(&mut rng, e, dst.is_ipv6()))
        else {
            continue;
        };
        let (first, last) = (dst_entry.ports.first, dst_entry.ports.last);
        if first > last {
            continue;
        }
        let port = first + rng.below(u64::from(last - first) + 1) as u16;
        let flow = Flow::tcp(src, dst, port);
        if reference.check(&flow).is_allowed() {
            allowed.push(flow);
        }
    }

    let mut denied = Vec::new();
    let mut attempts = 0;
    while denied.len() < 4096 && attempts < 200_000 && !node_addresses.is_empty() {
        attempts += 1;
        let dst = *rng.pick(node_addresses);
        let v6 = dst.is_ipv6();
        let src = if rng.below(2) == 0 || sources.is_empty() {
            // A source that is no node: documentation ranges or unassigned tailnet space.
            if v6 {
                from_bits((0x2001_0db8u128 << 96) | u128::from(rng.next()), true)
            } else {
                let base: u32 = if rng.below(2) == 0 {
                    0xc633_6400
                } else {
                    0x647f_0000
                };
                IpAddr::V4(Ipv4Addr::from(base | (rng.next() as u32 & 0xffff)))
            }
        } else {
            let entry = rng_pick_str(&mut rng, &sources);
            match address_in(&mut rng, entry, v6) {
                Some(src) => src,
                None => continue,
            }
        };
        // Ports no rule names in the workload: well-known ones, or 47001-47999.
        let port = if rng.below(2) == 0 {
            [23u16, 135, 445, 3389, 5900][rng.below(5) as usize]
        } else {
            47001 + rng.below(999) as u16
        };
        let flow = Flow::tcp(src, dst, port);
        if !reference.check(&flow).is_allowed() {
            denied.push(flow);
        }
    }
    (allowed, denied)
}

fn rng_pick_str<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_bits(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

/// Whether a CIDR or range entry contains `addr`.
fn contains(entry: &str, addr: IpAddr) -> bool {
    let bits = to_bits(addr);
    if let Some((a, b)) = entry.split_once('-') {
        let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) else {
            return false;
        };
        return a.is_ipv6() == addr.is_ipv6() && to_bits(a) <= bits && bits <= to_bits(b);
    }
    if let Some((a, len)) = entry.split_once('/') {
        let (Ok(a), Ok(len)) = (a.parse::<IpAddr>(), len.parse::<u32>()) else {
            return false;
        };
        if a.is_ipv6() != addr.is_ipv6() {
            return false;
        }
        let width = if a.is_ipv6() { 128 } else { 32 };
        let host = width - len;
        let span = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        return to_bits(a) <= bits && bits <= (to_bits(a) | span);
    }
    false
}

/// The sample filter, with every non-`*` destination as the node's addresses.
fn sample() -> Subject {
    let json =
        std::fs::read_to_string(aclc_testkit::workloads::bench_data().join("sample_filter.json"))
            .expect("testdata/bench/sample_filter.json");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut addresses: Vec<IpAddr> = value
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["DstPorts"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d["IP"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    addresses.sort();
    addresses.dedup();
    Subject::new("sample", json, LocalNetworks::addresses(addresses), 0x5eed)
}

/// The `large` workload's heaviest node (most source entries), compiled by our compiler.
fn generated() -> Option<Subject> {
    let dir = workload_dir(PRESET)?;
    let started = Instant::now();
    let (policy, inventory) = load_workload(&dir);
    let compiled = compile(&policy, &inventory);
    let (entries, name) = compiled
        .nodes()
        .map(|view| {
            let entries: usize = view
                .packet_filter_rules()
                .iter()
                .map(|r| r.src_ips.len())
                .sum();
            (entries, view.name().to_string())
        })
        .max()?;
    let view = compiled.node(&name)?;
    let json = serde_json::to_string(view.packet_filter_rules()).unwrap();
    // Kept beside the workload for inspection (not read back: it follows the compiler).
    let _ = std::fs::write(dir.join("matcher-heaviest-node.json"), &json);
    let local = LocalNetworks {
        addresses: view.addrs(),
        routes: view.primary_routes().to_vec(),
    };
    eprintln!(
        "{PRESET}: heaviest node {name} ({entries} source entries, {} bytes of filter JSON, \
         routes {:?}); compiled in {:.1?}",
        json.len(),
        local.routes,
        started.elapsed()
    );
    Some(Subject::new("generated", json, local, 0x1a29e))
}

/// A filter with 100,000 source entries (the size target), built from the `large`
/// workload's node addresses: 100 rules of 1,000 addresses each (windows overlapping by half,
/// so each address is in two rules, both families mixed), a `*` rule and ten /16 rules.
fn prefixes_100k(dir: &Path) -> Subject {
    let inventory: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inventory.json")).unwrap())
            .unwrap();
    let nodes = inventory["nodes"].as_array().unwrap();
    let pool: Vec<&str> = nodes
        .iter()
        .take(25_000)
        .flat_map(|n| [n["ipv4"].as_str().unwrap(), n["ipv6"].as_str().unwrap()])
        .collect();
    let node = &nodes[60_000];
    let (v4, v6) = (
        node["ipv4"].as_str().unwrap(),
        node["ipv6"].as_str().unwrap(),
    );
    let dst = |port: u16| {
        serde_json::json!([
            {"IP": v4, "Ports": {"First": port, "Last": port}},
            {"IP": v6, "Ports": {"First": port, "Last": port}},
        ])
    };
    let mut rules: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let srcs: Vec<&str> = (0..1000)
                .map(|k| pool[(i * 500 + k) % pool.len()])
                .collect();
            serde_json::json!({"SrcIPs": srcs, "DstPorts": dst(1000 + i as u16)})
        })
        .collect();
    rules.push(serde_json::json!({"SrcIPs": ["*"], "DstPorts": dst(443)}));
    for k in 0..10 {
        rules.push(
            serde_json::json!({"SrcIPs": [format!("100.{}.0.0/16", 64 + k)], "DstPorts": dst(22)}),
        );
    }
    let local = LocalNetworks::addresses([v4.parse().unwrap(), v6.parse().unwrap()]);
    Subject::new(
        "prefixes-100k",
        serde_json::Value::Array(rules).to_string(),
        local,
        0x100,
    )
}

/// `flows` repeated to a power-of-two length, so that a timing loop can cycle through them
/// with a mask instead of a division.
fn cycled_pow2(flows: &[Flow]) -> Vec<Flow> {
    let len = flows.len().max(1).next_power_of_two();
    flows.iter().cycle().take(len).copied().collect()
}

/// Times `lookup` over `flows` in order, one flow per iteration.
fn bench_flows(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    flows: &[Flow],
    lookup: impl Fn(&Flow) -> bool,
) {
    if flows.is_empty() {
        return;
    }
    let flows = cycled_pow2(flows);
    let mask = flows.len() - 1;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for k in 0..iters as usize {
                black_box(lookup(black_box(&flows[k & mask])));
            }
            start.elapsed()
        })
    });
}

fn time_lookups(c: &mut Criterion, group_name: &str, subject: &Subject, hot: bool) {
    let mut group = c.benchmark_group(group_name);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    let ours = |f: &Flow| subject.fast.check(f).is_allowed();
    let theirs = |f: &Flow| bart_allows(&subject.bart, f);
    bench_flows(&mut group, "aclc/allowed", &subject.allowed, ours);
    bench_flows(
        &mut group,
        "tailscale-rs/allowed",
        &subject.bart_allowed,
        theirs,
    );
    bench_flows(&mut group, "aclc/denied", &subject.denied, ours);
    bench_flows(
        &mut group,
        "tailscale-rs/denied",
        &subject.bart_denied,
        theirs,
    );
    if hot {
        let hot: Vec<Flow> = subject.allowed.first().copied().into_iter().collect();
        bench_flows(&mut group, "aclc/hot", &hot, ours);
        let hot: Vec<Flow> = subject.bart_allowed.first().copied().into_iter().collect();
        bench_flows(&mut group, "tailscale-rs/hot", &hot, theirs);
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    // ACLC_BENCH_SUBJECTS=sample,prefixes-100k (say) limits the filters, for a quick run or a
    // profile; all three by default.
    let wanted = std::env::var("ACLC_BENCH_SUBJECTS").ok();
    let wants = |name: &str| {
        wanted
            .as_deref()
            .is_none_or(|w| w.split(',').any(|n| n == name))
    };
    let sample = sample();
    let generated = if wants("generated") {
        generated()
    } else {
        None
    };
    let prefixes = if wants("prefixes-100k") {
        workload_dir(PRESET).map(|dir| prefixes_100k(&dir))
    } else {
        None
    };

    time_lookups(c, "matcher/sample", &sample, false);
    if let Some(generated) = &generated {
        time_lookups(c, "matcher/generated", generated, true);
    }

    let mut group = c.benchmark_group("matcher/build");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    for subject in std::iter::once(&sample).chain(&generated).chain(&prefixes) {
        group.bench_function(format!("aclc/{}", subject.name), |b| {
            b.iter(|| Matcher::new(black_box(&subject.parsed), &subject.local))
        });
        if subject.name == "generated" {
            group.bench_function("aclc/generated-json", |b| {
                b.iter(|| Matcher::from_json(black_box(&subject.json), &subject.local).unwrap())
            });
        }
        let rules = bart_rules(&subject.json);
        group.bench_function(format!("tailscale-rs/{}", subject.name), |b| {
            b.iter(|| build_bart(black_box(&rules)))
        });
    }
    group.finish();

    summary(&sample, generated.as_ref(), prefixes.as_ref());
}

/// Median nanoseconds per lookup over batches of distinct flows: five rounds of 300 ms, the
/// lowest round median kept (the machine is shared; a round that another process disturbed
/// says nothing about the matcher).
fn median_ns(flows: &[Flow], mut lookup: impl FnMut(&Flow) -> bool) -> f64 {
    if flows.is_empty() {
        return f64::NAN;
    }
    const BATCH: usize = 64;
    // Batches of consecutive flows, the list repeated to a multiple of the batch size.
    let cycled: Vec<Flow> = flows
        .iter()
        .cycle()
        .take(flows.len().div_ceil(BATCH) * BATCH)
        .copied()
        .collect();
    let mut batches = cycled.chunks_exact(BATCH).cycle();
    let mut best = f64::INFINITY;
    for _round in 0..5 {
        let mut per_batch = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline || per_batch.len() < 100 {
            let batch = batches.next().unwrap();
            let t = Instant::now();
            for flow in batch {
                black_box(lookup(black_box(flow)));
            }
            per_batch.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        per_batch.sort_by(f64::total_cmp);
        best = best.min(per_batch[per_batch.len() / 2]);
    }
    best
}

fn median_build_ms(mut build: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < 15 && (times.len() < 3 || started.elapsed() < Duration::from_secs(5)) {
        let t = Instant::now();
        build();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn verdict_allowed(v: Verdict) -> bool {
    v.is_allowed()
}

fn line(what: &str, value: f64, unit: &str, target: Option<f64>) {
    let check = match target {
        Some(t) if value <= t => format!("target <= {t} {unit}: met"),
        Some(t) => format!("target <= {t} {unit}: MISSED"),
        None => String::new(),
    };
    eprintln!("summary: {what:<46} {value:>10.1} {unit:<6} {check}");
}

fn summary(sample: &Subject, generated: Option<&Subject>, prefixes: Option<&Subject>) {
    let ours_allowed = median_ns(&sample.allowed, |f| verdict_allowed(sample.fast.check(f)));
    let ours_denied = median_ns(&sample.denied, |f| verdict_allowed(sample.fast.check(f)));
    let bart_allowed = median_ns(&sample.bart_allowed, |f| bart_allows(&sample.bart, f));
    let bart_denied = median_ns(&sample.bart_denied, |f| bart_allows(&sample.bart, f));
    line("sample aclc allowed p50", ours_allowed, "ns", Some(30.0));
    line("sample aclc denied p50", ours_denied, "ns", Some(25.0));
    line("sample tailscale-rs allowed p50", bart_allowed, "ns", None);
    line("sample tailscale-rs denied p50", bart_denied, "ns", None);
    line(
        "sample aclc/tailscale-rs allowed time ratio",
        ours_allowed / bart_allowed,
        "x",
        Some(0.1),
    );
    subject_summary(sample, None);
    for subject in generated.into_iter().chain(prefixes) {
        subject_summary(subject, Some((30.0, 150.0)));
    }
}

/// Lookup medians (hot, random allowed, random denied), memory and build time of a subject.
fn subject_summary(s: &Subject, targets: Option<(f64, f64)>) {
    let name = &s.name;
    if let Some((hot_target, random_target)) = targets {
        let hot: Vec<Flow> = s.allowed.first().copied().into_iter().collect();
        line(
            &format!("{name} aclc hot p50"),
            median_ns(&hot, |f| verdict_allowed(s.fast.check(f))),
            "ns",
            Some(hot_target),
        );
        line(
            &format!("{name} aclc allowed (random) p50"),
            median_ns(&s.allowed, |f| verdict_allowed(s.fast.check(f))),
            "ns",
            Some(random_target),
        );
        line(
            &format!("{name} aclc denied (random) p50"),
            median_ns(&s.denied, |f| verdict_allowed(s.fast.check(f))),
            "ns",
            Some(random_target),
        );
        let hot: Vec<Flow> = s.bart_allowed.first().copied().into_iter().collect();
        line(
            &format!("{name} tailscale-rs hot p50"),
            median_ns(&hot, |f| bart_allows(&s.bart, f)),
            "ns",
            None,
        );
        line(
            &format!("{name} tailscale-rs allowed p50"),
            median_ns(&s.bart_allowed, |f| bart_allows(&s.bart, f)),
            "ns",
            None,
        );
        line(
            &format!("{name} tailscale-rs denied p50"),
            median_ns(&s.bart_denied, |f| bart_allows(&s.bart, f)),
            "ns",
            None,
        );
        line(
            &format!("{name} reference allowed p50"),
            median_ns(&s.allowed[..s.allowed.len().min(256)], |f| {
                verdict_allowed(s.reference.check(f))
            }),
            "ns",
            None,
        );
    }
    line(
        &format!("{name} flows BartFilter gets wrong"),
        s.bart_wrong as f64,
        "flows",
        None,
    );
    let stats = s.fast.stats();
    eprintln!("summary: {name} matcher stats {stats:?}");
    line(
        &format!("{name} memory per source entry"),
        stats.heap_bytes as f64 / stats.source_entries.max(1) as f64,
        "bytes",
        Some(48.0),
    );
    let build_target = (s.name == "prefixes-100k").then_some(10.0);
    line(
        &format!("{name} build (parsed rules)"),
        median_build_ms(|| {
            black_box(Matcher::new(&s.parsed, &s.local));
        }),
        "ms",
        build_target,
    );
    line(
        &format!("{name} build (from JSON)"),
        median_build_ms(|| {
            black_box(Matcher::from_json(&s.json, &s.local).unwrap());
        }),
        "ms",
        None,
    );
    let rules = bart_rules(&s.json);
    line(
        &format!("{name} tailscale-rs build"),
        median_build_ms(|| {
            black_box(build_bart(&rules));
        }),
        "ms",
        None,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
