#!/usr/bin/env python3
"""Record what the native `aclc` prints for every conformance case, for the bindings' tests.

For each case of `testdata/conformance/cases`, runs `aclc check POLICY --inventory INVENTORY
--format json` and `aclc compile POLICY --inventory INVENTORY --format json` (as
`cli/tests/conformance.rs` and `check.py` do), and `aclc test` likewise, and writes one JSON
line: `{"id", "name", "policy", "inventory", "check", "compile", "test"}`, where `check`,
`compile` and `test` are the documents printed on stdout. The Go and npm packages' tests make the same calls through
WebAssembly and must get the same documents.

Usage: corpus_fixture.py --aclc target/debug/aclc --out target/bindings/corpus.jsonl
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_case(aclc: str, path: pathlib.Path) -> dict:
    case = json.loads(path.read_text(encoding="utf-8"))
    suffix = "hujson" if case["policy"]["format"] == "hujson" else "json"
    name = f"policy.{suffix}"
    inventory = dict(case["topology"])
    inventory["tailnet"] = case.get("tailnet", {})
    record = {"id": case["id"], "name": name, "policy": case["policy"]["text"],
              "inventory": inventory}
    with tempfile.TemporaryDirectory(prefix="aclc-fixture-") as scratch:
        (pathlib.Path(scratch) / name).write_text(case["policy"]["text"], encoding="utf-8")
        (pathlib.Path(scratch) / "inventory.json").write_text(json.dumps(inventory), encoding="utf-8")
        for mode in ("check", "compile", "test"):
            out = subprocess.run(
                [aclc, mode, name, "--inventory", "inventory.json", "--format", "json"],
                cwd=scratch, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
            record[mode] = json.loads(out.stdout or b"null")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aclc", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    aclc = os.path.abspath(args.aclc)
    cases = sorted((ROOT / "testdata" / "conformance" / "cases").glob("*/*.json"))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        records = list(pool.map(lambda p: run_case(aclc, p), cases))
    with open(out, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"corpus fixture: {len(records)} cases -> {out}", file=sys.stderr)
    return 0 if len(records) > 600 else 1


if __name__ == "__main__":
    sys.exit(main())
