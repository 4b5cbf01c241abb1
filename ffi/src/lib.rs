//! aclc's JSON API ([`aclc_api::Engine`]) for hosts that are not Rust: a C ABI (this crate
//! builds `libaclc_ffi.a`, `libaclc_ffi.so` and is described by the generated `aclc.h`) and,
//! built for `wasm32-unknown-unknown`, a WebAssembly module with no imports that the Go and
//! npm packages load.
//!
//! This is the only crate of the workspace with `unsafe` code, and the reason it needs it:
//! a host passes requests as a pointer and a length, and takes back a buffer it must later
//! hand back to be freed. Turning those raw pointers into slices (and back into the `Box`
//! they came from) cannot be expressed in safe Rust. Every `unsafe` block is small and says
//! what the caller promised; everything else (parsing, checking, compiling, the JSON) is the
//! safe `aclc-api` crate. No panic crosses the boundary: `Engine::call` catches and reports
//! them as JSON where the target unwinds (native), and the WebAssembly build aborts (traps)
//! on a panic, which the host sees as an error of the call.

use std::ptr;

use aclc_api::Engine;

#[cfg(target_arch = "wasm32")]
mod wasm;

/// An embedding: the policies loaded through it, by handle. Created by [`aclc_engine_new`],
/// destroyed by [`aclc_engine_free`]. Not safe to share between threads without a lock.
pub struct AclcEngine {
    engine: Engine,
}

/// A new engine, to be released with [`aclc_engine_free`]. Never null.
#[no_mangle]
pub extern "C" fn aclc_engine_new() -> *mut AclcEngine {
    Box::into_raw(Box::new(AclcEngine {
        engine: Engine::new(),
    }))
}

/// Release an engine and every policy loaded through it. Null is ignored.
///
/// # Safety
/// `engine` is null or a pointer returned by [`aclc_engine_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn aclc_engine_free(engine: *mut AclcEngine) {
    if !engine.is_null() {
        // SAFETY: the caller passes a pointer from `aclc_engine_new` (a `Box`), once.
        drop(unsafe { Box::from_raw(engine) });
    }
}

/// Answer one JSON request (`request_len` bytes of UTF-8 at `request`, not NUL-terminated);
/// the response is written to a new buffer of `*response_len` bytes, not NUL-terminated,
/// to be released with [`aclc_response_free`]. Returns null only when `engine` or
/// `response_len` is null.
///
/// # Safety
/// `engine` comes from [`aclc_engine_new`] and is not used by another thread meanwhile;
/// `request` points to `request_len` readable bytes (it may be null when `request_len` is
/// 0); `response_len` points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn aclc_engine_call(
    engine: *mut AclcEngine,
    request: *const u8,
    request_len: usize,
    response_len: *mut usize,
) -> *mut u8 {
    if engine.is_null() || response_len.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the caller promises `request_len` readable bytes at `request`.
    let request = unsafe { bytes(request, request_len) };
    // SAFETY: `engine` is a live engine, not used elsewhere meanwhile.
    let engine = unsafe { &mut *engine };
    let (buffer, len) = into_raw(engine.engine.call(request).into_bytes());
    // SAFETY: the caller promises `response_len` is writable.
    unsafe { response_len.write(len) };
    buffer
}

/// Release a response of [`aclc_engine_call`]. Null is ignored.
///
/// # Safety
/// `response` and `response_len` are what one [`aclc_engine_call`] returned, released once.
#[no_mangle]
pub unsafe extern "C" fn aclc_response_free(response: *mut u8, response_len: usize) {
    // SAFETY: passed on from the caller's promise.
    unsafe { free_raw(response, response_len) }
}

/// The request bytes at `data` (empty when `len` is 0).
///
/// # Safety
/// `data` points to `len` readable bytes that outlive the returned slice.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || data.is_null() {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(data, len) }
    }
}

/// Bytes as a raw buffer and its length (exactly its length: a boxed slice).
fn into_raw(bytes: Vec<u8>) -> (*mut u8, usize) {
    let boxed: Box<[u8]> = bytes.into_boxed_slice();
    let len = boxed.len();
    (Box::into_raw(boxed).cast::<u8>(), len)
}

