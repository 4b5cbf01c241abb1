//! The WebAssembly exports: `aclc_alloc`, `aclc_free` and `aclc_call` over one engine per
//! instance, so a host needs no imports and no pointer to an engine; and the module's
//! allocator, which grows the memory geometrically (see [`GrowingHandler`]).

use std::alloc::Layout;
use std::sync::Mutex;

use talc::locking::AssumeUnlockable;
use talc::{OomHandler, Span, Talc, Talck};

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

/// The module's allocator: talc, taking more memory through [`GrowingHandler`].
#[global_allocator]
static ALLOCATOR: Talck<AssumeUnlockable, GrowingHandler> = Talc::new(GrowingHandler {
    heap: Span::empty(),
})
.lock();

/// WebAssembly's page: 64 KiB.
const PAGE: usize = 64 * 1024;

/// The least the memory grows by at a time: 1 MiB.
const MIN_GROWTH_PAGES: usize = 16;

/// Grows the memory by half its size (at least what the allocation needs, at least 1 MiB)
/// when the allocator runs out. Allocators that grow by what one allocation needs (Rust's
/// default dlmalloc, talc's own `WasmHandler`) make thousands of `memory.grow` calls while
/// compiling `large`, and V8 takes about 0.6 ms for each: the first compile in an instance
/// took 3.5x as long as the next. Growing geometrically takes some twenty calls to reach the
/// same size (ARCHITECTURE.md, "Decisions").
struct GrowingHandler {
    /// The memory the allocator manages, extended in place while it stays contiguous.
    heap: Span,
}

// SAFETY: `wasm32-unknown-unknown` without the atomics feature runs one thread: the handler
// is never used from two threads (talc's own `WasmHandler` makes the same assumption).
unsafe impl Send for GrowingHandler {}

impl OomHandler for GrowingHandler {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let needed = (layout.size() + 8).max(layout.align() * 2).div_ceil(PAGE);
        let current = core::arch::wasm32::memory_size::<0>();
        let mut delta = needed.max(current / 2).max(MIN_GROWTH_PAGES);
        // Ask for less (never less than needed) when the host refuses that much.
        let previous = loop {
            let previous = core::arch::wasm32::memory_grow::<0>(delta);
            if previous != usize::MAX {
                break previous;
            }
            if delta == needed {
                return Err(());
            }
            delta = (delta / 2).max(needed);
        };
        let base = (previous * PAGE) as *mut u8;
        let acme = base.wrapping_add(delta * PAGE);
        if let Some((heap_base, heap_acme)) = talc.oom_handler.heap.get_base_acme() {
            if heap_acme == base {
                // SAFETY: the new pages follow the heap talc manages, and belong to nobody.
                talc.oom_handler.heap =
                    unsafe { talc.extend(talc.oom_handler.heap, Span::new(heap_base, acme)) };
                return Ok(());
            }
        }
        // SAFETY: the new pages were just grown and belong to nobody.
        talc.oom_handler.heap = unsafe { talc.claim(Span::new(base, acme)) }?;
        Ok(())
    }
}
