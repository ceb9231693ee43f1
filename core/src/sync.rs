//! Small helpers for shared state.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even if a thread panicked while holding it: every lock in Murmur
/// guards state that stays consistent between statements, and a poisoned lock must not take
/// the assistant down with the thread that failed.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
