//! The WebAssembly exports: `aclc_alloc`, `aclc_free` and `aclc_call` over one engine per
//! instance, so a host needs no imports and no pointer to an engine.

use std::sync::Mutex;

use aclc_api::Engine;

/// The instance's engine, made on the first call (WebAssembly has one thread here; the lock
/// only satisfies `static`).
static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

/// A buffer of `len` bytes for the host to write a request into; released with
/// [`aclc_free`]. Null (0) when `len` is 0.
#[no_mangle]
pub extern "C" fn aclc_alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::null_mut();
    }
    super::into_raw(vec![0; len]).0
}

/// Release a buffer from [`aclc_alloc`] or a response from [`aclc_call`].
///
/// # Safety
/// `data` and `len` came from one of them, released once.
#[no_mangle]
pub unsafe extern "C" fn aclc_free(data: *mut u8, len: usize) {
    // SAFETY: passed on from the caller's promise.
    unsafe { super::free_raw(data, len) }
}

/// Answer the request of `len` bytes at `data` (the host still frees it); the response's
/// address in the high 32 bits and its length in the low 32 bits, to read and then release
/// with [`aclc_free`].
///
/// # Safety
/// `data` points to `len` readable bytes of this instance's memory.
#[no_mangle]
pub unsafe extern "C" fn aclc_call(data: *const u8, len: usize) -> u64 {
    // SAFETY: the caller's promise.
    let request = unsafe { super::bytes(data, len) };
    let mut guard = match ENGINE.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let response = guard.get_or_insert_with(Engine::new).call(request);
    drop(guard);
    let (buffer, len) = super::into_raw(response.into_bytes());
    ((buffer as usize as u64) << 32) | len as u64
}
