//! Running decoders of untrusted bytes without letting their panics end the process.
//!
//! The Parquet and Arrow decoders are meant to return errors on bad input, but a
//! corrupt footer can still reach an `assert!` deep inside them. A file that makes a
//! dependency panic is an unreadable file, like any other corrupt file: [`guarded`]
//! turns the panic into an error with the panic's message, and
//! [`install_panic_hook`] keeps the default hook from printing a backtrace for a
//! panic that was handled.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, returning `Err(message)` if it panics.
///
/// Only for pure decoding of bytes the caller owns: state `f` mutates is dropped or
/// rebuilt by the caller on error, so no half-updated value is observed.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    r.map_err(|p| panic_message(p.as_ref()))
}

/// True while the current thread runs inside [`guarded`].
pub fn in_guard() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Installs a panic hook that stays silent for panics [`guarded`] will handle and
/// defers to the previous hook for every other panic. Binaries call it once at start.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !in_guard() {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let r: Result<(), String> = guarded(|| panic!("column start and length should not be negative"));
        assert_eq!(r.unwrap_err(), "column start and length should not be negative");
        assert!(!in_guard());
        assert_eq!(guarded(|| 7).unwrap(), 7);
    }
}
