#!/usr/bin/env bash
# The C ABI's test (.ci/run calls it): checks that ffi/aclc.h is what cbindgen generates from
# the sources, builds aclc-ffi's static and shared libraries, compiles test.c with gcc
# against each, and runs both. Needs cbindgen (`cargo install cbindgen --locked`) and gcc.
# Honours CARGO_TARGET_DIR and PROFILE (default debug).
set -euo pipefail
cd "$(dirname "$0")/../../.."
target="${CARGO_TARGET_DIR:-target}"
profile="${PROFILE:-debug}"
out="$target/c-test"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

(cd ffi && cbindgen --quiet --config cbindgen.toml --output "$out/aclc.h")
if ! diff -u ffi/aclc.h "$out/aclc.h"; then
	echo "ffi/aclc.h is stale: regenerate it with (cd ffi && cbindgen --config cbindgen.toml --output aclc.h)" >&2
	exit 1
fi

flag=()
[[ "$profile" == release ]] && flag=(--release)
cargo build --locked -p aclc-ffi "${flag[@]}"
lib="$target/$profile"
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -Iffi)
gcc "${cflags[@]}" ffi/tests/c/test.c "$lib/libaclc_ffi.a" -lpthread -ldl -lm -o "$out/test-static"
gcc "${cflags[@]}" ffi/tests/c/test.c -L"$lib" -laclc_ffi -Wl,-rpath,"$(cd "$lib" && pwd)" -o "$out/test-shared"
echo "static:" && "$out/test-static" testdata/examples
echo "shared:" && "$out/test-shared" testdata/examples
