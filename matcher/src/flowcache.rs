//! The stateful layer over the stateless matchers: UDP and SCTP replies to flows the node
//! started.
//!
//! The client records every outbound UDP/SCTP packet's reversed 5-tuple in a small LRU
//! (`filter.go:runOut`, 512 entries, shared across filter updates) and accepts an inbound
//! UDP/SCTP packet whose tuple is there before it looks at the rules (`runIn4`). Keeping this
//! state out of the matchers keeps them immutable and shareable; one [`FlowCache`] can outlive
//! any number of matchers, as the client's does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use super::{pre_check, proto, Allow, CapabilityLookup, Flow, FlowFilter, Refusal, Verdict};

/// A bounded, least-recently-used record of the UDP/SCTP flows this node started.
#[derive(Debug)]
pub struct FlowCache {
    lru: Mutex<Lru>,
}

impl Default for FlowCache {
    fn default() -> Self {
        FlowCache::new(FlowCache::DEFAULT_CAPACITY)
    }
}

impl FlowCache {
    /// The client's size (`lruMax`).
    pub const DEFAULT_CAPACITY: usize = 512;

    /// A cache remembering up to `capacity` flows (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        FlowCache {
            lru: Mutex::new(Lru {
                capacity,
                // Twice the capacity, so that evicting and inserting never grows the table.
                map: HashMap::with_capacity(2 * capacity),
                nodes: Vec::with_capacity(capacity),
                head: NIL,
                tail: NIL,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        // A panic while holding the lock cannot leave the list half-linked in a way that
        // matters more than losing a cached flow; keep serving.
        self.lru
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An outbound packet (`RunOut`): refused only by the pre-checks; UDP and SCTP flows are
    /// remembered so that their replies get in.
    pub fn run_out(&self, flow: &Flow) -> Verdict {
        if let Some(refusal) = pre_check(flow) {
            return Verdict::Refuse(refusal);
        }
        if matches!(flow.proto, proto::UDP | proto::SCTP) {
            self.lock().add(Tuple {
                proto: flow.proto,
                src: flow.dst,
                src_port: flow.dst_port,
                dst: flow.src,
                dst_port: flow.src_port,
            });
        }
        Verdict::Allow(Allow::Outbound)
    }

    /// An inbound packet (`RunIn`): the filter's verdict, except that a UDP or SCTP packet to
    /// a local address is accepted if it answers a remembered outbound flow.
    pub fn run_in<F: FlowFilter, C: CapabilityLookup + ?Sized>(
        &self,
        filter: &F,
        flow: &Flow,
        capabilities: &C,
    ) -> Verdict {
        let verdict = filter.check_with(flow, capabilities);
        if !matches!(flow.proto, proto::UDP | proto::SCTP) {
            return verdict;
        }
        match verdict {
            // Past the pre-checks and the local check: the client consults the cache first.
            Verdict::Allow(Allow::Rule { .. }) | Verdict::Refuse(Refusal::NoRule) => {
                let tuple = Tuple {
                    proto: flow.proto,
                    src: flow.src,
                    src_port: flow.src_port,
                    dst: flow.dst,
                    dst_port: flow.dst_port,
                };
                if self.lock().get(&tuple) {
                    Verdict::Allow(Allow::ReturnTraffic)
                } else {
                    verdict
                }
            }
            _ => verdict,
        }
    }

    /// The number of flows remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no flow is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every flow.
    pub fn clear(&self) {
        let mut lru = self.lock();
        lru.map.clear();
        lru.nodes.clear();
        lru.head = NIL;
        lru.tail = NIL;
    }
}

/// `flowtrack.Tuple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Tuple {
    proto: u8,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node {
    key: Tuple,
    prev: usize,
    next: usize,
}

/// A doubly linked list in a vector, most recent first, with a map from tuple to node.
#[derive(Debug)]
struct Lru {
    capacity: usize,
    map: HashMap<Tuple, usize>,
    nodes: Vec<Node>,
    head: usize,
    tail: usize,
}

impl Lru {
    fn get(&mut self, key: &Tuple) -> bool {
        match self.map.get(key).copied() {
            Some(at) => {
                self.unlink(at);
                self.push_front(at);
                true
            }
            None => false,
        }
    }

    fn add(&mut self, key: Tuple) {
        if self.get(&key) {
            return;
        }
        let at = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                prev: NIL,
                next: NIL,
            });
            self.nodes.len() - 1
        } else {
            let oldest = self.tail;
            self.unlink(oldest);
            match self.nodes.get_mut(oldest) {
                Some(node) => {
                    self.map.remove(&node.key);
                    node.key = key;
                }
                None => return,
            }
            oldest
        };
        self.push_front(at);
        self.map.insert(key, at);
    }

    fn unlink(&mut self, at: usize) {
        let Some(node) = self.nodes.get(at) else {
            return;
        };
        let (prev, next) = (node.prev, node.next);
        match self.nodes.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, at: usize) {
        let old_head = self.head;
        if let Some(node) = self.nodes.get_mut(at) {
            node.prev = NIL;
            node.next = old_head;
        }
        match self.nodes.get_mut(old_head) {
            Some(h) => h.prev = at,
            None => self.tail = at,
        }
        self.head = at;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tuple(n: u16) -> Tuple {
        Tuple {
            proto: 17,
            src: "100.64.0.1".parse().unwrap(),
            src_port: n,
            dst: "100.64.0.2".parse().unwrap(),
            dst_port: 53,
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let cache = FlowCache::new(3);
        let mut lru = cache.lock();
        lru.add(tuple(1));
        lru.add(tuple(2));
        lru.add(tuple(3));
        assert!(lru.get(&tuple(1))); // 1 is now the most recent; 2 the oldest
        lru.add(tuple(4));
        assert!(!lru.get(&tuple(2)));
        assert!(lru.get(&tuple(1)));
        assert!(lru.get(&tuple(3)));
        assert!(lru.get(&tuple(4)));
        assert_eq!(lru.map.len(), 3);
        for n in 10..100 {
            lru.add(tuple(n));
        }
        assert_eq!(lru.map.len(), 3);
        assert!(lru.get(&tuple(99)) && lru.get(&tuple(98)) && lru.get(&tuple(97)));
    }
}
