//! Timing statistics and the self-contained HTML report of a run.
//!
//! Every child's timings travel in the completion record of its latest output
//! (each stage appends its own to the history it read), so the whole timeline of a
//! run is read from one footer per child, and a loadtest hands over the records it
//! already holds. The report is one HTML file with inline SVG: no scripts, no fonts,
//! no network, so it opens anywhere, including from an S3 console download.

use std::fmt::Write as _;

use serde::Serialize;
use tandem_html::escape as esc;

use crate::exchange::{self, StageTiming};
use crate::executor::{Execution, Outcome};
use crate::names::{PerStage, Stage, object_key};
use crate::stage::RunView;

/// The stage timings known for one child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildTimes {
    /// Array index.
    pub index: u32,
    /// Stages it completed, in order.
    pub history: Vec<StageTiming>,
}

impl ChildTimes {
    fn get(&self, stage: Stage) -> Option<&StageTiming> {
        self.history.iter().find(|t| t.stage == stage)
    }
}

/// Children's timings from an in-process execution, as the executor measured them
/// (from the start of the successful attempt until its output was written).
pub fn from_execution(ex: &Execution) -> Vec<ChildTimes> {
    ex.children
        .iter()
        .map(|(index, outcomes)| ChildTimes {
            index: *index,
            history: outcomes
                .values()
                .flatten()
                .filter_map(|o| match o {
                    Outcome::Succeeded {
                        attempts,
                        started_us,
                        finished_us,
                        completion,
                    } => Some(StageTiming {
                        stage: completion.stage,
                        attempt: *attempts,
                        start_us: *started_us,
                        end_us: *finished_us,
                    }),
                    _ => None,
                })
                .collect(),
        })
        .filter(|c| !c.history.is_empty())
        .collect()
}

/// The children's timings as the cost model reads a run (`cost::ObservedChild`):
/// every child ready at the run's first start, each stage ready when its previous
/// stage's output was written, one attempt each (the successful one).
pub fn observed_children(children: &[ChildTimes]) -> Vec<crate::cost::ObservedChild> {
    let Some((t0, _)) = bounds(children) else {
        return Vec::new();
    };
    let s = |us: u64| us as f64 / 1e6;
    children
        .iter()
        .flat_map(|c| {
            c.history.iter().map(move |t| crate::cost::ObservedChild {
                stage: t.stage,
                index: c.index,
                created_s: s(t0),
                attempts: vec![(s(t.start_us), s(t.end_us.max(t.start_us)))],
                worker_started_s: None,
            })
        })
        .collect()
}

/// Where each stage's time went on this machine: waiting for the executor (from
/// ready to its start) and working, the breakdown `tandem watch --costs` gives for a
/// run on Batch (there, with starting and billed time too).
pub fn time_breakdown(children: &[ChildTimes]) -> Vec<crate::cost::StageTimes> {
    crate::cost::stage_times(&observed_children(children), None).0
}

/// A child that did not finish, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildFailure {
    /// Array index.
    pub index: u32,
    /// The stage that failed (or the first stage with no output).
    pub stage: Stage,
    /// Why, as the executor, Batch or the files say.
    pub reason: String,
}

/// The children that failed in an in-process execution (a failed stage, not the
/// later stages that failed as its dependents).
pub fn failures_from_execution(ex: &Execution) -> Vec<ChildFailure> {
    ex.failures()
        .into_iter()
        .map(|(index, stage, reason)| ChildFailure { index, stage, reason })
        .collect()
}

/// One entry of the failed-children list `tandem watch` writes next to a run.
#[derive(serde::Deserialize)]
struct ListedFailure {
    stage: Stage,
    index: u32,
    reason: String,
}

