//! [`lock`]: a mutex's guard, even after a panic in another holder.

use std::sync::{Mutex, MutexGuard};

/// The guard of `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug elsewhere; the store poisons itself on I/O errors
    // explicitly, so recovering the guard does not hide a half-done write.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
