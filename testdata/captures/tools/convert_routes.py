#!/usr/bin/env python3
"""Older ROUTES-* recordings (compact extracts or verbatim) as schema-v1 cases, filters only."""
import json, os, sys
sys.path.insert(0, os.path.dirname(__file__))
src, out = sys.argv[1], sys.argv[2]
USERS = {"user1": "kratail2tid@passkey", "user-kris": "kristoffer@dalby.cc", "user-mon": "monitorpasskeykradalby@passkey"}
USER_LIST = [
    {"id": 1, "name": "kratail2tid", "email": "kratail2tid@passkey", "roles": ["owner", "admin"]},
    {"id": 2, "name": "kristoffer", "email": "kristoffer@dalby.cc", "roles": []},
    {"id": 3, "name": "monitorpasskeykradalby", "email": "monitorpasskeykradalby@passkey", "roles": []},
]
def load(p):
    t = open(p).read()
    return json.loads("\n".join(l for l in t.split("\n") if not l.lstrip().startswith("//")))
os.makedirs(os.path.join(out, "routes"), exist_ok=True)
for f in sorted(os.listdir(src)):
    r = load(os.path.join(src, f))
    policy = r.get("policy") or r["input"]["full_policy"]
    nodes = r.get("nodes") or r["topology"]["nodes"]
    topo = [{"name": k, "user": None if n.get("tags") else USERS.get(k), "tags": n.get("tags") or [],
             "ipv4": n["ipv4"], "ipv6": n["ipv6"], "routable_ips": n.get("routable_ips") or [],
             "approved_routes": n.get("approved_routes") or []} for k, n in nodes.items()]
    exp = {}
    for k, c in r["captures"].items():
        e = {"packet_filter_rules": c.get("packet_filter_rules") or [], "ssh_rules": []}
        nm = c.get("netmap")
        if nm:  # verbatim form
            c = {"self": nm.get("SelfNode"), "peers": {p["Name"]: p for p in nm.get("Peers") or []}}
        if c.get("self"):
            e["addresses"] = c["self"].get("Addresses") or []
            e["allowed_ips"] = c["self"].get("AllowedIPs") or []
        if c.get("peers") is not None:
            e["peers"] = {p.split(".")[0]: {"allowed_ips": v.get("AllowedIPs") or [], **({"primary_routes": v["PrimaryRoutes"]} if v.get("PrimaryRoutes") else {})} for p, v in c["peers"].items()}
        exp[k] = e
    case = {"schema_version": 1, "id": r["test_id"].lower().replace("_", "-"), "category": "routes",
            "description": "recording " + r["test_id"],
            "source": {"file": f, "captured_at": r.get("timestamp") or ""},
            "policy": {"format": "json", "text": json.dumps(policy, indent=2)},
            "tailnet": {"name": "kratail2tid@passkey", "dns": {}, "settings": {}},
            "topology": {"users": USER_LIST, "nodes": topo, "registration_order": [n["name"] for n in topo]},
            "expect": {"outcome": "accepted", "nodes": exp}}
    # Filters only: the registration order (HA primaries) and the peers' capabilities
    # were not recorded.
    case["expect"]["route_state_inconsistent"] = [
        "filters only: registration order and peers' capabilities not recorded"]
    json.dump(case, open(os.path.join(out, "routes", case["id"] + ".json"), "w"), indent=1)