/// Children's timings read from a run's files (the egressed object's footer, or for
/// a child that did not get that far and when the volume is mounted here, its latest
/// stage file), and the children without a complete result: the stage they stopped
/// at and why (Batch's reason when `tandem watch` published the list of failed
/// children, in the bucket or next to the run). A result that cannot be read (a
/// denied or failed request) ends the report with that error, naming the object.
pub fn collect(run: &RunView, threads: usize) -> crate::Result<(Vec<ChildTimes>, Vec<ChildFailure>)> {
    use rayon::prelude::*;
    let run_id = run.manifest.run_id.as_str();
    let listed_bytes = match run.store.get(&crate::names::failed_list_key(run_id)) {
        Ok(b) => Some(b.to_vec()),
        Err(e) if e.is_not_found() => run
            .layout
            .as_ref()
            .and_then(|l| std::fs::read(l.dir().join("failed-children.json")).ok()),
        Err(e) => return Err(e),
    };
    let listed: std::collections::HashMap<(Stage, u32), String> = listed_bytes
        .and_then(|b| serde_json::from_slice::<Vec<ListedFailure>>(&b).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|f| ((f.stage, f.index), f.reason))
        .collect();
    let pool = crate::verify::reader_pool(threads)?;
    type Child = (Option<ChildTimes>, Option<ChildFailure>);
    let per_child: Vec<Child> = pool.install(|| {
        (0..run.manifest.plan.array_size)
            .into_par_iter()
            .map(|index| -> crate::Result<Child> {
                let mine = |c: exchange::Completion| (c.run_id == run_id && c.index == index).then_some(c);
                let object = run
                    .store
                    .get(&object_key(run_id, index))
                    .and_then(|b| exchange::read_completion("object", &b));
                let (found, missing) = match object {
                    Ok(c) if mine(c.clone()).is_some() => (Some(c), None),
                    Err(e @ crate::Error::Backend { .. }) => return Err(e),
                    other => {
                        let why = match other {
                            Err(e) if e.is_not_found() => "no result object".to_string(),
                            Err(e) => format!("result object unreadable: {}", crate::error::chain(&e)),
                            Ok(_) => "the result object belongs to another run or child".to_string(),
                        };
                        let latest = run.layout.as_ref().and_then(|layout| {
                            [Stage::Process, Stage::Procure].into_iter().find_map(|st| {
                                let b = std::fs::read(layout.stage_file(st, index)).ok()?;
                                exchange::read_completion("file", &bytes::Bytes::from(b))
                                    .ok()
                                    .and_then(mine)
                            })
                        });
                        let stopped = latest
                            .as_ref()
                            .and_then(|c| c.stage.next())
                            .unwrap_or(Stage::Procure);
                        let reason =
                            listed
                                .get(&(stopped, index))
                                .cloned()
                                .unwrap_or_else(|| match &run.layout {
                                    Some(_) => format!("{why}; no {stopped} output"),
                                    None => why.clone(),
                                });
                        (
                            latest,
                            Some(ChildFailure {
                                index,
                                stage: stopped,
                                reason,
                            }),
                        )
                    }
                };
                let times = found.map(|c| ChildTimes {
                    index,
                    history: c.history,
                });
                Ok((times, missing))
            })
            .collect::<crate::Result<Vec<Child>>>()
    })?;
    let (times, failures): (Vec<_>, Vec<_>) = per_child.into_iter().unzip();
    Ok((
        times.into_iter().flatten().collect(),
        failures.into_iter().flatten().collect(),
    ))
}

/// Duration statistics of one stage, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// The stage.
    pub stage: Stage,
    /// Children that completed it.
    pub children: usize,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

fn ms(t: &StageTiming) -> f64 {
    t.end_us.saturating_sub(t.start_us) as f64 / 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Per-stage duration statistics.
pub fn stage_stats(children: &[ChildTimes]) -> Vec<StageStats> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            let mut d: Vec<f64> = children.iter().filter_map(|c| c.get(stage)).map(ms).collect();
            d.sort_unstable_by(f64::total_cmp);
            let mean = if d.is_empty() {
                0.0
            } else {
                d.iter().sum::<f64>() / d.len() as f64
            };
            StageStats {
                stage,
                children: d.len(),
                mean_ms: mean,
                p50_ms: percentile(&d, 50.0),
                p95_ms: percentile(&d, 95.0),
                p99_ms: percentile(&d, 99.0),
                max_ms: d.last().copied().unwrap_or(0.0),
            }
        })
        .collect()
}

/// A slow child: its time from the start of its first stage to the end of its last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowChild {
    /// Array index.
    pub index: u32,
    /// First start to last end, in milliseconds (includes waiting between stages).
    pub span_ms: f64,
    /// Time in each stage, in milliseconds.
    pub stage_ms: PerStage<f64>,
}

