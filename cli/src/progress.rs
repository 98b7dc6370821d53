//! Progress bars on stderr, one per stage, only when stderr is a terminal and the
//! output is not JSON.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tandem_core::executor::Event;
use tandem_core::names::{PerStage, Stage};

/// Per-stage bars, or nothing.
pub struct Progress {
    bars: Option<(MultiProgress, PerStage<ProgressBar>)>,
}

impl Progress {
    /// Bars for `totals` children per stage, if stderr is a terminal and `enabled`.
    pub fn new(enabled: bool, totals: PerStage<u64>) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = PerStage::from_fn(|s: Stage| {
            let b = multi.add(ProgressBar::new(totals[s]));
            b.set_style(style.clone());
            b.set_prefix(s.name());
            b
        });
        Self {
            bars: Some((multi, bars)),
        }
    }

    /// Records an executor event.
    pub fn observe(&self, event: Event) {
        let Some((_, bars)) = &self.bars else { return };
        match event {
            Event::Finished { stage, ok } => {
                let bar = &bars[stage];
                bar.inc(1);
                if !ok {
                    bar.set_message("(failures)");
                }
            }
            Event::Retrying { stage } => bars[stage].set_message("(retrying)"),
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some((multi, bars)) = &self.bars {
            for b in bars.values() {
                b.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}
