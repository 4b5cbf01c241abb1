#!/usr/bin/env bash
# The matcher against the Tailscale client's own packet filter (tools/filter-diff/README.md):
# generates cases, runs them through the Go oracle (tailscale.com/wgengine/filter at the
# version go.mod pins, from the Go module proxy) and through aclc-matcher, and compares;
# and reads every compiled document with Tailscale's own wire types (tailcfg), strictly.
# Usage: tools/filter-diff/run.sh [RANDOM_CASES [SEED [FLOWS_PER_COMPILED_NODE]]]
set -euo pipefail
cd "$(dirname "$0")/../.."

cases="${1:-2000}"
seed="${2:-1}"
flows="${3:-40}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --locked --release -q -p aclc --bin aclc
cargo build --locked --release -q -p aclc-matcher --example filter_verdicts
(cd tools/filter-diff && go build -o "$work/oracle" .)

python3 tools/filter-diff/gen.py random "$seed" "$cases" >"$work/cases.jsonl"
python3 tools/filter-diff/gen.py shapes >>"$work/cases.jsonl"
python3 tools/filter-diff/gen.py compiled "$seed" "$flows" "$target/release/aclc" "$work/compiled" \
	>>"$work/cases.jsonl"
# aclc's output read by Tailscale's own types, every field strictly.
"$work/oracle" -wire "$work/compiled"

"$work/oracle" <"$work/cases.jsonl" >"$work/go.jsonl"
"$target/release/examples/filter_verdicts" <"$work/cases.jsonl" >"$work/aclc.jsonl"
echo "filter-diff: $(wc -l <"$work/cases.jsonl") cases (seed $seed)"
python3 tools/filter-diff/compare.py "$work/cases.jsonl" "$work/go.jsonl" "$work/aclc.jsonl" \
	"${FILTER_DIFF_OUT:-$work/differences.jsonl}"
