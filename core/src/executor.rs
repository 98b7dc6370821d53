//! The local N_TO_N executor: AWS Batch's array semantics on one machine.
//!
//! - Child `i` of a stage becomes ready as soon as child `i` of the stage before has
//!   succeeded, never waiting for the whole stage (`dependsOn` type N_TO_N).
//! - A failed child is retried up to `attempts` times in all (Batch `retryStrategy`).
//! - A child that fails for good fails child `i` of every later stage as a dependency
//!   failure; every other index goes on.
//! - Each stage can be capped to a number of concurrent children (a compute
//!   environment's capacity); the worker pool is the machine's.
//!
//! Among ready children a worker takes the latest stage first: a child flows through
//! its three stages while its files are still in the page cache, the first results
//! reach the bucket early, and the number of half-finished children stays small.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::Serialize;

use crate::exchange::Completion;
use crate::names::{PerStage, Stage};
use crate::stage::RunContext;
use crate::{Error, Result};

/// Runs one child of one stage; the executor's only view of the work.
pub trait ChildRunner: Send + Sync {
    /// Runs `stage` for child `index`, attempt `attempt` (1-based).
    fn run(&self, stage: Stage, index: u32, attempt: u32) -> Result<Completion>;
}

impl ChildRunner for RunContext {
    fn run(&self, stage: Stage, index: u32, attempt: u32) -> Result<Completion> {
        self.run_child(stage, index, attempt)
    }
}

/// Executor settings.
#[derive(Debug, Clone, Copy)]
pub struct ExecutorConfig {
    /// Worker threads.
    pub workers: usize,
    /// Tries per child and stage, including the first (Batch's `attempts`, 1..=10).
    pub attempts: u32,
    /// The most children of each stage running at once.
    pub stage_concurrency: PerStage<usize>,
}

impl ExecutorConfig {
    /// `workers` threads, `attempts` tries, no per-stage cap.
    pub fn new(workers: usize, attempts: u32) -> Self {
        Self {
            workers: workers.max(1),
            attempts: attempts.max(1),
            stage_concurrency: PerStage::splat(usize::MAX),
        }
    }
}

/// Where a child's chain starts: `from` and every later stage run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Array index.
    pub index: u32,
    /// First stage to run.
    pub from: Stage,
}

/// How one stage ended for one child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Finished; the completion record it wrote.
    Succeeded {
        /// Attempts it took.
        attempts: u32,
        /// When the successful attempt started, as the executor saw it (µs since the epoch).
        started_us: u64,
        /// When it returned, output written (µs since the epoch).
        finished_us: u64,
        /// Its completion record.
        completion: Completion,
    },
    /// Failed on every attempt.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: String,
    },
    /// Not run because the same index failed in an earlier stage.
    DependencyFailed {
        /// The stage that failed.
        failed_stage: Stage,
    },
}

/// How many children of one stage ended each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutcomeCounts {
    /// Finished.
    pub succeeded: usize,
    /// Failed on every attempt.
    pub failed: usize,
    /// Not run because an earlier stage of the same index failed.
    pub dependency_failed: usize,
}

/// Something happened (for progress displays).
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// A child finished a stage (`ok` false: failed for good or dependency failure).
    Finished {
        /// The stage.
        stage: Stage,
        /// Whether it succeeded.
        ok: bool,
    },
    /// An attempt failed and will be retried.
    Retrying {
        /// The stage.
        stage: Stage,
    },
}

/// What an execution did, per task and stage.
#[derive(Debug, Clone, Default)]
pub struct Execution {
    /// `(index, [procure, process, egress])`, in task order; `None` for stages
    /// before the task's `from` stage.
    pub children: Vec<(u32, PerStage<Option<Outcome>>)>,
    /// Wall time of the whole execution.
    pub elapsed: std::time::Duration,
}

impl Execution {
    /// Indices whose chain did not finish, with the stage that failed and its error.
    pub fn failures(&self) -> Vec<(u32, Stage, String)> {
        let mut v = Vec::new();
        for (index, outcomes) in &self.children {
            for (stage, o) in outcomes.iter() {
                if let Some(Outcome::Failed { error, .. }) = o {
                    v.push((*index, stage, error.clone()));
                }
            }
        }
        v
    }

