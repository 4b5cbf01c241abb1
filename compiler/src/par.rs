//! Work split over the machine's cores where it has more than one (never in the browser, which
//! has no threads): the compile's independent phases, per-node loops, the engine's
//! fingerprints.

/// How many threads to split work over: the cores, at most eight. Asked once per process:
/// on Linux the standard library reads the cgroup's CPU quota from files on every call (a
/// node event on `large` asked a few dozen times).
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// Tailnets this large or larger may split work over the cores; smaller ones never do. A
/// thread costs more than a small tailnet's phases: the spawned thread waits for a core,
/// which on a busy host (a control server's other work) is a scheduler slice of several
/// milliseconds, so a 50-node tailnet's events took 4-8 ms at the tail where they take a
/// quarter of one. Debug builds (the tests) split from four nodes, so the property tests'
/// tailnets (one to a dozen nodes) run both ways.
pub(crate) const WORTH_THREADS: usize = if cfg!(debug_assertions) { 4 } else { 512 };

/// Engine events split their phases (the inventory beside the node table, the lowering
/// beside the SSH rules, the fingerprints beside the pairing) from this many nodes: an
/// event patches what changed, so below it each phase is a millisecond or less and the
/// wait for a second core costs more (member joins on a busy host at 2,000 nodes: 1.4 ms
/// median on one thread, 4.2 ms with threads).
pub(crate) const EVENT_WORTH_THREADS: usize = if cfg!(debug_assertions) { 4 } else { 4096 };

/// Whether work over a tailnet of `nodes` nodes may use more than one thread
/// ([`WORTH_THREADS`]).
pub(crate) fn worth_threads(nodes: usize) -> bool {
    nodes >= WORTH_THREADS && threads() >= 2
}

/// Whether an engine event's phases on a tailnet of `nodes` nodes run side by side
/// ([`EVENT_WORTH_THREADS`]).
pub(crate) fn event_worth_threads(nodes: usize) -> bool {
    nodes >= EVENT_WORTH_THREADS && threads() >= 2
}

/// The fewest items a split of work needs: `min` where the tailnet is `worth` threads
/// ([`worth_threads`], [`event_worth_threads`]), else more than any list holds.
pub(crate) fn min_items(worth: bool, min: usize) -> usize {
    match worth {
        true => min,
        false => usize::MAX,
    }
}

/// `a` and `b`, on two threads when there is a second core, else one after the other.
pub(crate) fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads() < 2 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let b = scope.spawn(b);
        let a = a();
        let b = b
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    })
}

/// [`join`] when `big` (work worth a thread), else `a` then `b` on this thread.
pub(crate) fn join_if<A: Send, B: Send>(
    big: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    match big {
        true => join(a, b),
        false => (a(), b()),
    }
}

/// `work` over `items` split in contiguous parts, one per core, the parts' outputs
/// concatenated in order; on this thread alone when there is one core or fewer than `min`
/// items (a thread costs more than small work).
pub(crate) fn map_parts<T: Sync, R: Send>(
    items: &[T],
    min: usize,
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = threads();
    if threads < 2 || items.len() < min.max(2) {
        return work(items);
    }
    let chunk = items.len().div_ceil(threads).max(1);
    let work = &work;
    let mut parts = items.chunks(chunk);
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts.map(|part| scope.spawn(move || work(part))).collect();
        gathered(work(first), handles)
    })
}

/// `out` (this thread's share) followed by each spawned thread's, in the order they were
/// spawned; a thread's panic is resumed here.
fn gathered<R>(mut out: Vec<R>, handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>>) -> Vec<R> {
    for handle in handles {
        out.extend(
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        );
    }
    out
}

/// `work` over each of `items` on every core, each thread taking the next item not yet
/// taken, so that items of uneven cost (a node that many rules reach costs a hundred times
/// one that few do) keep every core busy; each thread's `work` is handed state of its own,
/// made by `state`. The outputs come in no set order (each carries what it belongs to). On
/// this thread alone unless `spread` (work worth a thread), or when there is one core or
/// fewer than two items.
pub(crate) fn map_taken<T: Sync, S, R: Send>(
    items: &[T],
    spread: bool,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &T) -> Vec<R> + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let take = || {
        let mut mine = state();
        let mut out = Vec::new();
        while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
            out.extend(work(&mut mine, item));
        }
        out
    };
    let threads = match spread {
        true => threads().min(items.len()),
        false => 1,
    };
    if threads < 2 {
        return take();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(take)).collect();
        gathered(take(), handles)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_in_order_whatever_the_split() {
        for len in [0usize, 1, 2, 3, 7, 100, 1001] {
            let items: Vec<usize> = (0..len).collect();
            for min in [0, 1, 5, 10_000] {
                let out = map_parts(&items, min, |part| part.iter().map(|i| i * 2).collect());
                let expected: Vec<usize> = items.iter().map(|i| i * 2).collect();
                assert_eq!(out, expected, "len {len} min {min}");
            }
        }
    }

    #[test]
    fn every_item_taken_once() {
        for len in [0usize, 1, 2, 3, 100, 1001] {
            let items: Vec<usize> = (0..len).collect();
            for spread in [true, false] {
                let mut out = map_taken(&items, spread, || (), |_, &i| vec![i * 2, i * 2 + 1]);
                out.sort_unstable();
                assert_eq!(out, (0..len * 2).collect::<Vec<_>>(), "len {len}");
            }
        }
    }

    #[test]
    fn join_returns_both_sides() {
        assert_eq!(join(|| 1, || "two"), (1, "two"));
        assert_eq!(join_if(true, || 1, || "two"), (1, "two"));
        assert_eq!(join_if(false, || 1, || "two"), (1, "two"));
    }
}
