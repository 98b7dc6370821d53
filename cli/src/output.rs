//! Human-readable tables and JSON printing on stdout.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use tandem_core::report::{SlowChild, StageStats};

/// Writes `value` as one pretty JSON document to stdout.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes text to stdout.
pub fn text(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
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
            c.index, c.span_ms, c.stage_ms[0], c.stage_ms[1], c.stage_ms[2]
        ));
    }
    s
}
