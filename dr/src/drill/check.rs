//! What a method checks, typed: each [`Check`] is one [`CheckKind`], whether it
//! held, and the finding. A method passes only when every check it made held.

use serde::Serialize;
use serde::ser::SerializeStruct;

/// What a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The method ran to its end (its failure is the detail otherwise).
    MethodCompleted,
    /// The disaster the method recovers from happened as staged: the PITR method's bad
    /// deploy deleted and corrupted the items it names in the live table.
    DisasterStaged,
    /// Everything the method made was removed.
    CleanedUp,
    /// The recovered API answered a read correctly within the answer timeout.
    ApiAnswers,
    /// The recovered items equal what the method must recover, item by item.
    ItemsMatch,
    /// Disaster to the first correct answer within the RTO target.
    RtoWithinTarget,
    /// The acknowledged writes lost within the RPO target (replica methods).
    RpoWithinTarget,
    /// The backup plan made a recovery point of the table within its last day.
    PlanRecoveryPoint,
    /// The plan's rule backs up on its documented schedule.
    PlanSchedule,
    /// The plan's rule keeps recovery points as long as documented (and no longer).
    PlanRetention,
    /// The plan's rule copies every recovery point to the recovery region.
    PlanCopy,
    /// Every acknowledged write older than the RPO target reached the replica.
    ReplicaConverged,
    /// Before the failover, the standby was as deployed: a pilot light off, a warm
    /// standby answering.
    StandbyAsDeployed,
    /// After the failover, clients reach the recovery region.
    FailedOver,
    /// After the failover, writes through the clients' endpoint land in the recovery
    /// region.
    WritesInRecovery,
    /// After the failback, an item written on both sides holds the newest write in
    /// both regions, and what was written in the recovery region reached the primary.
    LastWriterWins,
}

impl CheckKind {
    /// The check's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::MethodCompleted => "method completed",
            CheckKind::DisasterStaged => "disaster staged",
            CheckKind::CleanedUp => "cleaned up",
            CheckKind::ApiAnswers => "recovered API answers",
            CheckKind::ItemsMatch => "items match",
            CheckKind::RtoWithinTarget => "RTO within target",
            CheckKind::RpoWithinTarget => "RPO within target",
            CheckKind::PlanRecoveryPoint => "the plan made a recovery point",
            CheckKind::PlanSchedule => "backed up on schedule",
            CheckKind::PlanRetention => "kept for the retention period",
            CheckKind::PlanCopy => "copied to the recovery region",
            CheckKind::ReplicaConverged => "replica converged",
            CheckKind::StandbyAsDeployed => "standby as deployed",
            CheckKind::FailedOver => "clients failed over",
            CheckKind::WritesInRecovery => "writes land in the recovery region",
            CheckKind::LastWriterWins => "last writer wins after failback",
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One check of a method: what was checked, whether it held, and the finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub kind: CheckKind,
    /// Whether it held.
    pub ok: bool,
    /// The finding (numbers, names, the difference).
    pub detail: String,
}

impl Check {
    /// A check of `kind`.
    pub fn new(kind: CheckKind, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            kind,
            ok,
            detail: detail.into(),
        }
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Check", 4)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("name", self.kind.name())?;
        st.serialize_field("ok", &self.ok)?;
        st.serialize_field("detail", &self.detail)?;
        st.end()
    }
}

/// The checks of one method, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Checks(Vec<Check>);

impl Checks {
    /// Records a check.
    pub fn push(&mut self, kind: CheckKind, ok: bool, detail: impl Into<String>) {
        self.0.push(Check::new(kind, ok, detail));
    }

    /// Records checks made elsewhere.
    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.0.extend(checks);
    }

    /// The check of `kind`, when it was made.
    pub fn get(&self, kind: CheckKind) -> Option<&Check> {
        self.0.iter().find(|c| c.kind == kind)
    }

    /// Every check.
    pub fn iter(&self) -> impl Iterator<Item = &Check> {
        self.0.iter()
    }

    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.0.iter().filter(|c| !c.ok)
    }

    /// True when at least one check was made and every one held.
    pub fn all_held(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|c| c.ok)
    }

    /// How many checks were made.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when none was made.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_with_no_check_or_one_failed_check_did_not_pass() {
        let mut c = Checks::default();
        assert!(!c.all_held(), "no check is no pass");
        c.push(CheckKind::ItemsMatch, true, "10 items");
        assert!(c.all_held());
        c.push(CheckKind::RtoWithinTarget, false, "3 h (target 2 h)");
        assert!(!c.all_held());
        assert_eq!(
            c.failed().map(|c| c.kind).collect::<Vec<_>>(),
            [CheckKind::RtoWithinTarget]
        );
        assert!(c.get(CheckKind::ItemsMatch).is_some_and(|c| c.ok));
        assert!(c.get(CheckKind::ApiAnswers).is_none());
    }

    #[test]
    fn a_check_serializes_with_its_kind_and_name() {
        let v = serde_json::to_value(Check::new(CheckKind::ReplicaConverged, false, "2 missing")).unwrap();
        assert_eq!(v["kind"], "replica-converged");
        assert_eq!(v["name"], "replica converged");
        assert_eq!(v["ok"], false);
    }
}
