//! Frees replaced snapshots on a thread of their own: taking one apart (hundreds of thousands
//! of allocations on `large`, a tenth of a node event) then overlaps the next event instead
//! of delaying the event's return. One snapshot at most is in flight (a rendezvous channel:
//! an event that finds the thread still freeing the last one waits for it), so memory stays
//! bounded by one extra snapshot. Dropping the engine waits for the thread to finish, so no
//! thread or snapshot outlives it.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Snapshot;

/// What an event replaced: the engine's previous snapshot and the one readers held.
pub(super) type Replaced = (Arc<Snapshot>, Arc<Snapshot>);

/// Where replaced snapshots go (by default, nowhere: the caller frees).
#[derive(Debug, Default)]
pub(super) struct Freer {
    /// The freeing thread's queue; `None` to free in place (asked for, one core, or the
    /// thread could not be started).
    queue: Option<SyncSender<Replaced>>,
    /// The freeing thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl Freer {
    /// A freer; with `in_place` (or without a second core) the caller frees.
    pub(super) fn new(in_place: bool) -> Freer {
        if in_place || crate::par::threads() < 2 {
            return Freer::default();
        }
        let (queue, replaced) = sync_channel::<Replaced>(0);
        let started = std::thread::Builder::new()
            .name("aclc-engine-free".to_string())
            .spawn(move || replaced.into_iter().for_each(drop));
        let Ok(thread) = started else {
            return Freer::default();
        };
        Freer {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Free `replaced`, on the freeing thread when there is one (when a reader still holds a
    /// snapshot, the reader frees it later).
    pub(super) fn free(&self, replaced: Replaced) {
        match &self.queue {
            // Should the thread have ended (a panic in a drop), the refused snapshots come
            // back in the error, which is dropped here.
            Some(queue) => drop(queue.send(replaced)),
            None => drop(replaced),
        }
    }
}

impl Drop for Freer {
    /// Close the queue, so the thread ends once it has freed what it holds, and wait for it.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // A panic while freeing is the thread's alone; nothing is left to free here.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn in_place_means_no_thread() {
        assert!(Freer::new(true).queue.is_none());
        // With a second core there is a thread; without one, none.
        assert_eq!(
            Freer::new(false).queue.is_some(),
            crate::par::threads() >= 2
        );
    }
}