    /// Number of children with each outcome, per stage.
    pub fn counts(&self) -> PerStage<OutcomeCounts> {
        let mut c = PerStage::<OutcomeCounts>::default();
        for (_, outcomes) in &self.children {
            for (stage, o) in outcomes.iter() {
                match o {
                    Some(Outcome::Succeeded { .. }) => c[stage].succeeded += 1,
                    Some(Outcome::Failed { .. }) => c[stage].failed += 1,
                    Some(Outcome::DependencyFailed { .. }) => c[stage].dependency_failed += 1,
                    None => {}
                }
            }
        }
        c
    }

    /// Total retries (attempts beyond the first) across all children.
    pub fn retries(&self) -> u32 {
        self.children
            .iter()
            .flat_map(|(_, o)| o.values().flatten())
            .map(|o| match o {
                Outcome::Succeeded { attempts, .. } | Outcome::Failed { attempts, .. } => attempts - 1,
                Outcome::DependencyFailed { .. } => 0,
            })
            .sum()
    }
}

struct State {
    /// Ready queues per stage: (slot in `results`, attempt).
    ready: PerStage<VecDeque<(usize, u32)>>,
    running: PerStage<usize>,
    /// Workers asleep on the condition variable: when this one finds nothing to
    /// take and every other worker sleeps, the executor is stuck.
    waiting: usize,
    /// Chains not yet finished.
    open: usize,
    /// The worker threads.
    workers: usize,
    /// Chains are open but every other worker sleeps and this one finds nothing to
    /// take: no child runs, so nothing will ever wake a worker again (a bug, not an
    /// input). Every worker stops and [`execute`] says so instead of hanging.
    stuck: bool,
    results: Vec<(u32, PerStage<Option<Outcome>>)>,
}

impl State {
    fn take(&mut self, caps: &PerStage<usize>) -> Option<(Stage, usize, u32)> {
        for stage in [Stage::Egress, Stage::Process, Stage::Procure] {
            if self.running[stage] < caps[stage]
                && let Some((slot, attempt)) = self.ready[stage].pop_front()
            {
                self.running[stage] += 1;
                return Some((stage, slot, attempt));
            }
        }
        None
    }
}

/// Runs `tasks` with N_TO_N semantics on `config.workers` threads, calling
/// `observer` after every child (from worker threads, outside any lock).
pub fn execute(
    runner: &dyn ChildRunner,
    tasks: &[Task],
    config: &ExecutorConfig,
    observer: &(dyn Fn(Event) + Sync),
) -> Execution {
    let started = std::time::Instant::now();
    let mut state = State {
        ready: Default::default(),
        running: PerStage::default(),
        waiting: 0,
        open: tasks.len(),
        workers: config.workers.min(tasks.len()).max(1),
        stuck: false,
        results: tasks.iter().map(|t| (t.index, PerStage::default())).collect(),
    };
    for (slot, t) in tasks.iter().enumerate() {
        state.ready[t.from].push_back((slot, 1));
    }
    let workers = state.workers;
    let shared = (Mutex::new(state), Condvar::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker(runner, config, &shared, observer));
        }
    });
    let (state, _) = shared;
    let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        !state.stuck,
        "executor stuck: {} chains open, none ready to run within the stage caps and none running",
        state.open
    );
    Execution {
        children: state.results,
        elapsed: started.elapsed(),
    }
}

/// Sleeps on `cvar` until woken, counted in `waiting`: a worker that finds nothing
/// to take while all the others sleep knows the executor is stuck.
fn sleep_counted<'a>(mut guard: MutexGuard<'a, State>, cvar: &Condvar) -> MutexGuard<'a, State> {
    guard.waiting += 1;
    let mut guard = cvar.wait(guard).unwrap_or_else(|p| p.into_inner());
    guard.waiting -= 1;
    guard
}

