//! The replica failover family (`pilot-light`, `warm-standby`): a deployment in two
//! regions, its table replicated both ways as DynamoDB global tables replicate (item
//! by item, last writer wins), an API in each region, and a switch.
//!
//! One driver for both backends, over [`Deployment`]:
//! 1. the standby is as deployed (a pilot light answers nothing, a warm standby
//!    answers), the seed written through the primary's API reaches the replica;
//! 2. canaries are written through the clients' endpoint until the primary region is
//!    lost; what the replica held at that instant is read straight from its table;
//! 3. every acknowledged write older than the RPO target must be there (the replica
//!    converged), the younger ones missing are the loss (the measured RPO);
//! 4. the failover (`tandem dr failover`: switch the pilot light on, move the clients'
//!    DNS): RTO is the disaster to the first correct answer through the clients'
//!    endpoint *from the recovery region*, so a failover that never happened fails;
//! 5. writes through the clients' endpoint land in the recovery region; after the
//!    failback an item written on both sides holds the newest write in both regions,
//!    and what was written in the recovery region reached the primary.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::canaries::{ApiSink, Canaries};
use super::check::CheckKind;
use super::cleanup::Resource;
use super::client::{ApiClient, ApiEndpoint, Reply};
use super::restore::rto_check;
use super::verdict::convergence;
use super::wait::{Backoff, Poll, Waiter, ask_until, human};
use super::{Ctx, Measured, Run};
use crate::product::Product;
use crate::region::RegionName;
use crate::store::{Error, Result};

/// How the standby region waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandbyMode {
    /// Deployed and switched off (on AWS: its function's reserved concurrency is 0);
    /// the failover switches it on.
    PilotLight,
    /// Deployed and answering; the failover only moves the clients.
    WarmStandby,
}

impl StandbyMode {
    /// The name used by `tandem:standby` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            StandbyMode::PilotLight => "pilot-light",
            StandbyMode::WarmStandby => "warm-standby",
        }
    }
}

impl std::str::FromStr for StandbyMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pilot-light" => Ok(StandbyMode::PilotLight),
            "warm-standby" | "warm" => Ok(StandbyMode::WarmStandby),
            other => Err(Error::InvalidInput(format!(
                "standby {other:?} is not a standby mode: expected pilot-light or warm-standby"
            ))),
        }
    }
}

/// The most items the failover methods seed: they write through the deployed API
/// into the served table, at the usage plan's pace.
pub const FAILOVER_SEED_MAX: usize = 1000;

/// Requests the seed sends at once.
const SEED_CONCURRENCY: usize = 8;

