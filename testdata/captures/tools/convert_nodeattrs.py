#!/usr/bin/env python3
"""Newer nodeattrs recordings (extracts: the policy, the topology and, per node, its filter,
addresses, CapMap, SSH rules and peers) as schema-v1 cases, compared in full.

The recordings' topology names users without roles; the corpus' nodeattrs cases of the same
tailnet (odin, thor, freya; eight nodes) give the roles and the registration order, read
from the corpus case given as the third argument, and the nodes' addresses must agree."""
import json, os, sys

src, out, base_path = sys.argv[1], sys.argv[2], sys.argv[3]
base = json.load(open(base_path))
users = base["topology"]["users"]
order = base["topology"]["registration_order"]
base_nodes = {n["name"]: n for n in base["topology"]["nodes"]}
os.makedirs(os.path.join(out, "nodeattrs"), exist_ok=True)
by_name = {u["name"]: u["email"] for u in users}

for f in sorted(os.listdir(src)):
    if not f.endswith(".json"):
        continue
    r = json.load(open(os.path.join(src, f)))
    nodes = r["topology"]["nodes"]
    topo = []
    for name in sorted(nodes):
        n = nodes[name]
        node = {"approved_routes": n.get("approved_routes") or [], "ipv4": n["ipv4"],
                "ipv6": n["ipv6"], "name": name, "routable_ips": n.get("routable_ips") or [],
                "tags": n.get("tags") or [], "user": by_name.get(n["user"]) if n.get("user") else None}
        b = base_nodes.get(name)
        if b is None or (b["ipv4"], b["ipv6"]) != (node["ipv4"], node["ipv6"]):
            sys.exit(f"{f}: node {name} differs from the base tailnet")
        topo.append(node)
    tailnet = dict(r["tailnet"])
    tailnet.setdefault("name", "odin@example.com")
    case = {"schema_version": 1, "id": r["test_id"], "category": "nodeattrs",
            "description": r.get("description", ""),
            "source": {"captured_at": r.get("captured_at", ""),
                       "file": "nodeattrs_results/" + r["test_id"] + ".hujson"},
            "policy": {"format": "json", "text": json.dumps(r["full_policy"], indent=4)},
            "tailnet": tailnet,
            "topology": {"nodes": topo, "registration_order": order, "users": users},
            "notes": []}
    code = r.get("api_response_code") or 200
    if r.get("error") or code != 200:
        body = r.get("api_response_body") or {}
        msg = body.get("message") if isinstance(body, dict) else str(body)
        case["expect"] = {"error": msg, "outcome": "rejected", "status": code}
    else:
        exp = {}
        for name, c in r["captures"].items():
            e = {"addresses": c["addresses"], "allowed_ips": c["allowed_ips"],
                 "cap_map": c.get("cap_map") or {},
                 "packet_filter_rules": c.get("packet_filter_rules") or [],
                 "peers": {}, "ssh_rules": c.get("ssh_rules") or []}
            if c.get("primary_routes"):
                e["primary_routes"] = c["primary_routes"]
            for p, v in sorted((c.get("peers") or {}).items()):
                pe = {"allowed_ips": v["allowed_ips"]}
                if v.get("primary_routes"):
                    pe["primary_routes"] = v["primary_routes"]
                if v.get("cap_map"):
                    pe["cap_map"] = v["cap_map"]
                e["peers"][p] = pe
            exp[name] = e
        case["expect"] = {"nodes": exp, "outcome": "accepted"}
    with open(os.path.join(out, "nodeattrs", case["id"] + ".json"), "w") as fh:
        json.dump(case, fh, indent=1, sort_keys=True)
