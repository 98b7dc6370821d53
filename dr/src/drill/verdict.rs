//! How a recovery is judged: item-by-item comparison, the writes a restore lost,
//! and a replica's convergence. Pure functions over what was read.

use std::collections::{HashMap, HashSet};

use crate::product::Product;

/// An acknowledged write: the item's id and when its acknowledgement arrived (the
/// backend's clock, µs since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The item.
    pub id: String,
    /// When it was acknowledged.
    pub at_us: u64,
}

/// How two sets of items differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Diff {
    /// Expected items absent.
    pub missing: usize,
    /// Items present that should not be.
    pub extra: usize,
    /// Items present in both with different content.
    pub different: usize,
}

impl Diff {
    /// No difference.
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

/// Item-by-item comparison by content hash.
pub fn compare(expected: &[Product], actual: &[Product]) -> Diff {
    let want: HashMap<&str, u64> = expected
        .iter()
        .map(|p| (p.product_id.as_str(), p.content_hash()))
        .collect();
    let have: HashMap<&str, u64> = actual
        .iter()
        .map(|p| (p.product_id.as_str(), p.content_hash()))
        .collect();
    Diff {
        missing: want.keys().filter(|k| !have.contains_key(*k)).count(),
        extra: have.keys().filter(|k| !want.contains_key(*k)).count(),
        different: want
            .iter()
            .filter(|(k, h)| have.get(*k).is_some_and(|x| x != *h))
            .count(),
    }
}

/// The first few ids that differ, for the check's detail.
pub fn differing_ids(expected: &[Product], actual: &[Product]) -> String {
    let want: HashMap<&str, &Product> = expected.iter().map(|p| (p.product_id.as_str(), p)).collect();
    let have: HashMap<&str, &Product> = actual.iter().map(|p| (p.product_id.as_str(), p)).collect();
    let mut ids: Vec<&str> = want
        .keys()
        .chain(have.keys())
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        match (want.get(id), have.get(id)) {
            (Some(_), None) => out.push(format!("{id} missing")),
            (None, Some(_)) => out.push(format!("{id} extra")),
            (Some(a), Some(b)) if a.content_hash() != b.content_hash() => out.push(format!("{id} different")),
            _ => continue,
        }
        if out.len() == 5 {
            break;
        }
    }
    out.join(", ")
}

/// Both sides without the items written within `fuzz_us` of `at_us` (on either
/// side): a backup holds the writes of about its start, not exactly those before
/// it, so those cannot be judged. Returns the two sides and how many ids were
/// left out.
pub fn settled(
    expected: &[Product],
    actual: &[Product],
    at_us: u64,
    fuzz_us: u64,
) -> (Vec<Product>, Vec<Product>, usize) {
    let near = |p: &Product| p.updated_at_us.abs_diff(at_us) <= fuzz_us;
    let unsettled: HashSet<&str> = expected
        .iter()
        .chain(actual)
        .filter(|p| near(p))
        .map(|p| p.product_id.as_str())
        .collect();
    let keep = |side: &[Product]| -> Vec<Product> {
        side.iter()
            .filter(|p| !unsettled.contains(p.product_id.as_str()))
            .cloned()
            .collect()
    };
    (keep(expected), keep(actual), unsettled.len())
}

/// What a restore lost of the acknowledged writes: the span from the newest
/// surviving write before the first lost one to the newest lost one (0 when none was
/// lost). Returns (that span in µs, how many were lost).
pub fn rpo(acked: &[Acked], recovered: &[Product]) -> (u64, usize) {
    let present: HashSet<&str> = recovered.iter().map(|p| p.product_id.as_str()).collect();
    let lost: Vec<u64> = acked
        .iter()
        .filter(|a| !present.contains(a.id.as_str()))
        .map(|a| a.at_us)
        .collect();
    let Some(newest_lost) = lost.iter().copied().max() else {
        return (0, 0);
    };
    let oldest_lost = lost.iter().copied().min().unwrap_or(newest_lost);
    let newest_surviving_before = acked
        .iter()
        .filter(|a| present.contains(a.id.as_str()) && a.at_us < oldest_lost)
        .map(|a| a.at_us)
        .max();
    let start = newest_surviving_before
        .or_else(|| acked.first().map(|a| a.at_us))
        .unwrap_or(oldest_lost);
    (newest_lost.saturating_sub(start), lost.len())
}