/// A deployment in two regions as the failover methods drill it.
#[async_trait]
pub trait Deployment: Send + Sync + std::fmt::Debug {
    /// The primary region.
    fn primary_region(&self) -> &RegionName;
    /// The recovery region.
    fn recovery_region(&self) -> &RegionName;
    /// The drill's client of the APIs.
    fn client(&self) -> &ApiClient;
    /// The primary's API.
    fn primary_endpoint(&self) -> ApiEndpoint;
    /// The standby's API.
    fn standby_endpoint(&self) -> ApiEndpoint;
    /// Where clients send requests now: a DNS name that follows the failover, or
    /// (without one) the primary's API until the failover and the standby's after.
    fn client_endpoint(&self) -> ApiEndpoint;
    /// What the deployment is, for the report.
    fn describe(&self) -> String;
    /// The items `ids` as the table in `region` holds them now, read straight from
    /// it (not through the API: a pilot light's API answers nothing).
    async fn read(&self, region: &RegionName, ids: &[String]) -> Result<Vec<Product>>;
    /// The disaster: the primary region is lost. Locally its server and its
    /// replication stop; on AWS the drill declares it and writes there no more.
    async fn lose_primary(&self) -> Result<()>;
    /// What `tandem dr failover` does: the standby is switched on, clients are moved.
    async fn failover(&self, wait: &Waiter<'_>) -> Result<()>;
    /// And back: the primary serves again, the pilot light is off again.
    async fn failback(&self, wait: &Waiter<'_>) -> Result<()>;
}

/// Removes what the failover methods leave on a deployment, for either backend:
/// an item written through the API (deleted through the primary's API), or a
/// failover (failed back). `None`: the deployment is gone, and its items with it.
pub(crate) async fn undo(d: Option<&dyn Deployment>, r: &Resource, wait: &Waiter<'_>) -> Result<()> {
    match (d, r) {
        (None, _) => Ok(()),
        (Some(d), Resource::ApiItem { id }) => d.client().delete(&d.primary_endpoint(), id).await.map(|_| ()),
        (Some(d), Resource::Failover { .. }) => d.failback(wait).await,
        (Some(_), other) => Err(Error::InvalidInput(format!(
            "{other} is not a deployment's to undo"
        ))),
    }
}

/// Whether `reply` is `expected`, served from `region`.
fn is_answer(reply: &Reply, expected: &Product) -> bool {
    reply.status.is_success() && reply.product().is_some_and(|p| p == *expected)
}

/// Asks `ep` for item `id` until an answer passes `ok` and comes from `region`
/// (backing off, up to `timeout`). Returns whether one did, and what was seen last.
async fn served_from(
    client: &ApiClient,
    ep: &ApiEndpoint,
    id: &str,
    region: &RegionName,
    ok: impl Fn(&Reply) -> bool,
    timeout: Duration,
    max_pause: Duration,
) -> (bool, String) {
    let backoff = Backoff::new(Duration::from_millis(5), max_pause.min(Duration::from_secs(5)));
    let answered = ask_until(timeout, backoff, || async {
        match client.get(ep, id).await {
            Ok(r) if ok(&r) && r.region.as_deref() == Some(region.as_str()) => Ok(()),
            Ok(r) if ok(&r) => Err(format!(
                "a correct answer, but from {}",
                r.region.as_deref().unwrap_or("an unnamed region")
            )),
            Ok(r) => Err(format!("{}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    match answered {
        Ok(()) => (true, String::new()),
        Err(last) => (false, last),
    }
}

/// The failover family's driver.
pub(super) async fn replica_failover(ctx: &Ctx<'_>, run: &mut Run, mode: StandbyMode) -> Result<Measured> {
    let (b, g, o) = (ctx.backend, ctx.backend.guarantees(), ctx.opts);
    let d = b.deployment(mode, ctx.wait).await?;
    let (primary, recovery) = (d.primary_region().clone(), d.recovery_region().clone());
    let client = d.client().clone();
    run.step(format!("deployment: {}", d.describe()));

    // 1. The standby as deployed.
    let standby = d.standby_endpoint();
    let before = client
        .request(&standby, axum::http::Method::GET, "/health", None)
        .await;
    let answering = before.as_ref().is_ok_and(|r| r.status.is_success());
    let (ok, detail) = match mode {
        StandbyMode::PilotLight => (
            !answering,
            if answering {
                format!(
                    "{} answered before the failover: the pilot light is on",
                    standby.label
                )
            } else {
                format!("{} answered nothing before the failover", standby.label)
            },
        ),
        StandbyMode::WarmStandby => (
            answering,
            match &before {
                Ok(r) if answering => format!("{} answered {}", standby.label, r.status),
                Ok(r) => format!(
                    "{} answered {}: the warm standby is not running",
                    standby.label, r.status
                ),
                Err(e) => format!("{} did not answer: {e}", standby.label),
            },
        ),
    };
    run.checks.push(CheckKind::StandbyAsDeployed, ok, detail);

    let tag = ctx.table_name();
    let seed_count = o.products.min(FAILOVER_SEED_MAX);
    let entry = d.client_endpoint();
    let ids = seed(ctx, &client, &entry, &tag, seed_count).await?;
    let expected = d.read(&primary, &ids).await?;
    run.step(format!("seeded {} products through {}", ids.len(), entry.label));
    let want = ids.len();
    ctx.wait
        .until(&format!("the seed to reach {recovery}"), || async {
            let n = d.read(&recovery, &ids).await?.len();
            Ok(if n >= want {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{n} of {want} items"))
            })
        })
        .await?;
    run.step(format!("the seed reached the replica in {recovery}"));

    // 2. Canaries until the disaster.
    let sink = ApiSink {
        client: client.clone(),
        endpoint: entry.clone(),
        clock: ctx.clock(),
        cleanup: ctx.wait.cleanup.clone(),
        tag: tag.clone(),
    };
    let canaries = Canaries::start(Arc::new(sink), g.canary_interval);
    run.step(format!("canary writer started through {}", entry.label));
    tokio::time::sleep(g.canary_run).await;
    let disaster = Instant::now();
    let disaster_us = b.now_us();
    let acked = canaries.stop().await;
    d.lose_primary().await?;
    let acked_ids: Vec<String> = acked.iter().map(|a| a.id.clone()).collect();
    let held: HashSet<String> = d
        .read(&recovery, &acked_ids)
        .await?
        .into_iter()
        .map(|p| p.product_id)
        .collect();
    run.step(format!(
        "primary region {primary} lost: the replica held {} of {} acknowledged canaries",
        held.len(),
        acked.len()
    ));

    // 3. Convergence and loss.
    let window = o.rpo_target.as_micros() as u64;
    let c = convergence(&acked, &held, disaster_us, window);
    run.checks.push(
        CheckKind::ReplicaConverged,
        c.late.is_empty(),
        if c.late.is_empty() {
            format!(
                "every write acknowledged over {} before the disaster was in {recovery}",
                human(o.rpo_target)
            )
        } else {
            format!(
                "{} writes acknowledged over {} before the disaster were not in {recovery} (e.g. {})",
                c.late.len(),
                human(o.rpo_target),
                c.late.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            )
        },
    );
    let rpo = Duration::from_micros(c.rpo_us);
    run.checks.push(
        CheckKind::RpoWithinTarget,
        rpo <= o.rpo_target,
        format!(
            "{} of acknowledged writes lost, {} canaries (target {})",
            human(rpo),
            c.lost + c.late.len(),
            human(o.rpo_target)
        ),
    );

    // 4. The failover, and the first correct answer from the recovery region.
    ctx.wait.cleanup.add(Resource::Failover { to: recovery.clone() });
    if let Err(e) = d.failover(ctx.wait).await {
        run.checks.push(
            CheckKind::FailedOver,
            false,
            format!("the failover did not happen: {e}"),
        );
        return Ok(Measured {
            rpo_us: c.rpo_us,
            canaries_acknowledged: acked.len(),
            canaries_lost: c.lost + c.late.len(),
            ..Measured::default()
        });
    }
    run.step(format!("failover to {recovery}"));
    let probe = expected
        .first()
        .cloned()
        .ok_or_else(|| Error::InvalidInput("the seed is empty: use --products 1 or more".into()))?;
    let entry = d.client_endpoint();
    let (answered, last) = served_from(
        &client,
        &entry,
        &probe.product_id,
        &recovery,
        |r| is_answer(r, &probe),
        o.answer_timeout,
        g.max_poll,
    )
    .await;
    let rto = disaster.elapsed();
    run.checks.push(
        CheckKind::ApiAnswers,
        answered,
        if answered {
            format!(
                "GET /getProduct through {} answered correctly from {recovery} {} after the disaster",
                entry.label,
                human(rto)
            )
        } else {
            format!(
                "no correct answer from {recovery} through {} within {} (last: {last})",
                entry.label,
                human(o.answer_timeout)
            )
        },
    );
    run.checks.push(
        CheckKind::FailedOver,
        answered,
        if answered {
            format!("{} is served from {recovery}", entry.label)
        } else {
            format!("{} is not served from {recovery}: {last}", entry.label)
        },
    );
    run.step(if answered {
        format!("first correct answer from {recovery}")
    } else {
        format!("no correct answer from {recovery}")
    });
    rto_check(ctx, run, rto);

    // The replica's items, as the recovered API now serves them.
    let actual = d.read(&recovery, &ids).await?;
    let diff = super::restore::items_match(run, &expected, &actual, &format!(" in {recovery}"));

    // 5. Writes in the recovery region, the failback, last writer wins.
    if answered {
        writes_and_failback(ctx, run, d.as_ref(), &probe, &tag).await?;
    }
    Ok(Measured {
        rto,
        rpo_us: c.rpo_us,
        expected_items: expected.len(),
        diff,
        canaries_acknowledged: acked.len(),
        canaries_lost: c.lost + c.late.len(),
    })
}

/// Seeds `n` products through `ep`, a few requests at a time; returns their ids.
async fn seed(
    ctx: &Ctx<'_>,
    client: &ApiClient,
    ep: &ApiEndpoint,
    tag: &str,
    n: usize,
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    let mut next = 0;
    while next < n {
        let mut batch = tokio::task::JoinSet::new();
        for i in next..(next + SEED_CONCURRENCY).min(n) {
            let (client, ep) = (client.clone(), ep.clone());
            let title = format!("{tag} product {i}");
            batch.spawn(async move {
                let category = ["Books", "Audio", "Games", "Home"][i % 4];
                client.add(&ep, category, &title).await.map(|w| (i, w.id))
            });
        }
        next = (next + SEED_CONCURRENCY).min(n);
        // Every answer of the batch is waited for, so what was written is registered
        // for removal even when one write failed.
        let mut done = Vec::new();
        let mut failed = None;
        while let Some(joined) = batch.join_next().await {
            match joined.map_err(|e| Error::storage("seed through the API", e)) {
                Ok(Ok((i, id))) => {
                    ctx.wait.cleanup.add(Resource::ApiItem { id: id.clone() });
                    done.push((i, id));
                }
                Ok(Err(e)) | Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        done.sort();
        ids.extend(done.into_iter().map(|(_, id)| id));
    }
    Ok(ids)
}

/// After the failover: a new item and an update through the clients' endpoint land
/// in the recovery region; after the failback, the same item updated again through
/// it (now the primary) wins in both regions, and the new item reached the primary.
async fn writes_and_failback(
    ctx: &Ctx<'_>,
    run: &mut Run,
    d: &dyn Deployment,
    probe: &Product,
    tag: &str,
) -> Result<()> {
    let (primary, recovery) = (d.primary_region().clone(), d.recovery_region().clone());
    let client = d.client();
    let entry = d.client_endpoint();
    let added = client
        .add(&entry, "Books", &format!("{tag} written during the failover"))
        .await?;
    ctx.wait.cleanup.add(Resource::ApiItem { id: added.id.clone() });
    let updated = client
        .update(
            &entry,
            &probe.product_id,
            "Books",
            &format!("{tag} updated during the failover"),
        )
        .await?;
    let in_recovery = [&added, &updated]
        .iter()
        .all(|w| w.region.as_deref() == Some(recovery.as_str()));
    run.checks.push(
        CheckKind::WritesInRecovery,
        in_recovery,
        format!(
            "an add and an update through {} were taken by {} and {}",
            entry.label,
            added.region.as_deref().unwrap_or("an unnamed region"),
            updated.region.as_deref().unwrap_or("an unnamed region")
        ),
    );
    run.step(format!("wrote through {} during the failover", entry.label));

    d.failback(ctx.wait).await?;
    ctx.wait
        .cleanup
        .forget(&Resource::Failover { to: recovery.clone() });
    run.step(format!("failed back to {primary}"));
    let entry = d.client_endpoint();
    // Clients reach the primary again (a DNS name follows within its TTL).
    let (back, last) = served_from(
        client,
        &entry,
        &probe.product_id,
        &primary,
        |r| r.status.is_success(),
        ctx.opts.answer_timeout,
        ctx.wait.max_poll,
    )
    .await;
    if !back {
        run.checks.push(
            CheckKind::LastWriterWins,
            false,
            format!(
                "{} did not reach {primary} again after the failback: {last}",
                entry.label
            ),
        );
        return Ok(());
    }
    let newest_title = format!("{tag} updated after the failback");
    let last = client
        .update(&entry, &probe.product_id, "Books", &newest_title)
        .await?;
    let ids = [added.id.clone(), probe.product_id.clone()];
    // Both sides converge (a bounded wait: replication takes seconds, not hours).
    let converge = Waiter {
        limit: ctx.opts.answer_timeout,
        poll: ctx.wait.poll,
        max_poll: ctx.wait.max_poll,
        say: ctx.wait.say,
        cleanup: ctx.wait.cleanup,
    };
    let settled = converge
        .until("both regions to hold the newest writes", || async {
            let mut views = Vec::new();
            for region in [&primary, &recovery] {
                let items = d.read(region, &ids).await?;
                let has_added = items.iter().any(|p| p.product_id == added.id);
                let title = items
                    .iter()
                    .find(|p| p.product_id == probe.product_id)
                    .map(|p| p.product_title.clone());
                views.push((region.clone(), has_added, title));
            }
            let done = views
                .iter()
                .all(|(_, has_added, title)| *has_added && title.as_deref() == Some(newest_title.as_str()));
            Ok(if done {
                Poll::Ready(views)
            } else {
                Poll::Pending(
                    views
                        .iter()
                        .map(|(r, a, t)| {
                            format!(
                                "{r}: {} the recovery-side item, title {}",
                                if *a { "has" } else { "lacks" },
                                t.as_deref().unwrap_or("(none)")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
        })
        .await;
    let (ok, detail) = match settled {
        Ok(_) => (
            true,
            format!(
                "{} holds the failback's write in {primary} and {recovery} (taken by {}); the item added in {recovery} reached {primary}",
                probe.product_id,
                last.region.as_deref().unwrap_or("an unnamed region")
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    run.checks.push(CheckKind::LastWriterWins, ok, detail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::client::Transport;
    use axum::body::Bytes;
    use axum::http::{Request, Response, StatusCode};
    use std::sync::Arc;

    /// Answers every request with `status` (the product when it is a 200), saying
    /// it was served from `region`.
    #[derive(Debug)]
    struct Answering {
        status: u16,
        region: &'static str,
    }

    #[async_trait::async_trait]
    impl Transport for Answering {
        async fn send(
            &self,
            _: Request<Bytes>,
        ) -> std::result::Result<Response<Bytes>, crate::store::BoxError> {
            let body = if self.status == 200 {
                serde_json::json!({
                    "product_id": "p", "product_category": "Books", "product_title": "t",
                    "sum_rating": 0, "count_rating": 0, "updated_at_us": 1
                })
            } else {
                serde_json::json!({"message": "product p not found"})
            };
            Ok(Response::builder()
                .status(self.status)
                .header(crate::api::REGION_HEADER, self.region)
                .body(Bytes::from(body.to_string()))
                .unwrap())
        }
    }

    /// A wait that ends without its answer says what it saw last: a correct answer
    /// from the other region is named as such, anything else by its status.
    #[tokio::test(start_paused = true)]
    async fn a_wait_that_ends_unanswered_says_what_it_saw_last() {
        let region: RegionName = "us-east-1".parse().unwrap();
        let ep = ApiEndpoint::new("the clients' name", "https://api.example.fake/prod", None);
        let last = |status: u16, from: &'static str| {
            let client = ApiClient::new(
                Arc::new(Answering { status, region: from }),
                Duration::from_secs(1),
            );
            let (ep, region) = (ep.clone(), region.clone());
            async move {
                served_from(
                    &client,
                    &ep,
                    "p",
                    &region,
                    |r: &Reply| r.status.is_success(),
                    Duration::from_secs(10),
                    Duration::from_secs(1),
                )
                .await
            }
        };
        assert_eq!(
            last(200, "us-east-2").await,
            (false, "a correct answer, but from us-east-2".to_string())
        );
        assert_eq!(last(404, "us-east-2").await, (false, "404 Not Found".to_string()));
        assert_eq!(last(404, "us-east-1").await, (false, "404 Not Found".to_string()));
        assert!(last(200, "us-east-1").await.0);
    }

    /// A correct answer is a success carrying the very product expected: a 200 with
    /// another version of it (a standby reading a stale table), a 404 the recovery
    /// region says itself (a standby reading another table) or API Gateway's 500 (a
    /// pilot light still off) is not one, and the RTO is not measured at it.
    #[test]
    fn only_a_success_with_the_expected_product_is_a_correct_answer() {
        let expected = crate::store::suite::item("p", "t");
        let reply = |status: u16, body: String| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            region: Some("us-east-1".into()),
            body: Bytes::from(body),
        };
        let json = |p: &Product| serde_json::to_string(p).unwrap();
        let stale = Product {
            product_title: "t, as it was".into(),
            ..expected.clone()
        };
        assert!(is_answer(&reply(200, json(&expected)), &expected));
        assert!(!is_answer(&reply(200, json(&stale)), &expected));
        assert!(!is_answer(&reply(200, "{}".into()), &expected));
        assert!(!is_answer(
            &reply(404, r#"{"message":"product p not found"}"#.into()),
            &expected
        ));
        assert!(!is_answer(
            &reply(500, r#"{"message":"Internal server error"}"#.into()),
            &expected
        ));
        // The product expected, but not a success (a body echoed on an error).
        assert!(!is_answer(&reply(409, json(&expected)), &expected));
    }
}
