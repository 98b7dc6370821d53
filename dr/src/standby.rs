//! The deployed standby region and its switch: what `tandem dr failover` and
//! `tandem dr failback` do, and what the drill does through them.
//!
//! The standby stack (in the recovery region) runs the product API over the replica
//! of the served table. As a **pilot light** its function's reserved concurrency is
//! 0: Lambda throttles every invocation, so the API answers nothing until the
//! failover removes that limit (Lambda's "Configuring reserved concurrency": "To
//! throttle a function, set the reserved concurrency to zero"). As a **warm
//! standby** it answers all along.
//!
//! Clients switch by DNS when the deployment has a hosted zone: a Route 53 failover
//! record answers with the primary's API while the health check of the primary's
//! `/health` passes, and with the standby's otherwise. When the primary region is
//! really down the check fails by itself; for a planned failover (or a drill) the
//! failover inverts a passing check, so Route 53 treats the primary as unhealthy.
//! Without a hosted zone, clients switch to the standby's URL (the stack's outputs).
//!
//! Everything here calls the recovery region (and Route 53), never the primary: the
//! failover must work when the primary region does not answer.

use std::time::Duration;

use tandem_sdk::ServiceError;

use crate::drill::{Poll, StandbyMode, Waiter};
use crate::region::RegionName;
use crate::store::{Error, Result};

/// How long a switched-on function may take to show it (Lambda applies a
/// concurrency change at once).
const SWITCH_LIMIT: Duration = Duration::from_secs(60);

/// How long clients may still be sent to the standby after Route 53's checkers see
/// the primary healthy again: Route 53 needs the check's failure threshold of
/// consecutive results at its request interval to change its view (3 × 30 s in the
/// stack; "How Amazon Route 53 determines whether a health check is healthy"), and
/// resolvers keep the old answer for the alias target's TTL (60 s for an API
/// Gateway regional domain).
pub const CLIENTS_BACK: Duration = Duration::from_secs(3 * 30 + 60);

/// The deployed standby, as the standby stack's outputs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// The recovery region.
    pub region: RegionName,
    /// How it waits.
    pub mode: StandbyMode,
    /// Its function (its name).
    pub function: String,
    /// The health check of the primary's API that the DNS failover record follows,
    /// when the deployment has a hosted zone.
    pub health_check: Option<String>,
}

/// The clients the switch needs: Lambda in the recovery region, Route 53.
#[derive(Debug, Clone)]
pub struct SwitchClients {
    /// Lambda, in the recovery region.
    pub lambda: aws_sdk_lambda::Client,
    /// Route 53 (a global service).
    pub route53: aws_sdk_route53::Client,
}

impl SwitchClients {
    /// The clients on `config`, Lambda in `region`.
    pub fn new(config: &aws_config::SdkConfig, region: &RegionName) -> Self {
        Self {
            lambda: crate::calls::lambda_client(config, Some(region.as_str())),
            route53: crate::calls::route53_client(config, None),
        }
    }
}

/// What the switch is set to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchState {
    /// The standby's function can run (no reserved concurrency of 0).
    pub standby_on: bool,
    /// The DNS failover is forced (the primary's health check is inverted), when
    /// there is one.
    pub dns_forced: Option<bool>,
}

/// Reads the switch.
pub async fn state(c: &SwitchClients, s: &Standby) -> Result<SwitchState> {
    let conc = c
        .lambda
        .get_function_concurrency()
        .function_name(&s.function)
        .send()
        .await
        .map_err(|e| {
            Error::storage(
                format!("read the concurrency of {}", s.function),
                ServiceError::from(e),
            )
        })?;
    let standby_on = conc.reserved_concurrent_executions() != Some(0);
    let dns_forced = match &s.health_check {
        Some(id) => Some(inverted(c, id).await?),
        None => None,
    };
    Ok(SwitchState {
        standby_on,
        dns_forced,
    })
}

async fn inverted(c: &SwitchClients, id: &str) -> Result<bool> {
    let hc = c
        .route53
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| Error::storage(format!("read health check {id}"), ServiceError::from(e)))?;
    Ok(hc
        .health_check()
        .and_then(|h| h.health_check_config())
        .and_then(|c| c.inverted())
        .unwrap_or(false))
}

/// Whether Route 53 considers the primary healthy now: "If more than 18% of health
/// checkers report that an endpoint is healthy, Route 53 considers it healthy" (the
/// Route 53 developer guide, "How Amazon Route 53 determines whether a health check
/// is healthy"). GetHealthCheckStatus is what the console shows; AWS asks that it
/// not be polled in a loop by production code, and it is read here once per
/// operator command (and at a waiter's pace).
async fn primary_healthy(c: &SwitchClients, id: &str) -> Result<bool> {
    let st = c
        .route53
        .get_health_check_status()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| {
            Error::storage(
                format!("read the status of health check {id}"),
                ServiceError::from(e),
            )
        })?;
    let obs = st.health_check_observations();
    let healthy = obs
        .iter()
        .filter(|o| {
            o.status_report()
                .and_then(|r| r.status())
                .is_some_and(|s| s.starts_with("Success"))
        })
        .count();
    Ok(healthy_by_route53(healthy, obs.len()))
}