/// A replica judged as DynamoDB replicates: item by item, in no promised order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Convergence {
    /// Writes acknowledged before the disaster.
    pub acknowledged: usize,
    /// Of those acknowledged longer than the window before the disaster, the ones the
    /// replica did not hold: replication broke its promise.
    pub late: Vec<String>,
    /// The writes of the window the replica did not hold: the loss.
    pub lost: usize,
    /// From the oldest lost write to the disaster, µs (0 when none was lost).
    pub rpo_us: u64,
}

/// Judges what the replica held at the disaster (`present`) against the writes
/// acknowledged before it: every write older than `window_us` must be there
/// (convergence); the missing younger ones are the loss, and the RPO is the age of
/// the oldest of them.
pub fn convergence(
    acked: &[Acked],
    present: &HashSet<String>,
    disaster_us: u64,
    window_us: u64,
) -> Convergence {
    let horizon = disaster_us.saturating_sub(window_us);
    let mut c = Convergence {
        acknowledged: acked.len(),
        ..Convergence::default()
    };
    let mut oldest_lost: Option<u64> = None;
    for a in acked.iter().filter(|a| !present.contains(&a.id)) {
        if a.at_us < horizon {
            c.late.push(a.id.clone());
        } else {
            c.lost += 1;
            oldest_lost = Some(oldest_lost.map_or(a.at_us, |o| o.min(a.at_us)));
        }
    }
    // A late write is lost too: the RPO counts from the oldest write missing.
    let oldest_missing = acked
        .iter()
        .filter(|a| !present.contains(&a.id))
        .map(|a| a.at_us)
        .min()
        .or(oldest_lost);
    c.rpo_us = oldest_missing.map_or(0, |t| disaster_us.saturating_sub(t));
    c
}

/// What every seeded item's id starts with (canaries and API writes do not).
pub(crate) const SEED_PREFIX: &str = "seed-";

/// Whether `p` is one of [`seed_items`].
pub fn is_seeded(p: &Product) -> bool {
    p.product_id.starts_with(SEED_PREFIX)
}

