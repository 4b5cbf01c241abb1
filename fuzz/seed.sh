#!/usr/bin/env bash
# Seed the fuzz corpora from testdata/: writes fuzz/corpus/<target>/ (git-ignored) from the
# conformance cases, testdata/features and testdata/examples. Idempotent: files are named
# by content hash. Usage: fuzz/seed.sh [TARGET...] (default: every target).
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
((${#targets[@]})) || targets=(parse format matcher compile tests inventory render diff engine api)
python3 - "${targets[@]}" <<'PY'
import hashlib, json, pathlib, sys

root = pathlib.Path("..") / "testdata"
corpus = pathlib.Path("corpus")

def cases():
    for path in sorted((root / "conformance" / "cases").rglob("*.json")):
        case = json.loads(path.read_text())
        inventory = dict(case.get("topology") or {})
        inventory["tailnet"] = case.get("tailnet") or {}
        yield case, case["policy"]["text"], json.dumps(inventory)

def extra():
    """Policies of testdata/features and examples, with the inventory they go with."""
    features = root / "features"
    for policy in sorted(features.glob("*.hujson")):
        inv = "posture-inventory.json" if "posture" in policy.name else "inventory.json"
        yield policy.read_text(), (features / inv).read_text()
    examples = root / "examples"
    for name in ("policy.hujson", "invalid.hujson"):
        yield (examples / name).read_text(), (examples / "inventory.json").read_text()

def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)

pairs = [(p, i) for _, p, i in cases()] + list(extra())
for target in sys.argv[1:]:
    if target in ("parse", "format", "render"):
        for policy, _ in pairs:
            write(target, policy)
    elif target in ("compile", "tests", "diff", "engine", "api"):
        for policy, inventory in pairs:
            write(target, policy.encode() + b"\0" + inventory.encode())
    elif target == "inventory":
        for _, inventory in pairs:
            write(target, inventory)
    elif target == "matcher":
        # Mode byte 0: the rest is a filter as JSON; the nodes' expected filters.
        for case, _, _ in cases():
            nodes = (case.get("expect") or {}).get("nodes") or {}
            for node in nodes.values():
                rules = node.get("packet_filter_rules")
                if rules:
                    write(target, b"\0" + json.dumps(rules).encode())
    else:
        sys.exit(f"seed.sh: unknown target {target}")
    print(f"{target}: {len(list((corpus / target).iterdir()))} files in fuzz/corpus/{target}")
PY