/// The `n` children with the longest span, slowest first.
pub fn slowest(children: &[ChildTimes], n: usize) -> Vec<SlowChild> {
    let mut v: Vec<SlowChild> = children
        .iter()
        .filter(|c| !c.history.is_empty())
        .map(|c| {
            let start = c.history.iter().map(|t| t.start_us).min().unwrap_or(0);
            let end = c.history.iter().map(|t| t.end_us).max().unwrap_or(0);
            let mut stage_ms = PerStage::<f64>::default();
            for t in &c.history {
                stage_ms[t.stage] = ms(t);
            }
            SlowChild {
                index: c.index,
                span_ms: end.saturating_sub(start) as f64 / 1000.0,
                stage_ms,
            }
        })
        .collect();
    v.sort_unstable_by(|a, b| b.span_ms.total_cmp(&a.span_ms).then(a.index.cmp(&b.index)));
    v.truncate(n);
    v
}

/// Earliest start and latest end over all children, in microseconds.
fn bounds(children: &[ChildTimes]) -> Option<(u64, u64)> {
    let all = children.iter().flat_map(|c| c.history.iter());
    let t0 = all.clone().map(|t| t.start_us).min()?;
    let t1 = all.map(|t| t.end_us).max()?;
    Some((t0, t1.max(t0 + 1)))
}

/// Mean number of children running in each stage, over `bins` equal slices of the
/// run's span.
pub fn concurrency(children: &[ChildTimes], bins: usize) -> PerStage<Vec<f64>> {
    let mut out = PerStage::splat(vec![0.0; bins]);
    let Some((t0, t1)) = bounds(children) else {
        return out;
    };
    let width = (t1 - t0) as f64 / bins as f64;
    for t in children.iter().flat_map(|c| c.history.iter()) {
        let (s, e) = ((t.start_us - t0) as f64, (t.end_us.max(t.start_us) - t0) as f64);
        let (b0, b1) = ((s / width) as usize, ((e / width) as usize).min(bins - 1));
        for (b, slot) in out[t.stage]
            .iter_mut()
            .enumerate()
            .take(b1 + 1)
            .skip(b0.min(bins - 1))
        {
            let lo = s.max(b as f64 * width);
            let hi = e.min((b + 1) as f64 * width);
            if hi > lo {
                *slot += (hi - lo) / width;
            }
        }
    }
    out
}

const COLORS: PerStage<&str> = PerStage(["#4e79a7", "#f28e2b", "#59a14f"]);

/// What a report shows.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The page title.
    pub title: &'a str,
    /// (label, value) pairs shown at the top.
    pub rows: &'a [(String, String)],
    /// Every child's timings.
    pub children: &'a [ChildTimes],
    /// The children that did not finish.
    pub failures: &'a [ChildFailure],
    /// Whether the run succeeded (every child finished and, where it was checked,
    /// verification passed), and if not, why, in one line.
    pub outcome: Result<(), &'a str>,
    /// A run on Batch: where its time went and what it cost, from its jobs'
    /// descriptions (`tandem report --costs`); drawn instead of this machine's
    /// breakdown.
    pub batch: Option<&'a crate::cost::Measured>,
}

/// Rows of the failed-children table the page lists in full.
const FAILURES_SHOWN: usize = 200;

