#!/usr/bin/env python3
"""Dependency policy for aclc (what cargo-deny's `licenses`, `sources` and `bans` checks do).

- Licences: every crate in the lock file (normal, build and dev dependencies) must be usable
  under the allow-list below; an SPDX expression passes when it can be satisfied with allowed
  licences (`MIT OR Apache-2.0`, `(MIT OR Apache-2.0) AND Unicode-3.0`).
- Sources: crates come from crates.io or the workspace; no git dependencies.
- Yanked versions: each locked version is looked up in the crates.io sparse index (the
  registry this machine reaches); a yanked version fails the check.

Advisories (RustSec) are not checked: their database is not served by any registry this
project's machines reach. Run from the repository root: `python3 .ci/deps.py`.
"""

import concurrent.futures
import json
import re
import subprocess
import sys
import urllib.request

ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause", "BSD-3-Clause",
    "ISC", "Zlib", "0BSD", "CC0-1.0", "Unicode-3.0", "Unicode-DFS-2016", "BSL-1.0",
    "Unlicense", "MPL-2.0", "MIT-0",
}


def satisfiable(expr: str) -> bool:
    """True when the SPDX expression can be met with ALLOWED licences."""
    tokens = re.findall(r"\(|\)|[A-Za-z0-9.\-+]+(?: WITH [A-Za-z0-9.\-]+)?", expr.replace("/", " OR "))
    pos = 0

    def parse_or():
        nonlocal pos
        value = parse_and()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = parse_and() or value
        return value

    def parse_and():
        nonlocal pos
        value = parse_atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = parse_atom() and value
        return value

    def parse_atom():
        nonlocal pos
        if pos >= len(tokens):
            return False
        token = tokens[pos]
        pos += 1
        if token == "(":
            value = parse_or()
            pos += 1  # ")"
            return value
        return token in ALLOWED

    result = parse_or()
    return result and pos == len(tokens)


def index_path(name: str) -> str:
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


def yanked(package) -> bool:
    url = "https://index.crates.io/" + index_path(package["name"])
    with urllib.request.urlopen(url, timeout=30) as response:
        for line in response.read().decode().splitlines():
            entry = json.loads(line)
            if entry.get("vers") == package["version"]:
                return bool(entry.get("yanked"))
    return False


def main() -> int:
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    workspace = set(meta["workspace_members"])
    problems = []
    registry = []
    for package in meta["packages"]:
        if package["id"] in workspace:
            continue
        source = package.get("source") or ""
        if not source.startswith("registry+https://github.com/rust-lang/crates.io-index") \
                and not source.startswith("sparse+https://index.crates.io/"):
            problems.append(f"{package['name']} {package['version']}: source {source or 'path'} is not crates.io")
            continue
        registry.append(package)
        licence = package.get("license")
        if not licence:
            problems.append(f"{package['name']} {package['version']}: no SPDX licence (license-file only)")
        elif not satisfiable(licence):
            problems.append(f"{package['name']} {package['version']}: licence {licence!r} is not allowed")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            for package, is_yanked in zip(registry, pool.map(yanked, registry)):
                if is_yanked:
                    problems.append(f"{package['name']} {package['version']}: yanked on crates.io")
        yank_note = "none yanked"
    except OSError as error:  # the index could not be reached: say so, do not pass silently
        problems.append(f"could not read the crates.io index to check for yanked versions: {error}")
        yank_note = "index unreachable"
    for problem in problems:
        print(f"deps: {problem}", file=sys.stderr)
    print(f"deps: {len(registry)} crates from crates.io, licences allowed, {yank_note}"
          if not problems else f"deps: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
