#!/usr/bin/env bash
# Run one fuzz target (or all of them, one after another) for a given time, and print how
# many inputs it executed and how long it ran without a crash.
#
#   fuzz/run.sh TARGET SECONDS      e.g. fuzz/run.sh compile 1800
#   fuzz/run.sh all SECONDS         every target in turn, SECONDS each
#
# Needs a nightly toolchain (rustup) and cargo-fuzz, which it installs when missing. The
# corpus is seeded from testdata/ (seed.sh) before each run; crashes land in
# fuzz/artifacts/TARGET/. Environment: FUZZ_SANITIZER (default `none`: the workspace forbids
# `unsafe`, and without ASan a run executes several times more inputs), FUZZ_TIMEOUT (seconds
# one input may take before it counts as a hang, default 10), FUZZ_RSS_MB (memory limit,
# default 2048), FUZZ_ARGS (more libFuzzer flags), CARGO_TARGET_DIR (honoured).
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(parse format matcher compile tests inventory render diff engine api)
usage() {
	echo "usage: $0 TARGET|all SECONDS   (targets: ${TARGETS[*]})" >&2
	exit 2
}
(($# == 2)) || usage
target=$1
seconds=$2
[[ $seconds =~ ^[0-9]+$ ]] || usage

if ! cargo +nightly --version >/dev/null 2>&1; then
	echo "run.sh: a nightly toolchain is needed: rustup toolchain install nightly" >&2
	exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "run.sh: installing cargo-fuzz" >&2
	cargo install cargo-fuzz --locked
fi

sanitizer=${FUZZ_SANITIZER:-none}
target_dir=()
if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
	target_dir=(--target-dir "$CARGO_TARGET_DIR")
fi

run_one() {
	local name=$1 log status start end runs
	./seed.sh "$name" >/dev/null
	mkdir -p "artifacts/$name" logs
	cargo +nightly fuzz build "${target_dir[@]}" -s "$sanitizer" "$name"
	log="logs/$name.log"
	echo "==> $name for ${seconds}s (log: fuzz/$log)"
	start=$(date +%s)
	set +e
	# shellcheck disable=SC2086
	cargo +nightly fuzz run "${target_dir[@]}" -s "$sanitizer" "$name" -- \
		-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
		-rss_limit_mb="${FUZZ_RSS_MB:-2048}" -print_final_stats=1 \
		-artifact_prefix="artifacts/$name/" ${FUZZ_ARGS:-} >"$log" 2>&1
	status=$?
	set -e
	end=$(date +%s)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if ((status == 0)); then
		echo "$name: ${runs:-?} executions in $((end - start))s, no crash"
	else
		echo "$name: FAILED (exit $status) after $((end - start))s, ${runs:-?} executions; see fuzz/$log"
		grep -E 'panicked at|ERROR: libFuzzer|Test unit written to|SUMMARY' "$log" | head -8 || true
	fi
	return "$status"
}

if [[ $target == all ]]; then
	failed=0
	for name in "${TARGETS[@]}"; do
		run_one "$name" || failed=1
	done
	exit "$failed"
fi
printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$target" || usage
run_one "$target"
