//! The restore families: point in time, a backup (on demand, or the plan's own), and
//! a backup copied to the recovery region. Each recovers into a new table and is
//! judged the same way ([`judge_restore`]): the API's router over the restored table
//! must answer correctly, and the table must hold exactly what it should.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::time::Instant;
use tower::ServiceExt;

use super::backend::{BackupKind, TableRef};
use super::canaries::{CANARY_CATEGORY, Canaries, StoreSink};
use super::check::CheckKind;
use super::cleanup::Resource;
use super::verdict::{Acked, Diff, compare, differing_ids, is_seeded, rpo, seed_items, settled};
use super::wait::{Backoff, Poll, ask_until, human};
use super::{Ctx, Measured, Method, Run};
use crate::api::{ApiState, router};
use crate::product::Product;
use crate::store::{Error, ProductStore, Result};

/// How far back the scheduled method looks for the plan's newest recovery point: a
/// daily rule, with two hours for the backup window.
pub const PLAN_LOOKBACK: Duration = Duration::from_secs(26 * 3600);

/// A scratch table `Product-drill-METHOD-ID` in the primary region, created and
/// seeded.
async fn scratch_table(ctx: &Ctx<'_>, run: &mut Run, pitr: bool) -> Result<(TableRef, Vec<Product>)> {
    let b = ctx.backend;
    let t = TableRef::new(&ctx.opts.primary_region, &ctx.table_name());
    ctx.wait.cleanup.add(Resource::Table(t.clone()));
    b.create_table(&t, pitr, ctx.wait).await?;
    let seed = seed_items(ctx.opts.products, b.now_us());
    b.load(&t, &seed).await?;
    run.step(format!("seeded {} products into {t}", ctx.opts.products));
    Ok((t, seed))
}

fn canaries_into(ctx: &Ctx<'_>, t: &TableRef) -> Result<Canaries> {
    let sink = StoreSink {
        store: ctx.backend.store(t)?,
        clock: ctx.clock(),
    };
    Ok(Canaries::start(
        Arc::new(sink),
        ctx.backend.guarantees().canary_interval,
    ))
}

/// `pitr`: a bad deploy deletes and corrupts items; the table is restored to the
/// instant before it.
pub(super) async fn point_in_time(ctx: &Ctx<'_>, run: &mut Run) -> Result<Measured> {
    let (b, g) = (ctx.backend, ctx.backend.guarantees());
    let (primary, _) = scratch_table(ctx, run, true).await?;
    let canaries = canaries_into(ctx, &primary)?;
    run.step("canary writer started");
    tokio::time::sleep(g.canary_run).await;
    let quiet = canaries.pause().await;
    tokio::time::sleep(g.pitr_margin).await;
    let restore_at = b.now_us();
    tokio::time::sleep(g.pitr_margin).await;
    // No write since the margin before the restore point: this is the table as it
    // was at that instant.
    let truth = b.scan(&primary).await?;
    drop(quiet);
    run.step(format!(
        "restore point chosen with the writer quiet {} on both sides ({} items)",
        human(g.pitr_margin),
        truth.len()
    ));
    tokio::time::sleep(g.canary_run / 2).await;
    let damaged = bad_deploy(b.store(&primary)?.as_ref(), &truth, b.now_us()).await?;
    run.step(format!("bad deploy deleted and corrupted {damaged} items"));
    // A restore proves something only if the table it undoes was damaged: every 20th
    // seeded item, the first of each pair deleted and the second corrupted.
    let seeded =
        |items: &[Product]| -> Vec<Product> { items.iter().filter(|p| is_seeded(p)).cloned().collect() };
    let victims = seeded(&truth).len().div_ceil(20);
    let want = Diff {
        missing: victims.div_ceil(2),
        extra: 0,
        different: victims / 2,
    };
    let live = compare(&seeded(&truth), &seeded(&b.scan(&primary).await?));
    run.checks.push(
        CheckKind::DisasterStaged,
        victims > 0 && damaged == victims && live == want,
        format!(
            "the bad deploy left {} missing and {} different of the seeded items (expected {} and {}: every 20th)",
            live.missing, live.different, want.missing, want.different
        ),
    );
    tokio::time::sleep(g.canary_run / 2).await;
    let disaster = Instant::now();
    run.step("disaster declared");
    let acked = canaries.stop().await;
    let need = restore_at + g.pitr_margin.as_micros() as u64;
    ctx.wait
        .until("the restorable window to pass the restore point", || async {
            let latest = b.latest_restorable_us(&primary).await?;
            Ok(if latest >= need {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "latest restorable time is {} behind it",
                    human(Duration::from_micros(need - latest))
                ))
            })
        })
        .await?;
    let target = TableRef::new(&ctx.opts.primary_region, &format!("{}-pitr", ctx.table_name()));
    ctx.wait.cleanup.add(Resource::Table(target.clone()));
    b.restore_to_time(&primary, restore_at, &target, ctx.wait).await?;
    run.step(format!("restored to the restore point into {target}"));
    judge_restore(ctx, run, &target, truth, &acked, disaster).await
}

