//! Maps keyed by user that grow with the sockets and shrink again: a hash map keeps its
//! largest size once its entries are gone, and after a burst of connections (10,000
//! users) the per-user maps alone would keep about a megabyte that no socket uses.

use std::hash::Hash;

use dashmap::DashMap;

/// Below this many slots a map is left as it is: small enough not to matter, and not
/// worth shrinking and growing again as a few sockets come and go.
const KEPT_SLOTS: usize = 1024;

/// Gives back the memory of a map that is less than a quarter full (after an entry left
/// it). Shrinking to fit halves the slots at least, so a map emptying entry by entry is
/// shrunk a logarithmic number of times.
pub(crate) fn shrink_if_sparse<K: Eq + Hash + Clone, V>(map: &DashMap<K, V>) {
    if is_sparse(map.len(), map.capacity()) {
        map.shrink_to_fit();
    }
}

/// More than [`KEPT_SLOTS`] slots, and less than a quarter of them used.
const fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > KEPT_SLOTS && len.saturating_mul(4) < capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_sparse_past_the_kept_slots_and_under_a_quarter_used() {
        assert!(is_sparse(0, KEPT_SLOTS + 1));
        assert!(!is_sparse(0, KEPT_SLOTS), "the kept slots are left alone, even empty");
        assert!(is_sparse(1024, 4097), "a quarter of 4,097 is more than 1,024");
        assert!(!is_sparse(1024, 4096), "exactly a quarter used: kept");
        assert!(!is_sparse(3000, 4096));
        assert!(!is_sparse(usize::MAX, usize::MAX), "no overflow");
    }

    #[test]
    fn a_map_that_emptied_gives_its_slots_back_and_a_small_one_is_left_alone() {
        let map = DashMap::new();
        for key in 0..20_000u32 {
            map.insert(key, [0u8; 32]);
        }
        let full = map.capacity();
        for key in 100..20_000u32 {
            map.remove(&key);
            shrink_if_sparse(&map);
        }
        assert!(
            map.capacity() <= KEPT_SLOTS.max(400),
            "{} slots of {full} kept for 100 entries",
            map.capacity()
        );
        assert_eq!(map.len(), 100);

        let small = DashMap::new();
        for key in 0..600u32 {
            small.insert(key, ());
        }
        assert!(small.capacity() <= KEPT_SLOTS);
        for key in 1..600u32 {
            small.remove(&key);
        }
        shrink_if_sparse(&small);
        assert!(small.capacity() >= 600, "under {KEPT_SLOTS} slots: left alone ({})", small.capacity());
    }
}
