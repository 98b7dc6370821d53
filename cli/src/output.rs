//! Human-readable tables and JSON printing on stdout.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use tandem_core::names::Stage;
use tandem_core::report::{SlowChild, StageStats};

/// Writes `value` as one pretty JSON document to stdout.
///
/// The document is encoded first and written in one piece, so that a closed stdout
/// surfaces as the `io::Error` it is (which `main` turns into exit 0), not wrapped
/// inside a serializer error.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut doc = serde_json::to_vec_pretty(value)?;
    doc.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&doc)?;
    out.flush()?;
    Ok(())
}

/// Writes a line for people to stderr. A closed or full stderr is not a reason to
/// stop (or to panic, as `eprintln!` does): the message is dropped.
pub fn note(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line);
    let _ = err.write_all(b"\n");
}

/// `note!("...", args)`: [`note`] with `format!` syntax.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::note(format_args!($($arg)*))
    };
}

/// Writes text to stdout.
pub fn text(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Where each stage's time went, summed over its children: one table for a run on
/// this machine (waiting for a worker, working) and one on Batch (starting and
/// billed too, with attempts and children that never started).
pub fn times_table(times: &[tandem_core::cost::StageTimes], batch: bool) -> String {
    let mut s = String::from("time, s     waiting   starting    working");
    if batch {
        s.push_str("     billed  attempts  never started");
    }
    s.push('\n');
    for t in times {
        s.push_str(&format!(
            "{:<10} {:>10.3} {:>10.3} {:>10.3}",
            t.stage.name(),
            t.waiting_s,
            t.starting_s,
            t.working_s
        ));
        if batch {
            s.push_str(&format!(
                " {:>10.0} {:>9} {:>14}",
                t.billed_s, t.attempts, t.never_started
            ));
        }
        s.push('\n');
    }
    s.push('\n');
    s
}

/// The per-stage statistics table.
pub fn stats_table(stats: &[StageStats]) -> String {
    let mut s = String::from("stage       children    mean ms     p50 ms     p95 ms     p99 ms     max ms\n");
    for st in stats {
        s.push_str(&format!(
            "{:<10} {:>9} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}\n",
            st.stage.name(),
            st.children,
            st.mean_ms,
            st.p50_ms,
            st.p95_ms,
            st.p99_ms,
            st.max_ms
        ));
    }
    s
}

/// Milliseconds with three decimals.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The slowest children, one line each.
pub fn slowest_table(slow: &[SlowChild]) -> String {
    let mut s =
        String::from("slowest children (ms from first start to last end; procure / process / egress):\n");
    for c in slow {
        s.push_str(&format!(
            "  index {:>5}  {:>9.3}  ({:.3} / {:.3} / {:.3})\n",
            c.index,
            c.span_ms,
            c.stage_ms[Stage::Procure],
            c.stage_ms[Stage::Process],
            c.stage_ms[Stage::Egress]
        ));
    }
    s
}
