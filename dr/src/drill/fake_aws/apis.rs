//! The deployed product APIs of the simulated account, as API Gateway serves them:
//! each region's stage (`https://api.REGION.fake/prod`, the router over that region's
//! replica of the served table), the API key checked on every route but `/health`,
//! a throttled function answered as API Gateway answers it (500, "Internal server
//! error": a pilot light), and the clients' DNS name, which answers with the
//! standby while the primary's health check is inverted. What refuses a fast
//! client is modelled as the stacks deploy it by default (product-api.ts's
//! `apiLimits(50)`): each region's web ACL blocks a client IP (the drill has one)
//! with 403 once it sent more than 15,000 requests in the trailing five minutes
//! (AWS WAF's rate-based rule statement, 300-second evaluation window), and the
//! usage plan throttles keyed requests to 50 a second with a burst of 100 (a token
//! bucket, API Gateway's "Throttle API requests for better throughput"), answering
//! 429.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use tower::ServiceExt;

use super::FakeAws;
use crate::api::{ApiState, router};
use crate::drill::client::Transport;
use crate::dynamodb::DynamoTable;
use crate::store::BoxError;

/// The clients' name when the deployment has a hosted zone.
pub(super) const CLIENT_HOST: &str = "products.example.fake";

/// The host of `region`'s API stage.
pub(super) fn host(region: &str) -> String {
    format!("api.{region}.fake")
}

/// The web ACL's rate-based rule: requests per client IP in its window.
pub const WAF_LIMIT: usize = 15_000;
const WAF_WINDOW_US: u64 = 300_000_000;
/// The usage plan's throttle: requests a second, and the bucket's size.
pub const USAGE_PLAN_RATE: f64 = 50.0;
const USAGE_PLAN_BURST: f64 = 100.0;

/// One region's stage: what its web ACL saw of the drill's IP, and its usage
/// plan's token bucket.
#[derive(Debug)]
pub(super) struct Limits {
    seen: VecDeque<u64>,
    tokens: f64,
    at_us: u64,
}

/// Which of a stage's limits a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// The web ACL, in front of everything.
    Waf,
    /// The usage plan, behind the key.
    UsagePlan,
}

/// What the stages refused, for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// 403s of the web ACL's rate rule.
    pub by_waf: usize,
    /// 429s of the usage plan.
    pub by_usage_plan: usize,
}

/// Each region's stage's limits, and what they refused.
pub(super) type Stages = Arc<Mutex<(HashMap<String, Limits>, Refused)>>;

/// Sends the drill's requests to the account's APIs.
#[derive(Debug)]
pub(super) struct FakeTransport {
    fake: FakeAws,
    routers: HashMap<String, Router>,
}

impl FakeTransport {
    pub fn new(fake: FakeAws) -> Self {
        let names = fake.names();
        let routers = [&names.primary, &names.recovery]
            .into_iter()
            .map(|region| {
                // Each region's function records its calls as its own component.
                let component = if *region == names.primary {
                    "product-api function"
                } else {
                    "standby-api function"
                };
                let table = DynamoTable::new(fake.dynamodb_client(region, component), &names.table);
                let state = ApiState {
                    store: Arc::new(table),
                    backups: None,
                    api_key: None,
                    region: Some(region.clone()),
                };
                (region.clone(), router(state))
            })
            .collect();
        Self { fake, routers }
    }

    /// The web ACL's verdict on a request to `region` now (WAF counts every
    /// request it evaluates, blocked ones too, before API Gateway sees it), then,
    /// for a request whose key API Gateway accepted, the usage plan's: `Some` is
    /// the refusal.
    fn limit(&self, region: &str, limit: Limit) -> Option<Response<Bytes>> {
        let now = self.fake.now_us();
        let mut guard = self.fake.stages.lock().unwrap_or_else(|e| e.into_inner());
        let (stages, refused) = &mut *guard;
        let l = stages.entry(region.to_string()).or_insert(Limits {
            seen: VecDeque::new(),
            tokens: USAGE_PLAN_BURST,
            at_us: now,
        });
        while l
            .seen
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= WAF_WINDOW_US)
        {
            l.seen.pop_front();
        }
        if limit == Limit::Waf {
            l.seen.push_back(now);
            if l.seen.len() > WAF_LIMIT {
                refused.by_waf += 1;
                return Some(answer(StatusCode::FORBIDDEN, "Forbidden"));
            }
        } else {
            let elapsed = now.saturating_sub(l.at_us) as f64 / 1e6;
            l.tokens = (l.tokens + elapsed * USAGE_PLAN_RATE).min(USAGE_PLAN_BURST);
            l.at_us = now;
            if l.tokens < 1.0 {
                refused.by_usage_plan += 1;
                return Some(answer(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"));
            }
            l.tokens -= 1.0;
        }
        None
    }
}

fn answer(status: StatusCode, message: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(serde_json::json!({ "message": message }).to_string()));
    *r.status_mut() = status;
    r
}

#[async_trait]
impl Transport for FakeTransport {
    async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, BoxError> {
        let names = self.fake.names();
        let host = req.uri().host().unwrap_or_default().to_string();
        let (region, stage) = if host == self::host(&names.primary) {
            (names.primary.clone(), "/prod")
        } else if host == self::host(&names.recovery) {
            (names.recovery.clone(), "/prod")
        } else if host == CLIENT_HOST {
            let on_standby = self.fake.lock().dns_on_standby();
            let region = if on_standby {
                &names.recovery
            } else {
                &names.primary
            };
            (region.clone(), "")
        } else {
            return Err(format!("dns error: no such host {host}").into());
        };
        let path_and_query = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Some(route) = path_and_query.strip_prefix(stage).filter(|r| r.starts_with('/')) else {
            return Ok(answer(StatusCode::FORBIDDEN, "Missing Authentication Token"));
        };
        let route = route.to_string();
        let keyed = !route.starts_with("/health");
        if let Some(refusal) = self.limit(&region, Limit::Waf) {
            return Ok(refusal);
        }
        // The usage plan's key, on every method but the health check.
        if keyed {
            let want = self
                .fake
                .lock()
                .secrets
                .get(&(region.clone(), names.secret.clone()))
                .cloned();
            let given = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
            if want.as_deref() != given {
                return Ok(answer(StatusCode::FORBIDDEN, "Forbidden"));
            }
            if let Some(refusal) = self.limit(&region, Limit::UsagePlan) {
                return Ok(refusal);
            }
        }
        // The standby's function throttled to zero: API Gateway's answer.
        if region == names.recovery && !self.fake.lock().standby_runs() {
            return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"));
        }
        let (mut parts, body) = req.into_parts();
        parts.uri = route.parse()?;
        let app = self.routers[&region].clone();
        let resp = app.oneshot(Request::from_parts(parts, Body::from(body))).await?;
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await?;
        Ok(Response::from_parts(parts, bytes))
    }
}