/// `backup` and `cross-region`: a backup (on demand; for cross-region a recovery
/// point in the plan's vault, copied to the recovery region), then the table is
/// lost and the backup restored.
pub(super) async fn backup_and_copy(ctx: &Ctx<'_>, run: &mut Run) -> Result<Measured> {
    let (b, g) = (ctx.backend, ctx.backend.guarantees());
    let cross_region = ctx.method == Method::CrossRegion;
    let kind = if cross_region {
        BackupKind::Scheduled
    } else {
        BackupKind::OnDemand
    };
    let (primary, _) = scratch_table(ctx, run, false).await?;
    let canaries = canaries_into(ctx, &primary)?;
    run.step("canary writer started");
    tokio::time::sleep(g.canary_run).await;
    // A backup may hold writes from around its request: none happen then.
    let quiet = canaries.pause().await;
    tokio::time::sleep(g.backup_fuzz).await;
    let backup = b.backup(&primary, kind, ctx.wait).await?;
    tokio::time::sleep(g.backup_fuzz).await;
    let truth = b.scan(&primary).await?;
    drop(quiet);
    run.step(format!(
        "{} {} ({} items; writer quiet {} on both sides of the request)",
        match kind {
            BackupKind::OnDemand => "on-demand backup",
            BackupKind::Scheduled => "recovery point in the plan's vault",
        },
        backup.id,
        truth.len(),
        human(g.backup_fuzz)
    ));
    let source = if cross_region {
        let copy = b
            .copy_backup(&backup, &ctx.opts.recovery_region, ctx.wait)
            .await?;
        run.step(format!("copied to {} as {}", ctx.opts.recovery_region, copy.id));
        copy
    } else {
        backup
    };
    tokio::time::sleep(g.canary_run).await;
    let disaster = Instant::now();
    run.step(if cross_region {
        "primary region lost"
    } else {
        "table lost"
    });
    let acked = canaries.stop().await;
    b.delete_table(&primary).await?;
    let target = TableRef::new(&source.region, &format!("{}-restored", ctx.table_name()));
    ctx.wait.cleanup.add(Resource::Table(target.clone()));
    b.restore_backup(&source, &target, ctx.wait).await?;
    run.step(format!("restored the backup into {target}"));
    judge_restore(ctx, run, &target, truth, &acked, disaster).await
}

/// `scheduled`: the newest recovery point the deployed plan made (within a day),
/// restored, and compared with the table as it was when that backup started (a
/// point-in-time restore of the same table to that instant). No recovery point is a
/// failure that names the plan and the vault: a broken schedule never passes.
pub(super) async fn scheduled(ctx: &Ctx<'_>, run: &mut Run) -> Result<Measured> {
    let (b, g) = (ctx.backend, ctx.backend.guarantees());
    let seed = seed_items(ctx.opts.products, b.now_us());
    let source = b.plan_source(&seed, ctx.wait).await?;
    run.step(format!(
        "the plan {} backs up {} ({}) into vault {}",
        source.plan, source.table, source.schedule, source.vault
    ));
    run.checks.extend(b.plan_checks(&source, ctx.wait).await?);
    let disaster = Instant::now();
    let now = b.now_us();
    let since = now.saturating_sub(PLAN_LOOKBACK.as_micros() as u64);
    let points = b.plan_recovery_points(&source, since).await?;
    let Some(point) = points.first() else {
        run.checks.push(
            CheckKind::PlanRecoveryPoint,
            false,
            format!(
                "plan {} made no completed recovery point of {} in vault {} in the last {}: the scheduled backup is not happening",
                source.plan,
                source.table,
                source.vault,
                human(PLAN_LOOKBACK)
            ),
        );
        return Ok(Measured::default());
    };
    let age = Duration::from_micros(now.saturating_sub(point.created_us));
    run.checks.push(
        CheckKind::PlanRecoveryPoint,
        true,
        format!(
            "{} in vault {}, taken {} ago by plan {}",
            point.backup.id,
            source.vault,
            human(age),
            source.plan
        ),
    );
    run.step(format!(
        "disaster declared: restoring the plan's newest recovery point ({} old)",
        human(age)
    ));
    let restored = TableRef::new(&point.backup.region, &format!("{}-restored", ctx.table_name()));
    let then = TableRef::new(&source.table.region, &format!("{}-pitr", ctx.table_name()));
    ctx.wait.cleanup.add(Resource::Table(restored.clone()));
    ctx.wait.cleanup.add(Resource::Table(then.clone()));
    // The recovery and the truth, restored side by side.
    let (r, t) = tokio::join!(
        b.restore_backup(&point.backup, &restored, ctx.wait),
        b.restore_to_time(&source.table, point.created_us, &then, ctx.wait)
    );
    r?;
    t?;
    run.step(format!(
        "restored the recovery point into {restored}, and {} as it was at the backup's start into {then}",
        source.table
    ));
    let truth = b.scan(&then).await?;
    let fuzz = g.backup_fuzz.as_micros() as u64;
    let mut measured =
        judge_restore_around(ctx, run, &restored, truth, point.created_us, fuzz, disaster).await?;
    measured.rpo_us = now.saturating_sub(point.created_us);
    Ok(measured)
}

