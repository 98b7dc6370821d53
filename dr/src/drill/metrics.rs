//! A drill's report as CloudWatch metrics: what a scheduled game day publishes
//! (namespace [`NAMESPACE`], every datum with the dimension `Stack`, the
//! per-method ones with `Method` too) and the alarms of the DR stack watch.
//!
//! Per drill: `DrillPassed` (1 or 0), `MethodsFailed` and `LeftBehind` (counts).
//! Per method: `Passed` (1 or 0), `RtoSeconds`, `RpoSeconds`. A drill that could
//! not run at all (an error before any method) publishes `DrillPassed` 0 alone.

use super::{DrillReport, Method};

/// The namespace the metrics go to (CloudWatch refuses names starting `AWS/`).
pub const NAMESPACE: &str = "tandem/DR";

/// A metric the drill publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName {
    /// 1 when every method passed and nothing was left behind, else 0.
    DrillPassed,
    /// Methods that failed.
    MethodsFailed,
    /// Resources the drill could not remove.
    LeftBehind,
    /// Per method: 1 when every check held (the targets included), else 0.
    Passed,
    /// Per method: disaster to the first correct answer.
    RtoSeconds,
    /// Per method: the span of acknowledged writes lost.
    RpoSeconds,
}

impl MetricName {
    /// The metric's name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            MetricName::DrillPassed => "DrillPassed",
            MetricName::MethodsFailed => "MethodsFailed",
            MetricName::LeftBehind => "LeftBehind",
            MetricName::Passed => "Passed",
            MetricName::RtoSeconds => "RtoSeconds",
            MetricName::RpoSeconds => "RpoSeconds",
        }
    }
}

/// CloudWatch's unit of a datum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

/// One datum: a metric, the method it is about (none for the drill's own), a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: MetricName,
    pub method: Option<Method>,
    pub value: f64,
    pub unit: Unit,
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Every datum of `report`.
pub fn of_report(report: &DrillReport) -> Vec<Metric> {
    let failed = report.methods.iter().filter(|m| !m.passed).count();
    let drill = |name, value| Metric {
        name,
        method: None,
        value,
        unit: Unit::Count,
    };
    let mut out = vec![
        drill(MetricName::DrillPassed, flag(report.passed)),
        drill(MetricName::MethodsFailed, failed as f64),
        drill(MetricName::LeftBehind, report.left_behind.len() as f64),
    ];
    for m in &report.methods {
        let method = Some(m.method);
        out.push(Metric {
            name: MetricName::Passed,
            method,
            value: flag(m.passed),
            unit: Unit::Count,
        });
        out.push(Metric {
            name: MetricName::RtoSeconds,
            method,
            value: m.rto_ms / 1000.0,
            unit: Unit::Seconds,
        });
        out.push(Metric {
            name: MetricName::RpoSeconds,
            method,
            value: m.rpo_ms / 1000.0,
            unit: Unit::Seconds,
        });
    }
    out
}

/// What a drill that could not run publishes: `DrillPassed` 0, so the alarm on it
/// fires as for a failed method.
pub fn could_not_run() -> Vec<Metric> {
    vec![Metric {
        name: MetricName::DrillPassed,
        method: None,
        value: 0.0,
        unit: Unit::Count,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{Checks, DrillOptions, MethodResult};
    use std::time::Duration;

    fn method(method: Method, passed: bool, rto_ms: f64, rpo_ms: f64) -> MethodResult {
        MethodResult {
            method,
            passed,
            rto_ms,
            rpo_ms,
            rpo_guarantee: String::new(),
            rpo_judged: false,
            expected_items: 10,
            missing: 0,
            extra: 0,
            different: 0,
            canaries_acknowledged: 0,
            canaries_lost: 0,
            checks: Checks::default(),
            steps: Vec::new(),
        }
    }

    fn report(methods: Vec<MethodResult>, left_behind: Vec<String>) -> DrillReport {
        let opts = DrillOptions {
            primary_region: "us-east-2".parse().unwrap(),
            recovery_region: "us-east-1".parse().unwrap(),
            products: 10,
            methods: Method::ALL.to_vec(),
            rto_target: Duration::from_secs(60),
            rpo_target: Duration::from_secs(5),
            pitr_window_days: 35,
            answer_timeout: Duration::from_secs(30),
            wait_limit: Duration::from_secs(60),
        };
        DrillReport::new("dynamodb", &opts, methods, left_behind)
    }

    fn value(ms: &[Metric], name: MetricName, method: Option<Method>) -> f64 {
        let found: Vec<f64> = ms
            .iter()
            .filter(|m| m.name == name && m.method == method)
            .map(|m| m.value)
            .collect();
        assert_eq!(found.len(), 1, "{name:?} {method:?} in {ms:?}");
        found[0]
    }

    #[test]
    fn a_passing_drill_publishes_each_method_and_its_verdict() {
        let r = report(
            vec![
                method(Method::Pitr, true, 61_500.0, 250.0),
                method(Method::Backup, true, 1_000.0, 0.0),
            ],
            vec![],
        );
        let ms = of_report(&r);
        assert_eq!(ms.len(), 3 + 2 * 3);
        assert_eq!(value(&ms, MetricName::DrillPassed, None), 1.0);
        assert_eq!(value(&ms, MetricName::MethodsFailed, None), 0.0);
        assert_eq!(value(&ms, MetricName::LeftBehind, None), 0.0);
        assert_eq!(value(&ms, MetricName::Passed, Some(Method::Pitr)), 1.0);
        assert_eq!(value(&ms, MetricName::RtoSeconds, Some(Method::Pitr)), 61.5);
        assert_eq!(value(&ms, MetricName::RpoSeconds, Some(Method::Pitr)), 0.25);
        assert_eq!(value(&ms, MetricName::RtoSeconds, Some(Method::Backup)), 1.0);
        let units: Vec<(MetricName, Unit)> = ms.iter().map(|m| (m.name, m.unit)).collect();
        assert!(units.contains(&(MetricName::RtoSeconds, Unit::Seconds)));
        assert!(units.contains(&(MetricName::Passed, Unit::Count)));
    }

    #[test]
    fn a_failed_method_or_a_leftover_fails_the_drill_metric() {
        let failed = of_report(&report(
            vec![
                method(Method::Pitr, true, 1.0, 0.0),
                method(Method::Scheduled, false, 1.0, 0.0),
            ],
            vec![],
        ));
        assert_eq!(value(&failed, MetricName::DrillPassed, None), 0.0);
        assert_eq!(value(&failed, MetricName::MethodsFailed, None), 1.0);
        assert_eq!(value(&failed, MetricName::Passed, Some(Method::Scheduled)), 0.0);
        assert_eq!(value(&failed, MetricName::Passed, Some(Method::Pitr)), 1.0);

        let left = of_report(&report(
            vec![method(Method::Pitr, true, 1.0, 0.0)],
            vec!["table Product-drill-x".into()],
        ));
        assert_eq!(value(&left, MetricName::DrillPassed, None), 0.0);
        assert_eq!(value(&left, MetricName::LeftBehind, None), 1.0);

        assert_eq!(
            could_not_run(),
            vec![Metric {
                name: MetricName::DrillPassed,
                method: None,
                value: 0.0,
                unit: Unit::Count
            }]
        );
    }
}