fn worker(
    runner: &dyn ChildRunner,
    config: &ExecutorConfig,
    (lock, cvar): &(Mutex<State>, Condvar),
    observer: &(dyn Fn(Event) + Sync),
) {
    let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let Some((stage, slot, attempt)) = guard.take(&config.stage_concurrency) else {
            if guard.open == 0 || guard.stuck {
                cvar.notify_all();
                return;
            }
            if guard.waiting + 1 == guard.workers {
                guard.stuck = true;
                cvar.notify_all();
                return;
            }
            guard = sleep_counted(guard, cvar);
            continue;
        };
        let index = guard.results[slot].0;
        drop(guard);
        let started_us = crate::time::now_micros();
        // A panic in a runner is a failed attempt, not a dead executor.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(stage, index, attempt)))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    Err(Error::Child {
                        stage: stage.to_string(),
                        index,
                        message: format!("panicked: {msg}"),
                    })
                });
        let finished_us = crate::time::now_micros();
        let mut events: Vec<Event> = Vec::with_capacity(3);
        guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        guard.running[stage] -= 1;
        match result {
            Ok(completion) => {
                guard.results[slot].1[stage] = Some(Outcome::Succeeded {
                    attempts: attempt,
                    started_us,
                    finished_us,
                    completion,
                });
                events.push(Event::Finished { stage, ok: true });
                match stage.next() {
                    Some(next) => guard.ready[next].push_back((slot, 1)),
                    None => guard.open -= 1,
                }
            }
            Err(e) if attempt < config.attempts => {
                tracing::debug!(%stage, index, attempt, error = %e, "attempt failed, retrying");
                guard.ready[stage].push_back((slot, attempt + 1));
                events.push(Event::Retrying { stage });
            }
            Err(e) => {
                tracing::debug!(%stage, index, attempt, error = %e, "child failed for good");
                guard.results[slot].1[stage] = Some(Outcome::Failed {
                    attempts: attempt,
                    error: crate::error::chain(&e),
                });
                events.push(Event::Finished { stage, ok: false });
                let mut later = stage.next();
                while let Some(l) = later {
                    guard.results[slot].1[l] = Some(Outcome::DependencyFailed { failed_stage: stage });
                    events.push(Event::Finished { stage: l, ok: false });
                    later = l.next();
                }
                guard.open -= 1;
            }
        }
        // Always wake the sleepers: skipping the wake-up when none sleep saved one
        // system call per child (microseconds against a child's milliseconds) and
        // was a check no test could tell from its absence (results stay right, only
        // parallelism is lost).
        cvar.notify_all();
        drop(guard);
        for e in events {
            observer(e);
        }
        guard = lock.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// Every child of a run, from the first stage (a fresh run).
pub fn all_tasks(array_size: u32) -> Vec<Task> {
    (0..array_size)
        .map(|index| Task {
            index,
            from: Stage::Procure,
        })
        .collect()
}