/// The PITR method's "bad deploy": deletes every 40th seeded item of `before` and
/// corrupts as many others. Returns how many items it damaged.
async fn bad_deploy(store: &dyn ProductStore, before: &[Product], now_us: u64) -> Result<usize> {
    let victims: Vec<&Product> = before.iter().filter(|p| is_seeded(p)).step_by(20).collect();
    for (i, v) in victims.iter().enumerate() {
        if i % 2 == 0 {
            store.delete(&v.product_id).await?;
        } else {
            store
                .update(&v.product_id, "corrupted", "corrupted", now_us)
                .await?;
        }
    }
    Ok(victims.len())
}

/// Asks the API for a product and checks the answer equals `expected`; `Err` says
/// what it answered instead.
async fn correct_answer(state: &ApiState, expected: &Product) -> std::result::Result<(), String> {
    let req = Request::builder()
        .uri(format!("/getProduct?product_id={}", expected.product_id))
        .body(Body::empty())
        .unwrap_or_default();
    // The router's error type is Infallible: every request gets a response.
    let Ok(resp) = router(state.clone()).oneshot(req).await;
    let status = resp.status();
    if status != StatusCode::OK {
        return Err(status.to_string());
    }
    let Ok(bytes) = axum::body::to_bytes(resp.into_body(), 1 << 20).await else {
        return Err(format!("{status} with a body that could not be read"));
    };
    match serde_json::from_slice::<Product>(&bytes) {
        Ok(p) if p == *expected => Ok(()),
        Ok(p) => Err(format!(
            "{status} with another version of {}: {p:?}",
            expected.product_id
        )),
        Err(e) => Err(format!("{status} with a body that is not a product: {e}")),
    }
}

/// RTO: from the disaster to the first correct answer of the API's router over
/// `table`, asked again with backoff until the answer timeout.
async fn first_answer(
    ctx: &Ctx<'_>,
    run: &mut Run,
    table: &TableRef,
    probe: &Product,
    disaster: Instant,
) -> Result<Duration> {
    let api = ApiState {
        store: ctx.backend.store(table)?,
        backups: None,
        api_key: None,
        region: Some(table.region.to_string()),
    };
    let backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(250));
    let answered = ask_until(ctx.opts.answer_timeout, backoff, || correct_answer(&api, probe)).await;
    let rto = disaster.elapsed();
    let (ok, detail) = match &answered {
        Ok(()) => (
            true,
            format!(
                "GET /getProduct over {table} answered correctly {} after the disaster",
                human(rto)
            ),
        ),
        Err(last) => (
            false,
            format!(
                "no correct answer within {} (last: {last})",
                human(ctx.opts.answer_timeout)
            ),
        ),
    };
    run.step(if ok {
        "first correct answer from the recovered API".to_string()
    } else {
        detail.clone()
    });
    run.checks.push(CheckKind::ApiAnswers, ok, detail);
    Ok(rto)
}

