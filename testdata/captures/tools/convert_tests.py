#!/usr/bin/env python3
"""Recordings of policytest/sshtest scenarios (the lowercase, anonymised format) as schema-v1 cases."""
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(src)):
    r = json.load(open(os.path.join(src, f)))
    cat = r["category"]
    users = r["topology"]["users"]
    by_name = {u["name"]: u["email"] for u in users}
    ulist = [{"id": u["id"], "name": u["name"], "email": u["email"],
              "roles": ["admin", "owner"] if u["id"] == 1 else []} for u in users]
    nodes = []
    for name, n in r["topology"]["nodes"].items():
        nodes.append({"name": name, "user": None if n.get("tags") else by_name.get(n.get("user")),
                      "tags": n.get("tags") or [], "ipv4": n["ipv4"], "ipv6": n["ipv6"],
                      "routable_ips": n.get("routable_ips") or [], "approved_routes": n.get("approved_routes") or []})
    case = {"schema_version": 1, "id": r["test_id"], "category": cat, "description": r.get("description", ""),
            "source": {"file": r["test_id"], "captured_at": r.get("captured_at", "")},
            "policy": {"format": "json", "text": json.dumps(r["policy"], indent=2)},
            "tailnet": dict(r.get("tailnet") or {}, name="odin@example.com"),
            "topology": {"users": ulist, "nodes": nodes, "registration_order": [n["name"] for n in nodes]}}
    if r["api_response_code"] != 200:
        msg = (r.get("api_error") or {}).get("message", "?")
        case["expect"] = {"outcome": "rejected", "status": r["api_response_code"], "error": msg}
        if msg == "test(s) failed":
            case["expect"]["tests"] = "fail"
    else:
        case["expect"] = {"outcome": "accepted", "tests": "pass", "nodes": {}}
    os.makedirs(os.path.join(out, cat), exist_ok=True)
    json.dump(case, open(os.path.join(out, cat, r["test_id"] + ".json"), "w"), indent=1)