/// The seeded products: `seed-0000000` onwards, stamped `now_us`.
pub fn seed_items(n: usize, now_us: u64) -> Vec<Product> {
    (0..n)
        .map(|i| Product {
            product_id: format!("{SEED_PREFIX}{i:07}"),
            product_category: ["Books", "Audio", "Games", "Home"][i % 4].into(),
            product_title: format!("product {i}"),
            sum_rating: (i % 50) as i64,
            count_rating: (i % 7) as i64,
            updated_at_us: now_us,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_is_empty_only_when_nothing_differs() {
        assert!(Diff::default().is_empty());
        let d = |missing, extra, different| Diff {
            missing,
            extra,
            different,
        };
        // One of each kind alone, and kinds that would cancel or multiply to nothing.
        for diff in [
            d(1, 0, 0),
            d(0, 1, 0),
            d(0, 0, 1),
            d(1, 1, 0),
            d(2, 1, 1),
            d(3, 0, 2),
        ] {
            assert!(!diff.is_empty(), "{diff:?}");
        }
    }

    fn p(id: &str, title: &str, at: u64) -> Product {
        Product {
            product_id: id.into(),
            product_category: "c".into(),
            product_title: title.into(),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: at,
        }
    }

    fn acked(v: &[(&str, u64)]) -> Vec<Acked> {
        v.iter()
            .map(|(id, at)| Acked {
                id: id.to_string(),
                at_us: *at,
            })
            .collect()
    }

    #[test]
    fn compare_counts_missing_extra_and_different() {
        let want = [p("a", "1", 1), p("b", "2", 1), p("c", "3", 1)];
        let have = [p("a", "1", 1), p("b", "X", 1), p("d", "4", 1)];
        assert_eq!(
            compare(&want, &have),
            Diff {
                missing: 1,
                extra: 1,
                different: 1
            }
        );
        assert!(compare(&want, &want).is_empty());
        assert_eq!(differing_ids(&want, &have), "b different, c missing, d extra");
    }

    #[test]
    fn items_written_about_a_backups_start_are_left_out_on_both_sides() {
        // a: old on both sides; b: written 10 s after the start (only the backup has
        // it); c: rewritten 30 s before (the sides disagree); d: old, but missing
        // from the backup.
        let t = 1_000_000_000;
        let table = [p("a", "1", 1), p("c", "old", t - 30_000_000), p("d", "4", 1)];
        let backup = [
            p("a", "1", 1),
            p("b", "2", t + 10_000_000),
            p("c", "new", t - 29_000_000),
        ];
        let (e, a, left_out) = settled(&table, &backup, t, 60_000_000);
        assert_eq!(left_out, 2);
        assert_eq!(
            compare(&e, &a),
            Diff {
                missing: 1,
                extra: 0,
                different: 0
            }
        );
        assert_eq!(differing_ids(&e, &a), "d missing");
    }

    #[test]
    fn rpo_is_the_span_of_lost_acknowledged_writes() {
        let a = acked(&[("c1", 100), ("c2", 200), ("c3", 300), ("c4", 450)]);
        let recovered = [p("c1", "", 1), p("c2", "", 1)];
        assert_eq!(rpo(&a, &recovered), (250, 2));
        let all = [p("c1", "", 1), p("c2", "", 1), p("c3", "", 1), p("c4", "", 1)];
        assert_eq!(rpo(&a, &all), (0, 0));
    }

    #[test]
    fn rpo_counts_from_the_newest_write_that_survived_before_the_first_loss() {
        // A write that survived after the first lost one does not shorten the span.
        let a = acked(&[("s1", 100), ("l1", 200), ("s2", 300), ("l2", 400)]);
        let recovered = [p("s1", "", 1), p("s2", "", 1)];
        assert_eq!(rpo(&a, &recovered), (300, 2));
        // Nor does one acknowledged at the same instant as the first lost one: only a
        // write strictly before it is known to be in the recovery point's past.
        let a = acked(&[("s0", 100), ("s1", 200), ("l", 200)]);
        let recovered = [p("s0", "", 1), p("s1", "", 1)];
        assert_eq!(rpo(&a, &recovered), (100, 1));
    }

    #[test]
    fn a_write_acknowledged_exactly_at_the_windows_edge_is_within_the_window() {
        // The window is [disaster - window, disaster]: c2 at 400 is within it, so its
        // absence is a loss, not a broken promise.
        let a = acked(&[("c1", 100), ("c2", 400)]);
        let present: HashSet<String> = ["c1"].map(String::from).into();
        let c = convergence(&a, &present, 500, 100);
        assert_eq!((c.late.len(), c.lost, c.rpo_us), (0, 1, 100));
    }

    #[test]
    fn a_replica_converges_item_by_item_in_any_order() {
        // Replicated out of order: c4 arrived, c3 not yet; both within the 100 µs
        // window before the disaster at 500.
        let a = acked(&[("c1", 100), ("c2", 200), ("c3", 450), ("c4", 460)]);
        let present: HashSet<String> = ["c1", "c2", "c4"].map(String::from).into();
        let c = convergence(&a, &present, 500, 100);
        assert_eq!(
            c,
            Convergence {
                acknowledged: 4,
                late: vec![],
                lost: 1,
                rpo_us: 50
            }
        );
        // c2 is older than the window and missing: replication broke its promise.
        let present: HashSet<String> = ["c1", "c3", "c4"].map(String::from).into();
        let c = convergence(&a, &present, 500, 100);
        assert_eq!(c.late, ["c2"]);
        assert_eq!((c.lost, c.rpo_us), (0, 300));
        let everything: HashSet<String> = ["c1", "c2", "c3", "c4"].map(String::from).into();
        assert_eq!(convergence(&a, &everything, 500, 100).rpo_us, 0);
    }
}