/// Route 53's rule: healthy when more than 18% of the checkers say so.
fn healthy_by_route53(healthy: usize, checkers: usize) -> bool {
    checkers > 0 && healthy * 100 > checkers * 18
}

async fn invert(c: &SwitchClients, id: &str, to: bool) -> Result<()> {
    c.route53
        .update_health_check()
        .health_check_id(id)
        .inverted(to)
        .send()
        .await
        .map_err(|e| {
            Error::storage(
                format!("set health check {id} inverted={to}"),
                ServiceError::from(e),
            )
        })?;
    Ok(())
}

/// `tandem dr failover`: the pilot light is switched on, and clients are moved (a
/// passing health check is inverted; a failing one already moved them). Idempotent.
/// Returns what it did, for people.
pub async fn failover(c: &SwitchClients, s: &Standby, wait: &Waiter<'_>) -> Result<Vec<String>> {
    let mut did = Vec::new();
    if s.mode == StandbyMode::PilotLight {
        c.lambda
            .delete_function_concurrency()
            .function_name(&s.function)
            .send()
            .await
            .map_err(|e| Error::storage(format!("switch {} on", s.function), ServiceError::from(e)))?;
        // Lambda applies it at once; a minute is generous.
        let briefly = Waiter {
            limit: wait.limit.min(SWITCH_LIMIT),
            poll: wait.poll,
            max_poll: wait.max_poll,
            say: wait.say,
            cleanup: wait.cleanup,
        };
        let on = briefly
            .until(&format!("{} to be switched on", s.function), || async {
                Ok(
                    if state(
                        c,
                        &Standby {
                            health_check: None,
                            ..s.clone()
                        },
                    )
                    .await?
                    .standby_on
                    {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("reserved concurrency 0".into())
                    },
                )
            })
            .await;
        if on.is_err() {
            return Err(Error::storage(
                format!("switch {} on", s.function),
                format!(
                    "its reserved concurrency is still 0 after {}: the standby is still switched off",
                    crate::drill::human(briefly.limit)
                ),
            ));
        }
        did.push(format!(
            "switched the standby's function {} on in {}",
            s.function, s.region
        ));
    }
    if let Some(id) = &s.health_check {
        if inverted(c, id).await? {
            did.push(format!(
                "health check {id} was already inverted: DNS already points at {}",
                s.region
            ));
        } else if primary_healthy(c, id).await? {
            invert(c, id, true).await?;
            did.push(format!(
                "inverted health check {id}: Route 53 answers with the standby in {} (within the record's TTL and the check's interval)",
                s.region
            ));
        } else {
            did.push(format!(
                "health check {id} already fails: Route 53 already answers with the standby in {}",
                s.region
            ));
        }
    }
    Ok(did)
}

/// `tandem dr failback`: clients back to the primary (the health check no longer
/// inverted), then the pilot light switched off again, but only once Route 53 sees
/// the primary healthy and resolvers have had [`CLIENTS_BACK`] to follow: a pilot
/// light switched off while clients still reach it answers them 500. Without a
/// hosted zone, clients are moved by their operators, before this. Idempotent.
pub async fn failback(c: &SwitchClients, s: &Standby, wait: &Waiter<'_>) -> Result<Vec<String>> {
    let mut did = Vec::new();
    if let Some(id) = &s.health_check {
        if inverted(c, id).await? {
            invert(c, id, false).await?;
            did.push(format!(
                "health check {id} no longer inverted: Route 53 answers with the primary while it is healthy"
            ));
        }
        if s.mode == StandbyMode::PilotLight {
            let healthy = wait
                .until("Route 53 to see the primary's API healthy", || async {
                    Ok(if primary_healthy(c, id).await? {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("too few of its checkers get an answer from /health".into())
                    })
                })
                .await;
            if let Err(e) = healthy {
                return Err(Error::storage(
                    format!("switch {} off", s.function),
                    format!(
                        "the primary's API is not healthy ({e}): clients still reach the standby, so it stays on; run tandem dr failback again once the primary answers"
                    ),
                ));
            }
            (wait.say)(format!(
                "the primary is healthy; waiting {} for Route 53 and resolvers to send clients back to it",
                crate::drill::human(CLIENTS_BACK)
            ));
            tokio::time::sleep(CLIENTS_BACK).await;
        }
    }
    if s.mode == StandbyMode::PilotLight {
        c.lambda
            .put_function_concurrency()
            .function_name(&s.function)
            .reserved_concurrent_executions(0)
            .send()
            .await
            .map_err(|e| Error::storage(format!("switch {} off", s.function), ServiceError::from(e)))?;
        did.push(format!(
            "switched the standby's function {} off again",
            s.function
        ));
    }
    Ok(did)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route53_calls_an_endpoint_healthy_when_more_than_18_percent_of_checkers_do() {
        // 8 checkers: 1 is 12.5%, 2 is 25%.
        assert!(!healthy_by_route53(1, 8));
        assert!(healthy_by_route53(2, 8));
        // Exactly 18% is not more than 18%.
        assert!(!healthy_by_route53(9, 50));
        assert!(healthy_by_route53(10, 50));
        assert!(!healthy_by_route53(0, 0));
        assert!(healthy_by_route53(3, 3));
    }
}