/// Renders the report.
pub fn render_html(r: &ReportInput<'_>) -> String {
    let children = r.children;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}}\
         table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}h2{{margin-top:28px;font-size:17px}}svg{{background:#fafafa;border:1px solid #eee}}\
         .k{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}\
         .status{{padding:8px 12px;border-radius:4px;font-weight:600}}.ok{{background:#e6f4e6;color:#1d5e1d}}\
         .bad{{background:#fde8e8;color:#8a1010}}td.reason{{text-align:left}}</style></head><body><h1>{}</h1>",
        esc(r.title),
        esc(r.title)
    );
    match r.outcome {
        Ok(()) => h.push_str("<p class=\"status ok\">The run succeeded: every child finished.</p>"),
        Err(why) => {
            let _ = write!(
                h,
                "<p class=\"status bad\">The run did not succeed: {}</p>",
                esc(why)
            );
        }
    }
    h.push_str("<table>");
    for (k, v) in r.rows {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>");
    h.push_str("<div>");
    for s in Stage::ALL {
        let _ = write!(
            h,
            "<span class=\"k\" style=\"background:{}\"></span>{}",
            COLORS[s], s
        );
    }
    if !r.failures.is_empty() {
        let _ = write!(
            h,
            "<span class=\"k\" style=\"background:{FAILED}\"></span>failed child"
        );
    }
    h.push_str("</div><h2>Stage durations (ms)</h2><table><tr><th>stage</th><th>children</th><th>mean</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>");
    for st in stage_stats(children) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            st.stage, st.children, st.mean_ms, st.p50_ms, st.p95_ms, st.p99_ms, st.max_ms
        );
    }
    h.push_str("</table>");
    match r.batch {
        Some(m) => {
            breakdown_svg(&mut h, &m.stages);
            cost_table(&mut h, m);
        }
        None if bounds(children).is_some() => breakdown_svg(&mut h, &time_breakdown(children)),
        None => {}
    }
    if let Some((t0, t1)) = bounds(children) {
        timeline_svg(&mut h, children, r.failures, t0, t1);
        concurrency_svg(&mut h, children, t0, t1);
    } else {
        h.push_str("<p>No child has completed a stage yet: nothing to draw.</p>");
    }
    if !r.failures.is_empty() {
        let _ = write!(
            h,
            "<h2>Failed children ({})</h2><table><tr><th>index</th><th>stage</th><th style=\"text-align:left\">reason</th></tr>",
            r.failures.len()
        );
        for f in r.failures.iter().take(FAILURES_SHOWN) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
                f.index,
                f.stage,
                esc(&f.reason)
            );
        }
        h.push_str("</table>");
        if r.failures.len() > FAILURES_SHOWN {
            let _ = write!(
                h,
                "<p>... and {} more failed children.</p>",
                r.failures.len() - FAILURES_SHOWN
            );
        }
    }
    h.push_str("<h2>Slowest children</h2><table><tr><th>index</th><th>span ms</th><th>procure ms</th><th>process ms</th><th>egress ms</th></tr>");
    for s in slowest(children, 15) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            s.index,
            s.span_ms,
            s.stage_ms[Stage::Procure],
            s.stage_ms[Stage::Process],
            s.stage_ms[Stage::Egress]
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// The colour failed children are marked with.
const FAILED: &str = "#d62728";

const W: f64 = 1000.0;
const LEFT: f64 = 60.0;

fn axis(h: &mut String, t0: u64, t1: u64, y: f64) {
    let span_s = (t1 - t0) as f64 / 1e6;
    for k in 0..=5 {
        let x = LEFT + (W - LEFT - 10.0) * k as f64 / 5.0;
        // The last label ends at its tick so it stays inside the picture.
        let anchor = if k == 5 { "end" } else { "middle" };
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{:.3}s</text>",
            10.0,
            y + 14.0,
            span_s * k as f64 / 5.0
        );
    }
}

/// One row per band of indices (at most 200 bands), with a lane per stage: a pale
/// bar from the band's first start to its last end and a solid bar between the
/// median start and the median end. The N_TO_N "fade" is the three lanes sliding
/// right together, each band's later stages starting before the next band's first.
///
/// A band holding failed children gets a red mark in the left margin (its tooltip
/// counts them), so where the failures sit in the array shows at a glance.
fn timeline_svg(h: &mut String, children: &[ChildTimes], failures: &[ChildFailure], t0: u64, t1: u64) {
    let max_index = children
        .iter()
        .map(|c| c.index)
        .chain(failures.iter().map(|f| f.index))
        .max()
        .unwrap_or(0) as usize
        + 1;
    let bands = max_index.min(200);
    let per_band = max_index.div_ceil(bands);
    let row_h = (900.0 / bands as f64).clamp(4.5, 18.0);
    let lane_h = row_h / 3.0;
    let height = row_h * bands as f64 + 40.0;
    let x = |t: u64| LEFT + (W - LEFT - 10.0) * (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64;
    let _ = write!(
        h,
        "<h2>Timeline: children by index ({per_band} per row), time since the first start</h2><svg width=\"{W}\" height=\"{height:.0}\" viewBox=\"0 0 {W} {height:.0}\">"
    );
    axis(h, t0, t1, height - 22.0);
    let mut groups: Vec<PerStage<Vec<(u64, u64)>>> = (0..bands).map(|_| Default::default()).collect();
    for c in children {
        let band = (c.index as usize / per_band).min(bands - 1);
        for t in &c.history {
            groups[band][t.stage].push((t.start_us, t.end_us));
        }
    }
    for (b, g) in groups.iter_mut().enumerate() {
        let y = 10.0 + b as f64 * row_h;
        for (stage, v) in g.iter_mut() {
            if v.is_empty() {
                continue;
            }
            let y = y + lane_h * stage.position() as f64;
            let lo = v.iter().map(|t| t.0).min().unwrap_or(t0);
            let hi = v.iter().map(|t| t.1).max().unwrap_or(t0);
            let mut starts: Vec<u64> = v.iter().map(|t| t.0).collect();
            let mut ends: Vec<u64> = v.iter().map(|t| t.1).collect();
            starts.sort_unstable();
            ends.sort_unstable();
            let (ms, me) = (starts[starts.len() / 2], ends[ends.len() / 2]);
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" opacity=\"0.25\"/><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                x(lo),
                (x(hi) - x(lo)).max(0.5),
                lane_h * 0.95,
                COLORS[stage],
                x(ms),
                (x(me) - x(ms)).max(0.8),
                lane_h * 0.95,
                COLORS[stage]
            );
        }
        let failed = failures
            .iter()
            .filter(|f| (f.index as usize / per_band).min(bands - 1) == b)
            .count();
        if failed > 0 {
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"6\" height=\"{:.1}\" fill=\"{FAILED}\"><title>{failed} failed {} in indices {}..{}</title></rect>",
                LEFT - 8.0,
                (row_h * 0.95).max(1.0),
                if failed == 1 { "child" } else { "children" },
                b * per_band,
                (b + 1) * per_band - 1
            );
        }
        if b % (bands / 10).max(1) == 0 {
            let _ = write!(
                h,
                "<text x=\"4\" y=\"{:.1}\" font-size=\"10\">{}</text>",
                y + row_h,
                b * per_band
            );
        }
    }
    h.push_str("</svg>");
}

