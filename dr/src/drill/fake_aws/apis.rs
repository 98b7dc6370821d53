//! The deployed product APIs of the simulated account, as API Gateway serves them:
//! each region's stage (`https://api.REGION.fake/prod`, the router over that region's
//! replica of the served table), the API key checked on every route but `/health`,
//! a throttled function answered as API Gateway answers it (500, "Internal server
//! error": a pilot light), and the clients' DNS name, which answers with the
//! standby while the primary's health check is inverted.

use std::collections::HashMap;
use std::sync::Arc;

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
        // The usage plan's key, on every method but the health check.
        if !route.starts_with("/health") {
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
