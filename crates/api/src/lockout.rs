//! Failed logins per name, and the lockout they lead to. Pure: the caller
//! passes the time.
//!
//! A name is locked for `lock_ms` after `max_failures` failed logins in a
//! row; a successful login resets its count. Unknown names are counted like
//! known ones, so the lockout does not tell which names exist. The table is
//! bounded: past [`MAX_NAMES`] entries, those neither locked nor failing
//! recently are dropped first.

use std::collections::HashMap;

/// Most names tracked at once.
pub const MAX_NAMES: usize = 100_000;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    locked_until_ms: i64,
    last_ms: i64,
}

/// The failed-login table.
#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    lock_ms: i64,
    names: HashMap<String, Entry>,
}

impl Lockout {
    /// A table locking a name for `lock_ms` after `max_failures` failures.
    #[must_use]
    pub fn new(max_failures: u32, lock_ms: i64) -> Self {
        Self {
            max_failures: max_failures.max(1),
            lock_ms,
            names: HashMap::new(),
        }
    }

    /// Until when `name` is locked, if it is at `now_ms`.
    #[must_use]
    pub fn locked_until(&self, name: &str, now_ms: i64) -> Option<i64> {
        self.names
            .get(name)
            .map(|e| e.locked_until_ms)
            .filter(|until| *until > now_ms)
    }

    /// Counts a failed login; returns until when the name is now locked,
    /// if this failure locked it.
    pub fn failure(&mut self, name: &str, now_ms: i64) -> Option<i64> {
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(name) {
            let lock_ms = self.lock_ms;
            self.names
                .retain(|_, e| e.locked_until_ms > now_ms || now_ms - e.last_ms < lock_ms);
            if self.names.len() >= MAX_NAMES {
                return None;
            }
        }
        let e = self.names.entry(name.to_owned()).or_default();
        e.failures += 1;
        e.last_ms = now_ms;
        if e.failures >= self.max_failures {
            e.failures = 0;
            e.locked_until_ms = now_ms + self.lock_ms;
            return Some(e.locked_until_ms);
        }
        None
    }

    /// A successful login: the name's count starts again.
    pub fn success(&mut self, name: &str) {
        self.names.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_after_max_failures_and_unlocks_after_the_lock() {
        let mut l = Lockout::new(3, 1_000);
        assert_eq!(l.failure("kim", 0), None);
        assert_eq!(l.failure("kim", 1), None);
        assert_eq!(l.locked_until("kim", 2), None);
        assert_eq!(l.failure("kim", 2), Some(1_002));
        assert_eq!(l.locked_until("kim", 500), Some(1_002));
        assert_eq!(l.locked_until("lee", 500), None);
        assert_eq!(l.locked_until("kim", 1_002), None);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut l = Lockout::new(2, 1_000);
        assert_eq!(l.failure("kim", 0), None);
        l.success("kim");
        assert_eq!(l.failure("kim", 1), None);
        assert!(l.failure("kim", 2).is_some());
    }
}
