//! The store's limiter: each guest's memory cap, the memory all the guests
//! of a runtime may hold together (`--parallel`), and caps on tables; it
//! remembers the first limit a guest hit, so a trap is explained from what
//! happened rather than from wasmtime's wording.

use std::sync::Arc;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// A limit the guest ran into, as the limiter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LimitHit {
    /// Linear memory would have grown past the cap.
    Memory,
    /// Linear memory would have grown past what the run's guests may hold
    /// together.
    TotalMemory,
    /// A table would have grown past the cap.
    Table,
}

/// The store's limits, remembering the first one the guest hit, so a trap is
/// explained from what happened rather than from wasmtime's wording.
pub(super) struct RecordingLimits {
    inner: StoreLimits,
    pub(super) hit: Option<LimitHit>,
    /// The runtime's memory left for all its guests together.
    pool: Arc<MemoryPool>,
    /// What this store took from it.
    taken: usize,
}

/// Linear memory shared by every guest of a runtime: each growth takes from
/// it, and a store gives back what it took when dropped.
#[derive(Debug)]
pub(super) struct MemoryPool {
    left: std::sync::atomic::AtomicUsize,
}

impl MemoryPool {
    pub(super) fn new(bytes: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            left: std::sync::atomic::AtomicUsize::new(bytes),
        })
    }

    /// Takes `bytes` if that many are left.
    fn take(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.left
            .fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Drop for RecordingLimits {
    fn drop(&mut self) {
        self.pool.give_back(self.taken);
    }
}

/// The most elements one table may grow to, and the most tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_TABLES: usize = 64;

impl RecordingLimits {
    /// The sandbox's limits: `memory_bytes` of linear memory in one memory,
    /// [`MAX_TABLES`] tables of at most [`MAX_TABLE_ELEMENTS`], 16
    /// instances; growing past any traps.
    pub(super) fn new(memory_bytes: usize, pool: Arc<MemoryPool>) -> RecordingLimits {
        let inner = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .trap_on_grow_failure(true)
            .table_elements(MAX_TABLE_ELEMENTS)
            .tables(MAX_TABLES)
            .instances(16)
            // The cap is per memory: allow only one, so it caps the guest.
            .memories(1)
            .build();
        RecordingLimits {
            inner,
            hit: None,
            pool,
            taken: 0,
        }
    }

    fn record(&mut self, hit: LimitHit, allowed: &wasmtime::Result<bool>) {
        if !matches!(allowed, Ok(true)) && self.hit.is_none() {
            self.hit = Some(hit);
        }
    }
}

impl wasmtime::ResourceLimiter for RecordingLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        self.record(LimitHit::Memory, &allowed);
        if !matches!(allowed, Ok(true)) {
            return allowed;
        }
        let more = desired.saturating_sub(current);
        if self.pool.take(more) {
            self.taken += more;
            Ok(true)
        } else {
            self.hit.get_or_insert(LimitHit::TotalMemory);
            // As the per-guest cap does (`trap_on_grow_failure`).
            Err(wasmtime::Error::msg(
                "the run's guests would grow past their memory together",
            ))
        }
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        self.record(LimitHit::Table, &allowed);
        allowed
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_guests_of_a_runtime_share_one_memory_budget() {
        let pool = MemoryPool::new(100 << 20);
        let mut a = RecordingLimits::new(64 << 20, pool.clone());
        let mut b = RecordingLimits::new(64 << 20, pool.clone());
        assert!(a.memory_growing(0, 60 << 20, None).unwrap());
        assert!(b.memory_growing(0, 30 << 20, None).unwrap());
        assert!(b.memory_growing(30 << 20, 50 << 20, None).is_err());
        assert_eq!(b.hit, Some(LimitHit::TotalMemory));
        assert_eq!(a.hit, None);
        // A guest's own cap is still its own.
        assert!(a.memory_growing(60 << 20, 65 << 20, None).is_err());
        assert_eq!(a.hit, Some(LimitHit::Memory));
        drop(a);
        let mut c = RecordingLimits::new(64 << 20, pool);
        assert!(
            c.memory_growing(0, 64 << 20, None).unwrap(),
            "a's memory came back"
        );
    }

    #[test]
    fn the_limiter_caps_tables_and_memory_and_remembers_which_was_hit() {
        let mut limits = RecordingLimits::new(64 << 20, MemoryPool::new(1 << 30));
        assert_eq!((limits.tables(), limits.memories()), (MAX_TABLES, 1));
        assert!(limits.table_growing(0, 1024, None).unwrap());
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(limits.hit, None);
        // Past the cap: a trap (not a quiet -1 the guest might ignore),
        // remembered as the table's.
        assert!(
            limits
                .table_growing(1024, MAX_TABLE_ELEMENTS + 1, None)
                .is_err()
        );
        assert_eq!(limits.hit, Some(LimitHit::Table));
        assert!(limits.memory_growing(1 << 20, 65 << 20, None).is_err());
        assert_eq!(limits.hit, Some(LimitHit::Table), "the first hit stays");
        let mut limits = RecordingLimits::new(64 << 20, MemoryPool::new(1 << 30));
        assert!(limits.memory_growing(1 << 20, 65 << 20, None).is_err());
        assert_eq!(limits.hit, Some(LimitHit::Memory));
    }
}