/// What rerun must do for each child whose result is not verified: the first stage
/// whose output is missing or does not verify, looking backwards from egress. A
/// child whose object verifies is skipped.
///
/// The checks run on `threads` reader threads (rayon): they are independent reads,
/// exactly what a data-parallel iterator is for. The executor itself keeps its own
/// threads: its work is a dependency graph with per-stage caps, retries and
/// readiness that changes as children finish, which a fixed parallel iterator cannot
/// express.
pub fn rerun_tasks(ctx: &RunContext, threads: usize) -> Result<Vec<Task>> {
    use rayon::prelude::*;
    let n = ctx.manifest.plan.array_size;
    // Complete, lost (missing or not what it should be), or an error: a result that
    // cannot be read (a denied request, one that failed after its retries) says
    // nothing about the child, and calling it lost would resubmit the whole run.
    let complete = |stage: Stage, index: u32| match ctx.check_output(stage, index) {
        Ok(()) => Ok(true),
        Err(e) if e.is_missing_or_corrupt() => Ok(false),
        Err(e) => Err(e),
    };
    let tasks: Vec<Option<Task>> = crate::verify::reader_pool(threads)?.install(|| {
        (0..n)
            .into_par_iter()
            .map(|index| {
                if complete(Stage::Egress, index)? {
                    return Ok(None);
                }
                let from = if complete(Stage::Process, index)? {
                    Stage::Egress
                } else if complete(Stage::Procure, index)? {
                    Stage::Process
                } else {
                    Stage::Procure
                };
                Ok(Some(Task { index, from }))
            })
            .collect::<Result<_>>()
    })?;
    Ok(tasks.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Digest;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What a test runner reports for a child that ran.
    fn completed(stage: Stage, index: u32) -> Completion {
        Completion {
            run_id: "r".parse().unwrap(),
            index,
            stage,
            digest: Digest::default(),
            history: vec![],
        }
    }

    /// Records the order in which (stage, index) ran and fails on demand.
    struct Fake {
        log: Mutex<Vec<(Stage, u32, u32)>>,
        /// (stage, index) -> attempts that fail (1-based); u32::MAX: every attempt.
        failing: HashMap<(Stage, u32), u32>,
    }

    impl Fake {
        fn new(failing: &[((Stage, u32), u32)]) -> Self {
            Self {
                log: Mutex::new(Vec::new()),
                failing: failing.iter().copied().collect(),
            }
        }
    }

    impl ChildRunner for Fake {
        fn run(&self, stage: Stage, index: u32, attempt: u32) -> Result<Completion> {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.log.lock().unwrap().push((stage, index, attempt));
            if self
                .failing
                .get(&(stage, index))
                .is_some_and(|&fails| attempt <= fails)
            {
                return Err(Error::Child {
                    stage: stage.to_string(),
                    index,
                    message: "injected".into(),
                });
            }
            Ok(completed(stage, index))
        }
    }

    fn run(fake: &Fake, n: u32, workers: usize, attempts: u32) -> Execution {
        execute(
            fake,
            &all_tasks(n),
            &ExecutorConfig::new(workers, attempts),
            &|_| {},
        )
    }

    #[test]
    fn child_i_of_a_stage_starts_after_child_i_of_the_previous_and_not_after_the_stage() {
        let fake = Fake::new(&[]);
        let ex = run(&fake, 50, 2, 1);
        assert!(ex.counts().values().all(|c| *c
            == OutcomeCounts {
                succeeded: 50,
                ..Default::default()
            }));
        let log = fake.log.lock().unwrap();
        let pos = |s: Stage, i: u32| log.iter().position(|&(st, ix, _)| st == s && ix == i).unwrap();
        for i in 0..50 {
            assert!(pos(Stage::Procure, i) < pos(Stage::Process, i));
            assert!(pos(Stage::Process, i) < pos(Stage::Egress, i));
        }
        // N_TO_N: egress of child 0 happens before the last procure.
        assert!(
            pos(Stage::Egress, 0) < pos(Stage::Procure, 49),
            "stage waited for the whole previous stage"
        );
    }

    #[test]
    fn retries_until_success_within_attempts() {
        let fake = Fake::new(&[((Stage::Process, 3), 2)]);
        let ex = run(&fake, 5, 2, 3);
        assert!(ex.failures().is_empty());
        assert_eq!(ex.retries(), 2);
        let (_, o) = &ex.children[3];
        assert!(matches!(
            o[Stage::Process],
            Some(Outcome::Succeeded { attempts: 3, .. })
        ));
    }

    #[test]
    fn failed_child_fails_later_stages_of_that_index_only() {
        let fake = Fake::new(&[((Stage::Procure, 2), u32::MAX)]);
        let ex = run(&fake, 6, 2, 2);
        assert_eq!(
            ex.failures(),
            vec![(2, Stage::Procure, "procure child 2: injected".to_string())]
        );
        let (_, o) = &ex.children[2];
        assert!(matches!(
            o[Stage::Procure],
            Some(Outcome::Failed { attempts: 2, .. })
        ));
        assert_eq!(
            o[Stage::Process],
            Some(Outcome::DependencyFailed {
                failed_stage: Stage::Procure
            })
        );
        assert_eq!(
            o[Stage::Egress],
            Some(Outcome::DependencyFailed {
                failed_stage: Stage::Procure
            })
        );
        assert_eq!(
            ex.counts()[Stage::Egress],
            OutcomeCounts {
                succeeded: 5,
                failed: 0,
                dependency_failed: 1
            }
        );
        let log = fake.log.lock().unwrap();
        assert!(!log.iter().any(|&(s, i, _)| i == 2 && s != Stage::Procure));
        assert_eq!(
            log.iter()
                .filter(|&&(s, i, _)| i == 2 && s == Stage::Procure)
                .count(),
            2
        );
    }

    /// Counts the children running per stage, and holds procure 2, process 1 and
    /// egress 0 until all three run at once (a bounded wait: a broken executor
    /// fails the test rather than hanging it).
    #[derive(Default)]
    struct Overlap {
        running: PerStage<AtomicUsize>,
        peak: PerStage<AtomicUsize>,
        met: Mutex<usize>,
        all_met: std::sync::Condvar,
        overlapped: std::sync::atomic::AtomicBool,
    }

    impl ChildRunner for Overlap {
        fn run(&self, stage: Stage, index: u32, _: u32) -> Result<Completion> {
            let now = self.running[stage].fetch_add(1, Ordering::SeqCst) + 1;
            self.peak[stage].fetch_max(now, Ordering::SeqCst);
            let held = matches!(
                (stage, index),
                (Stage::Procure, 2) | (Stage::Process, 1) | (Stage::Egress, 0)
            );
            if held {
                let mut met = self.met.lock().unwrap();
                *met += 1;
                self.all_met.notify_all();
                let (met, _) = self
                    .all_met
                    .wait_timeout_while(met, std::time::Duration::from_secs(60), |m| *m < 3)
                    .unwrap();
                if *met >= 3 {
                    self.overlapped.store(true, Ordering::SeqCst);
                }
            }
            self.running[stage].fetch_sub(1, Ordering::SeqCst);
            Ok(completed(stage, index))
        }
    }

    #[test]
    fn stage_concurrency_is_respected_while_the_stages_overlap() {
        let runner = Overlap::default();
        let mut cfg = ExecutorConfig::new(4, 1);
        cfg.stage_concurrency = PerStage::splat(1);
        let ex = execute(&runner, &all_tasks(30), &cfg, &|_| {});
        assert!(ex.counts().values().all(|c| *c
            == OutcomeCounts {
                succeeded: 30,
                ..Default::default()
            }));
        // Never two children of one stage at once...
        for stage in Stage::ALL {
            assert_eq!(runner.peak[stage].load(Ordering::SeqCst), 1, "{stage}");
        }
        // ...while the three stages did run at the same time.
        assert!(
            runner.overlapped.load(Ordering::SeqCst),
            "the stages never overlapped"
        );
    }

    /// A stage no child may run in (a cap of 0, which the CLI refuses) leaves chains
    /// that can never finish: the executor says so instead of hanging.
    #[test]
    #[should_panic(expected = "executor stuck: 3 chains open")]
    fn an_executor_that_can_run_nothing_more_says_so() {
        let fake = Fake::new(&[]);
        let mut cfg = ExecutorConfig::new(2, 1);
        cfg.stage_concurrency = PerStage([1, 1, 0]);
        execute(&fake, &all_tasks(3), &cfg, &|_| {});
    }

    #[test]
    fn tasks_starting_later_skip_earlier_stages() {
        let fake = Fake::new(&[]);
        let tasks = [
            Task {
                index: 7,
                from: Stage::Egress,
            },
            Task {
                index: 9,
                from: Stage::Process,
            },
        ];
        let ex = execute(&fake, &tasks, &ExecutorConfig::new(2, 1), &|_| {});
        let log = fake.log.lock().unwrap();
        assert_eq!(log.len(), 3);
        assert!(ex.children[0].1[Stage::Procure].is_none() && ex.children[0].1[Stage::Process].is_none());
    }

    #[test]
    fn a_panicking_runner_is_a_failed_child() {
        struct Panics;
        impl ChildRunner for Panics {
            fn run(&self, _: Stage, index: u32, _: u32) -> Result<Completion> {
                if index == 1 {
                    panic!("boom");
                }
                Ok(completed(Stage::Procure, index))
            }
        }
        let ex = execute(&Panics, &all_tasks(3), &ExecutorConfig::new(2, 1), &|_| {});
        let f = ex.failures();
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f.iter().any(|(i, _, e)| *i == 1 && e.contains("boom")));
    }
}