/// Judges a restored table: the API answers, every item is what it should be, RTO
/// within its target; the canaries it lost are the measured RPO.
async fn judge_restore(
    ctx: &Ctx<'_>,
    run: &mut Run,
    table: &TableRef,
    expected: Vec<Product>,
    acked: &[Acked],
    disaster: Instant,
) -> Result<Measured> {
    let probe = probe_of(&expected)?;
    let rto = first_answer(ctx, run, table, &probe, disaster).await?;
    let actual = ctx.backend.scan(table).await?;
    let diff = compare(&expected, &actual);
    let (rpo_us, lost) = rpo(acked, &actual);
    run.step(format!(
        "verified {} items: {} missing, {} extra, {} different",
        expected.len(),
        diff.missing,
        diff.extra,
        diff.different
    ));
    items_match(run, &expected, &actual, "");
    rto_check(ctx, run, rto);
    Ok(Measured {
        rto,
        rpo_us,
        expected_items: expected.len(),
        diff,
        canaries_acknowledged: acked.len(),
        canaries_lost: lost,
    })
}

/// [`judge_restore`] for a backup compared with the table at its start, leaving
/// out the items written within `fuzz_us` of it.
async fn judge_restore_around(
    ctx: &Ctx<'_>,
    run: &mut Run,
    table: &TableRef,
    truth: Vec<Product>,
    at_us: u64,
    fuzz_us: u64,
    disaster: Instant,
) -> Result<Measured> {
    let restored = ctx.backend.scan(table).await?;
    let (expected, actual, left_out) = settled(&truth, &restored, at_us, fuzz_us);
    let probe = probe_of(&expected)?;
    let rto = first_answer(ctx, run, table, &probe, disaster).await?;
    let diff = compare(&expected, &actual);
    run.step(format!(
        "verified {} items ({left_out} written within {} of the backup's start left out): {} missing, {} extra, {} different",
        expected.len(),
        human(Duration::from_micros(fuzz_us)),
        diff.missing,
        diff.extra,
        diff.different
    ));
    let note = if left_out > 0 {
        format!(" ({left_out} written about the backup's start not judged)")
    } else {
        String::new()
    };
    items_match(run, &expected, &actual, &note);
    rto_check(ctx, run, rto);
    Ok(Measured {
        rto,
        rpo_us: 0,
        expected_items: expected.len(),
        diff,
        canaries_acknowledged: 0,
        canaries_lost: 0,
    })
}

/// An item the recovered API must return: a product, not a canary.
fn probe_of(expected: &[Product]) -> Result<Product> {
    expected
        .iter()
        .find(|p| p.product_category != CANARY_CATEGORY)
        .or_else(|| expected.first())
        .cloned()
        .ok_or_else(|| Error::InvalidInput("nothing to recover: the table was empty".into()))
}

/// The `ItemsMatch` check: `actual` against `expected`, `note` after the verdict
/// (where, or what was left out). Returns the difference for the report.
pub(super) fn items_match(run: &mut Run, expected: &[Product], actual: &[Product], note: &str) -> Diff {
    let diff = compare(expected, actual);
    run.checks.push(
        CheckKind::ItemsMatch,
        !expected.is_empty() && diff.is_empty(),
        if diff.is_empty() {
            format!("{} items, all equal{note}", expected.len())
        } else {
            format!(
                "{} missing, {} extra, {} different of {} expected (e.g. {}){note}",
                diff.missing,
                diff.extra,
                diff.different,
                expected.len(),
                differing_ids(expected, actual)
            )
        },
    );
    diff
}

pub(super) fn rto_check(ctx: &Ctx<'_>, run: &mut Run, rto: Duration) {
    run.checks.push(
        CheckKind::RtoWithinTarget,
        rto <= ctx.opts.rto_target,
        format!("{} (target {})", human(rto), human(ctx.opts.rto_target)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedTable;
    use crate::store::suite::item as product;

    /// The recovered API's answer is correct only when it is the very product
    /// expected: an item the restore lacks (404), or holds in another version, is
    /// not an answer the RTO may be measured at.
    #[tokio::test]
    async fn only_the_expected_product_is_a_correct_answer() {
        let dir = tempfile::tempdir().unwrap();
        let table = EmbeddedTable::open_file("Product", &dir.path().join("t.redb")).unwrap();
        let stored = product("p", "as restored");
        table.create(&stored).await.unwrap();
        let api = ApiState {
            store: Arc::new(table),
            backups: None,
            api_key: None,
            region: Some("us-east-2".into()),
        };
        assert_eq!(correct_answer(&api, &stored).await, Ok(()));
        let stale = correct_answer(&api, &product("p", "as it was before"))
            .await
            .unwrap_err();
        assert!(stale.starts_with("200 OK with another version of p"), "{stale}");
        let missing = correct_answer(&api, &product("missing", "as restored")).await;
        assert_eq!(missing, Err("404 Not Found".to_string()));
    }
}
