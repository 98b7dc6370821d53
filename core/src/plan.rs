//! The partition plan: which IDs each array child owns.
//!
//! Child `i` owns positions `[i*K, min((i+1)*K, N))` of the run's ID list. The plan is
//! plain arithmetic so that prepare, every worker and verify agree without talking
//! to each other; it refuses runs AWS Batch cannot hold (more than 10,000 children).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// AWS Batch's largest array job.
pub const MAX_ARRAY_SIZE: u32 = 10_000;

/// The most records one run may hold: 10,000 children of 100 million IDs each would
/// already be far past what one child can process; this bound only stops absurd
/// values (and overflow) early with a clear message.
pub const MAX_RECORDS: u64 = 1_000_000_000_000;

/// How `records` IDs are split across array children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlan {
    /// `N`: how many IDs the run processes.
    pub records: u64,
    /// `K`: the most IDs one child handles.
    pub ids_per_node: u64,
    /// `A = ceil(N / K)`: the number of array children.
    pub array_size: u32,
}

impl PartitionPlan {
    /// Checks `records` and `ids_per_node` and computes the array size.
    ///
    /// Refuses a plan that needs more than [`MAX_ARRAY_SIZE`] children, naming the
    /// smallest `--ids-per-node` that would fit.
    pub fn new(records: u64, ids_per_node: u64) -> Result<Self> {
        if records == 0 {
            return Err(Error::InvalidInput("--records must be at least 1, got 0".into()));
        }
        if records > MAX_RECORDS {
            return Err(Error::InvalidInput(format!(
                "--records {records} is more than tandem accepts in one run ({MAX_RECORDS}); \
                 split the work into several runs"
            )));
        }
        if ids_per_node == 0 {
            return Err(Error::InvalidInput(
                "--ids-per-node must be at least 1, got 0".into(),
            ));
        }
        let children = records.div_ceil(ids_per_node);
        if children > u64::from(MAX_ARRAY_SIZE) {
            let fits = records.div_ceil(u64::from(MAX_ARRAY_SIZE));
            return Err(Error::InvalidInput(format!(
                "{records} records at --ids-per-node {ids_per_node} need {children} array children, \
                 but AWS Batch allows at most {MAX_ARRAY_SIZE}; use --ids-per-node {fits} or more \
                 (or at most {} records at {ids_per_node} per node)",
                u64::from(MAX_ARRAY_SIZE) * ids_per_node
            )));
        }
        Ok(Self {
            records,
            ids_per_node,
            array_size: children as u32,
        })
    }

    /// Positions in the ID list owned by child `index`, or an error naming the index
    /// and the valid range.
    pub fn slice(&self, index: u32) -> Result<Range<usize>> {
        if index >= self.array_size {
            return Err(Error::InvalidInput(format!(
                "array index {index} is out of range: this run has {} children (0..={})",
                self.array_size,
                self.array_size - 1
            )));
        }
        let start = u64::from(index) * self.ids_per_node;
        let end = (start + self.ids_per_node).min(self.records);
        Ok(start as usize..end as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_covers_exactly(plan: &PartitionPlan) {
        let mut next = 0usize;
        for i in 0..plan.array_size {
            let r = plan.slice(i).unwrap();
            assert_eq!(r.start, next, "gap or overlap before child {i}");
            assert!(r.end > r.start, "child {i} is empty");
            assert!((r.end - r.start) as u64 <= plan.ids_per_node);
            next = r.end;
        }
        assert_eq!(next as u64, plan.records, "plan does not end at N");
    }

    #[test]
    fn slices_have_no_gaps_or_overlaps() {
        for (n, k) in [(400_000, 40), (1000, 7), (10, 3), (99, 100), (1, 1), (1, 40)] {
            let plan = PartitionPlan::new(n, k).unwrap();
            assert_eq!(u64::from(plan.array_size), n.div_ceil(k));
            assert_covers_exactly(&plan);
        }
    }

    #[test]
    fn last_child_takes_the_remainder() {
        let plan = PartitionPlan::new(1001, 100).unwrap();
        assert_eq!(plan.array_size, 11);
        assert_eq!(plan.slice(10).unwrap(), 1000..1001);
    }

    #[test]
    fn fewer_records_than_ids_per_node_is_one_child() {
        let plan = PartitionPlan::new(5, 40).unwrap();
        assert_eq!(plan.array_size, 1);
        assert_eq!(plan.slice(0).unwrap(), 0..5);
    }

    #[test]
    fn one_record_is_one_child() {
        let plan = PartitionPlan::new(1, 40).unwrap();
        assert_eq!(plan.array_size, 1);
        assert_eq!(plan.slice(0).unwrap(), 0..1);
    }

    #[test]
    fn exactly_ten_thousand_children_is_allowed() {
        let plan = PartitionPlan::new(400_000, 40).unwrap();
        assert_eq!(plan.array_size, MAX_ARRAY_SIZE);
    }

    #[test]
    fn refuses_more_than_ten_thousand_children_and_says_what_fits() {
        let err = PartitionPlan::new(400_001, 40).unwrap_err().to_string();
        assert!(err.contains("10001 array children"), "{err}");
        assert!(err.contains("--ids-per-node 41"), "{err}");
        // and the suggestion really fits
        assert!(PartitionPlan::new(400_001, 41).is_ok());
    }

    #[test]
    fn refuses_zero_and_absurd_values() {
        assert!(
            PartitionPlan::new(0, 40)
                .unwrap_err()
                .to_string()
                .contains("--records")
        );
        assert!(
            PartitionPlan::new(10, 0)
                .unwrap_err()
                .to_string()
                .contains("--ids-per-node")
        );
        let err = PartitionPlan::new(u64::MAX, u64::MAX).unwrap_err().to_string();
        assert!(err.contains(&u64::MAX.to_string()), "{err}");
    }

    #[test]
    fn index_out_of_range_names_the_range() {
        let plan = PartitionPlan::new(100, 10).unwrap();
        let err = plan.slice(10).unwrap_err().to_string();
        assert!(err.contains("index 10") && err.contains("0..=9"), "{err}");
    }
}
