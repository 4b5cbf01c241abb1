#!/usr/bin/env python3
"""Convert headscale's older uppercase recordings (ACL-*, SSH-*, GRANT-*) of Tailscale's
control server into conformance schema-v1 cases, comparing filters (and SSH rules) only:
the older recordings hold no peers."""
import json, os, re, sys

USERS = {  # node name -> owner (the recordings' whois answers)
    "user1": "kratail2tid@passkey",
    "user-kris": "kristoffer@dalby.cc",
    "user-mon": "monitorpasskeykradalby@passkey",
}
USER_LIST = [
    {"id": 1, "name": "kratail2tid", "email": "kratail2tid@passkey", "roles": ["owner", "admin"]},
    {"id": 2, "name": "kristoffer", "email": "kristoffer@dalby.cc", "roles": []},
    {"id": 3, "name": "monitorpasskeykradalby", "email": "monitorpasskeykradalby@passkey", "roles": []},
]

def load(path):
    text = open(path, encoding="utf-8").read()
    body = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))
    return json.loads(body)

BASE = None  # (policy without rules, nodes) of the older tailnet, from an ACL recording

def ssh_to_acl_shape(raw):
    """SSH recordings hold only the ssh section and each node's rules: the rest of the
    policy and the nodes' addresses are those of the same tailnet's ACL recordings."""
    pol, nodes = BASE
    pol = {k: v for k, v in pol.items() if k not in ("acls", "grants", "ssh")}
    pol["ssh"] = raw["ssh_section"]
    # The recordings hold no packet filters: an empty acls list, so none is expected.
    pol["acls"] = []
    return {
        "test_id": raw["test_id"], "policy": pol,
        "nodes": {n: nodes[n] for n in raw["nodes"]},
        "captures": {n: {"ssh_rules": v.get("rules") or []} for n, v in raw["nodes"].items()},
    }

def convert(raw, category):
    if "ssh_section" in raw:
        raw = ssh_to_acl_shape(raw)
    tid = raw["test_id"]
    policy = raw.get("policy") or raw["input"]["full_policy"]
    code = raw.get("api_response_code", (raw.get("input") or {}).get("api_response_code", 200))
    if raw.get("error") is True:
        code = 400
    nodes = raw.get("nodes") or (raw.get("topology") or {}).get("nodes") or BASE[1]
    topo = []
    for name, n in nodes.items():
        routable = n.get("routable_ips")
        approved = n.get("approved_routes")
        if routable is None and name == "subnet-router":
            routable = approved = ["10.33.0.0/16"]
        topo.append({
            "name": name,
            "user": None if n.get("tags") else USERS.get(name),
            "tags": n.get("tags") or [],
            "ipv4": n["ipv4"], "ipv6": n["ipv6"],
            "routable_ips": routable or [], "approved_routes": approved or [],
        })
    case = {
        "schema_version": 1, "id": tid.lower() + "-old", "category": category,
        "description": "older recording " + tid
        + (" (SSH rules only: an empty acls list added, the recording holds no filters)"
           if category == "ssh" else ""),
        "source": {"file": tid, "captured_at": raw.get("timestamp") or raw.get("captured_at") or ""},
        "policy": {"format": "json", "text": json.dumps(policy, indent=2)},
        "tailnet": {"name": "kratail2tid@passkey", "dns": {}, "settings": {}},
        "topology": {"users": USER_LIST, "nodes": topo, "registration_order": [n["name"] for n in topo]},
    }
    if code != 200 or "captures" not in raw:
        err = raw.get("api_error") or (raw.get("input") or {}).get("api_response_body") or ""
        if isinstance(err, dict):
            err = err.get("message", json.dumps(err))
        case["expect"] = {"outcome": "rejected", "status": code, "error": err or "?"}
        return case
    caps = raw["captures"]
    expect_nodes = {}
    for name in nodes:
        c = caps.get(name) or {}
        if "packet_filter_rules" not in c and "ssh_rules" not in c:
            continue
        expect_nodes[name] = {
            "packet_filter_rules": c.get("packet_filter_rules") or [],
            "ssh_rules": c.get("ssh_rules") or [],
        }
    case["expect"] = {"outcome": "accepted", "nodes": expect_nodes,
                      "route_state_inconsistent": ["filters only: the older recordings hold no peers"]}
    return case

def main():
    global BASE
    src, out = sys.argv[1], sys.argv[2]
    base = load(os.path.join(src, "acl", "ACL-A04.hujson"))
    BASE = (base["input"]["full_policy"], base["topology"]["nodes"])
    for cat in ("acl", "ssh", "grant"):
        d = os.path.join(src, cat)
        if not os.path.isdir(d):
            continue
        os.makedirs(os.path.join(out, cat), exist_ok=True)
        for f in sorted(os.listdir(d)):
            try:
                case = convert(load(os.path.join(d, f)), cat)
            except Exception as e:
                print("skip", f, e, file=sys.stderr)
                continue
            with open(os.path.join(out, cat, case["id"] + ".json"), "w") as fh:
                json.dump(case, fh, indent=1)
main()