/// What a run on Batch cost, part by part, and each stage's billed time.
fn cost_table(h: &mut String, m: &crate::cost::Measured) {
    let _ = write!(
        h,
        "<h2>What the run cost on AWS</h2><p>At least: the image pulls and instance boots are not in Batch's job descriptions.</p><table><tr><th>part</th><th>dollars</th><th>share</th></tr>"
    );
    for (name, v, share) in m.costs.parts() {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{v:.4}</td><td>{:.1}%</td></tr>",
            share * 100.0
        );
    }
    let _ = write!(
        h,
        "<tr><td>total</td><td>{:.4}</td><td></td></tr></table><table><tr><th>stage</th><th>children</th><th>attempts</th><th>never started</th><th>billed s</th></tr>",
        m.costs.total
    );
    for t in &m.stages {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            t.stage, t.children, t.attempts, t.never_started, t.billed_s
        );
    }
    let _ = write!(h, "</table><p>Wall time on Batch: {:.0} s.</p>", m.wall_s);
}

/// Waiting and working, summed over each stage's children: a stacked bar per stage.
fn breakdown_svg(h: &mut String, times: &[crate::cost::StageTimes]) {
    const WAITING: &str = "#bab0ac";
    const STARTING: &str = "#edc948";
    let (w, left, row) = (900.0, 80.0, 26.0);
    let most = times
        .iter()
        .map(|t| t.waiting_s + t.starting_s + t.working_s)
        .fold(0.0f64, f64::max);
    let scale = if most > 0.0 { (w - left - 10.0) / most } else { 0.0 };
    let _ = write!(
        h,
        "<h2>Where the time went</h2><p>Summed over each stage's children: \
         <span class=\"k\" style=\"background:{WAITING}\"></span>waiting (ready, not yet started)\
         <span class=\"k\" style=\"background:{STARTING}\"></span>starting\
         <span class=\"k\" style=\"background:#4e79a7\"></span>working</p>\
         <svg width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\">",
        row * times.len() as f64 + 8.0,
        row * times.len() as f64 + 8.0
    );
    for (n, t) in times.iter().enumerate() {
        let y = 4.0 + row * n as f64;
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 14.0,
            t.stage
        );
        let mut x = left;
        for (what, secs, color) in [
            ("waiting", t.waiting_s, WAITING),
            ("starting", t.starting_s, STARTING),
            ("working", t.working_s, COLORS[t.stage]),
        ] {
            let width = secs * scale;
            if width > 0.0 {
                let _ = write!(
                    h,
                    "<rect x=\"{x:.2}\" y=\"{y:.1}\" width=\"{width:.2}\" height=\"18\" fill=\"{color}\"><title>{} {what}: {secs:.3} s over {} children</title></rect>",
                    t.stage, t.children
                );
                x += width;
            }
        }
    }
    h.push_str("</svg>");
}

