//! One small parallel helper: run a function for every child index on a few threads.
//!
//! Rerun, report and verify each visit every child of a run once, with I/O per
//! child; a shared counter hands out indices so a slow child does not hold up a
//! whole pre-cut chunk.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Calls `f(index)` for `0..n` on `threads` threads and returns the `Some` results
/// with their index, sorted by index.
pub fn for_each_index<T: Send>(n: u32, threads: usize, f: impl Fn(u32) -> Option<T> + Sync) -> Vec<(u32, T)> {
    let next = AtomicU32::new(0);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1) as usize) {
            s.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= n {
                        break;
                    }
                    if let Some(v) = f(index) {
                        local.push((index, v));
                    }
                }
                out.lock().unwrap_or_else(|p| p.into_inner()).extend(local);
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_unstable_by_key(|(i, _)| *i);
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn visits_every_index_once_in_order() {
        let v = super::for_each_index(1000, 3, |i| (i % 3 == 0).then_some(i * 2));
        assert_eq!(v.len(), 334);
        assert!(v.iter().all(|(i, x)| *x == i * 2));
        assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(super::for_each_index(0, 2, Some).is_empty());
    }
}
