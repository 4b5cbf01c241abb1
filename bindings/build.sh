#!/usr/bin/env bash
# Build what the bindings need and are tested against, from the repository's sources:
#   - the WebAssembly module (aclc-ffi for wasm32-unknown-unknown, profile `wasm`), copied to
#     bindings/go/aclc.wasm (go:embed) and bindings/js/aclc.wasm (the npm package);
#   - the corpus fixture: what the native `aclc` prints for every conformance case
#     (target/bindings/corpus.jsonl), which the Go and npm tests must reproduce.
# Neither is committed (see .gitignore): run this before `go test` or `npm test`.
# Needs the rustup target wasm32-unknown-unknown. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --locked -p aclc-ffi --target wasm32-unknown-unknown --profile wasm
wasm="$target/wasm32-unknown-unknown/wasm/aclc_ffi.wasm"
cp "$wasm" bindings/go/aclc.wasm
cp "$wasm" bindings/js/aclc.wasm
echo "bindings: $(wc -c <"$wasm") bytes of WebAssembly -> bindings/go, bindings/js"

if [[ "${ACLC_SKIP_FIXTURE:-}" != 1 ]]; then
	aclc="${ACLC_BIN:-$target/debug/aclc}"
	if [[ -z "${ACLC_BIN:-}" ]]; then
		cargo build --locked -p aclc
	fi
	mkdir -p target/bindings
	python3 bindings/corpus_fixture.py --aclc "$aclc" --out target/bindings/corpus.jsonl
fi