fn concurrency_svg(h: &mut String, children: &[ChildTimes], t0: u64, t1: u64) {
    let bins = 300;
    let series = concurrency(children, bins);
    let peak = series.values().flatten().copied().fold(1.0f64, f64::max);
    let height = 240.0;
    let plot_h = height - 40.0;
    let _ = write!(
        h,
        "<h2>Concurrency over time (children running per stage, peak {peak:.1})</h2><svg width=\"{W}\" height=\"{height:.0}\" viewBox=\"0 0 {W} {height:.0}\">"
    );
    axis(h, t0, t1, height - 22.0);
    for (stage, s) in series.iter() {
        let mut pts = String::new();
        for (b, v) in s.iter().enumerate() {
            let x = LEFT + (W - LEFT - 10.0) * (b as f64 + 0.5) / bins as f64;
            let y = 10.0 + plot_h - plot_h * v / peak;
            let _ = write!(pts, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
            COLORS[stage],
            pts.trim_end()
        );
    }
    let _ = write!(
        h,
        "<text x=\"4\" y=\"16\" font-size=\"10\">{peak:.1}</text><text x=\"4\" y=\"{:.1}\" font-size=\"10\">0</text></svg>",
        10.0 + plot_h
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(index: u32, base: u64) -> ChildTimes {
        ChildTimes {
            index,
            history: Stage::ALL
                .iter()
                .enumerate()
                .map(|(i, &stage)| StageTiming {
                    stage,
                    attempt: 1,
                    start_us: base + i as u64 * 1000,
                    end_us: base + i as u64 * 1000 + 1000,
                })
                .collect(),
        }
    }

    /// Child 0 starts at once and runs its stages back to back; child 1 is ready at
    /// the same instant but its procure starts 2.5 ms later, and its process 0.5 ms
    /// after its procure ended: waiting 2.5 ms in procure, 0.5 ms in process.
    #[test]
    fn the_breakdown_sums_each_stages_waiting_and_working() {
        let t = |stage, start_us, end_us| StageTiming {
            stage,
            attempt: 1,
            start_us,
            end_us,
        };
        let children = [
            child(0, 1_000_000),
            ChildTimes {
                index: 1,
                history: vec![
                    t(Stage::Procure, 1_002_500, 1_003_000),
                    t(Stage::Process, 1_003_500, 1_004_000),
                    t(Stage::Egress, 1_004_000, 1_004_250),
                ],
            },
        ];
        let b = time_breakdown(&children);
        let us = |s: f64| (s * 1e6).round() as u64;
        let got: Vec<(Stage, u64, u64, u64)> = b
            .iter()
            .map(|t| (t.stage, t.children, us(t.waiting_s), us(t.working_s)))
            .collect();
        assert_eq!(
            got,
            [
                (Stage::Procure, 2, 2_500, 1_500),
                (Stage::Process, 2, 500, 1_500),
                (Stage::Egress, 2, 0, 1_250),
            ]
        );
        assert!(
            b.iter()
                .all(|t| t.starting_s == 0.0 && t.billed_s == 0.0 && t.attempts == 2)
        );
        assert!(time_breakdown(&[]).iter().all(|t| t.children == 0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn stats_and_slowest_reflect_the_timings() {
        let mut cs: Vec<ChildTimes> = (0..10).map(|i| child(i, u64::from(i) * 500)).collect();
        cs[4].history[1].end_us += 9000; // child 4's process took 10 ms
        let st = stage_stats(&cs);
        assert_eq!(st[0].children, 10);
        assert_eq!(st[1].max_ms, 10.0);
        assert_eq!(st[0].p50_ms, 1.0);
        assert_eq!(slowest(&cs, 1)[0].index, 4);
    }

    #[test]
    fn concurrency_integrates_to_busy_time() {
        let cs: Vec<ChildTimes> = (0..4).map(|i| child(i, 0)).collect();
        let c = concurrency(&cs, 30);
        // 4 children, each 1 ms per stage; span 3 ms over 30 bins of 0.1 ms.
        let busy: f64 = c[Stage::Procure].iter().sum::<f64>() * 0.1;
        assert!((busy - 4.0).abs() < 1e-6, "{busy}");
    }

    #[test]
    fn html_is_self_contained() {
        let cs: Vec<ChildTimes> = (0..10_000).map(|i| child(i, u64::from(i) * 10)).collect();
        let html = render_html(&ReportInput {
            title: "run <x>",
            rows: &[("records".into(), "400000".into())],
            children: &cs,
            failures: &[],
            outcome: Ok(()),
            batch: None,
        });
        assert!(html.contains("<svg") && html.contains("run &lt;x&gt;"));
        assert!(html.contains("Where the time went") && !html.contains("What the run cost"));
        assert!(html.contains("The run succeeded"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
        assert!(html.len() < 2_000_000, "{} bytes", html.len());
    }

    /// A run on Batch draws Batch's breakdown (starting included) and what it cost.
    #[test]
    fn a_run_on_batch_shows_its_breakdown_and_its_cost() {
        let cs: Vec<ChildTimes> = (0..4).map(|i| child(i, u64::from(i) * 10)).collect();
        let times = |stage| crate::cost::StageTimes {
            stage,
            children: 4,
            never_started: 0,
            attempts: 4,
            waiting_s: 160.0,
            starting_s: 120.0,
            working_s: 4.0,
            billed_s: 240.0,
        };
        let m = crate::cost::Measured {
            stages: Stage::ALL.iter().map(|&s| times(s)).collect(),
            wall_s: 300.0,
            costs: crate::cost::Costs {
                compute: 0.0025,
                s3: 0.0001,
                efs: 0.0,
                step_functions: 0.0003,
                lambda: 0.0001,
                total: 0.003,
            },
        };
        let html = render_html(&ReportInput {
            title: "run",
            rows: &[],
            children: &cs,
            failures: &[],
            outcome: Ok(()),
            batch: Some(&m),
        });
        assert!(html.contains("What the run cost on AWS"));
        assert!(
            html.contains("<tr><td>compute</td><td>0.0025</td><td>83.3%</td></tr>"),
            "{html}"
        );
        assert!(html.contains("<title>procure starting: 120.000 s over 4 children</title>"));
        assert!(html.contains("Wall time on Batch: 300 s."));
    }

    #[test]
    fn failed_children_are_listed_and_marked_and_the_top_says_so() {
        let cs: Vec<ChildTimes> = (0..100)
            .filter(|i| *i != 42)
            .map(|i| child(i, u64::from(i) * 10))
            .collect();
        let failures = [ChildFailure {
            index: 42,
            stage: Stage::Process,
            reason: "injected <failure>".into(),
        }];
        let html = render_html(&ReportInput {
            title: "run",
            rows: &[],
            children: &cs,
            failures: &failures,
            outcome: Err("1 child failed"),
            batch: None,
        });
        assert!(html.contains("The run did not succeed: 1 child failed"));
        assert!(
            html.contains("<td>42</td><td>process</td><td class=\"reason\">injected &lt;failure&gt;</td>")
        );
        assert!(
            html.contains("<title>1 failed child in indices 42..42</title>"),
            "{html}"
        );
    }
}
