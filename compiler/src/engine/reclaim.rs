//! Replaced snapshots freed on a thread of their own: freeing one of `large`'s compiles takes
//! about a fifth of a second, which an event would otherwise spend before it returns.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Frees values (the engine's replaced snapshots) in the background when there is a second core (never in the browser), else
/// at once. The hand-over waits for the previous snapshot to be freed, so at most one is being
/// freed while the engine works: memory stays bounded by one extra snapshot.
pub(super) struct Reclaimer<T: Send + 'static> {
    sender: Option<SyncSender<T>>,
    worker: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Reclaimer<T> {
    pub(super) fn new() -> Reclaimer<T> {
        let none = Reclaimer {
            sender: None,
            worker: None,
        };
        if crate::par::threads() < 2 {
            return none;
        }
        let (sender, receiver) = sync_channel::<T>(0);
        let spawned = std::thread::Builder::new()
            .name("aclc-reclaim".into())
            .spawn(move || receiver.into_iter().for_each(drop));
        match spawned {
            Ok(worker) => Reclaimer {
                sender: Some(sender),
                worker: Some(worker),
            },
            // No thread to be had: free in place.
            Err(_) => none,
        }
    }

    /// Free `value` (on the worker, when there is one and it is alive; else here).
    pub(super) fn free(&self, value: T) {
        match &self.sender {
            Some(sender) => {
                if let Err(returned) = sender.send(value) {
                    drop(returned.0);
                }
            }
            None => drop(value),
        }
    }
}

impl<T: Send + 'static> Drop for Reclaimer<T> {
    fn drop(&mut self) {
        // Closing the channel ends the worker once it has freed what it holds.
        self.sender = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for Reclaimer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reclaimer")
            .field("background", &self.worker.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_dropped_reclaimer_has_freed_everything_it_was_given() {
        let values: Vec<Arc<String>> = (0..5).map(|i| Arc::new(i.to_string())).collect();
        let weak: Vec<_> = values.iter().map(Arc::downgrade).collect();
        let reclaimer = Reclaimer::new();
        for value in values {
            reclaimer.free(value);
        }
        drop(reclaimer);
        assert!(weak.iter().all(|w| w.upgrade().is_none()));
    }
}