/// Release a buffer made by [`into_raw`] (or `aclc_alloc` in WebAssembly).
///
/// # Safety
/// `data` and `len` came from one [`into_raw`] (a boxed slice of `len` bytes), released once.
unsafe fn free_raw(data: *mut u8, len: usize) {
    if data.is_null() {
        return;
    }
    let slice = ptr::slice_from_raw_parts_mut(data, len);
    // SAFETY: the caller's promise: this is the boxed slice `into_raw` gave away.
    drop(unsafe { Box::from_raw(slice) });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn call(engine: *mut AclcEngine, request: &str) -> String {
        let mut len = 0usize;
        // SAFETY: a live engine, a live request, a writable length.
        let out = unsafe { aclc_engine_call(engine, request.as_ptr(), request.len(), &mut len) };
        assert!(!out.is_null());
        // SAFETY: `aclc_call` returned `len` bytes at `out`.
        let text = String::from_utf8(unsafe { bytes(out, len) }.to_vec()).unwrap();
        // SAFETY: released once.
        unsafe { aclc_response_free(out, len) };
        text
    }

    #[test]
    fn a_request_round_trips_through_the_c_abi() {
        let engine = aclc_engine_new();
        let info = call(engine, r#"{"version":1,"op":"info"}"#);
        assert!(info.starts_with(r#"{"version":1,"aclc":""#), "{info}");
        let bad = call(engine, "not json");
        assert!(bad.contains(r#""kind":"bad_request""#), "{bad}");
        let empty = call(engine, "");
        assert!(empty.contains(r#""error""#), "{empty}");
        // SAFETY: from `aclc_engine_new`, freed once.
        unsafe { aclc_engine_free(engine) };
    }

    /// The calls a control server makes, through the raw ABI: under Miri (CI runs this
    /// crate's tests there) every buffer handed out and back, the engine's box and the
    /// compile behind them are checked for undefined behaviour, not only for their output.
    #[test]
    fn an_engine_takes_events_through_the_c_abi() {
        let engine = aclc_engine_new();
        let new = r#"{"version":1,"op":"engine_new",
            "policy":"{\"tagOwners\":{\"tag:web\":[\"alice@\"]},\"grants\":[{\"src\":[\"alice@\"],\"dst\":[\"tag:web\"],\"ip\":[\"tcp:443\"]}]}",
            "state":{"users":[{"id":1,"login":"alice@"}],"nodes":[
                {"id":10,"name":"laptop","user":1,"ipv4":"100.64.0.1","ipv6":"fd7a:115c:a1e0::1"},
                {"id":11,"name":"web","tags":["tag:web"],"ipv4":"100.64.0.2"}]}}"#;
        let created = call(engine, new);
        assert!(created.contains(r#""handle":1"#), "{created}");
        let apply = r#"{"version":1,"op":"engine_apply","handle":1,"event":{"type":"upsert_node",
            "node":{"id":12,"name":"phone","user":1,"ipv6":"fd7a:115c:a1e0::3"}}}"#;
        let changes = call(engine, apply);
        assert!(
            changes.contains(r#""name":"phone","added":true"#),
            "{changes}"
        );
        assert!(changes.contains(r#""name":"web""#), "{changes}");
        let map = call(
            engine,
            r#"{"version":1,"op":"engine_map","handle":1,"node":"web"}"#,
        );
        assert!(map.contains("fd7a:115c:a1e0::3"), "{map}");
        let freed = call(engine, r#"{"version":1,"op":"free","handle":1}"#);
        assert!(freed.contains(r#""freed":1"#), "{freed}");
        // A zero-length request at a pointer that is not null is read as empty, not past it.
        let mut len = 0usize;
        let byte = [b'{'];
        // SAFETY: a live engine, one readable byte of which none is read, a writable length.
        let out = unsafe { aclc_engine_call(engine, byte.as_ptr(), 0, &mut len) };
        // SAFETY: `aclc_engine_call` returned `len` bytes at `out`.
        let text = String::from_utf8(unsafe { bytes(out, len) }.to_vec()).unwrap();
        assert!(text.contains(r#""error""#), "{text}");
        // SAFETY: released once.
        unsafe { aclc_response_free(out, len) };
        // SAFETY: from `aclc_engine_new`, freed once.
        unsafe { aclc_engine_free(engine) };
    }

    #[test]
    fn null_arguments_are_refused_not_dereferenced() {
        let mut len = 0usize;
        // SAFETY: null engine is checked first.
        let out = unsafe { aclc_engine_call(ptr::null_mut(), ptr::null(), 0, &mut len) };
        assert!(out.is_null());
        // SAFETY: null is ignored.
        unsafe {
            aclc_engine_free(ptr::null_mut());
            aclc_response_free(ptr::null_mut(), 0);
        }
    }
}
