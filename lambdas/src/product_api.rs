//! The product API in Lambda: the same `axum::Router` as `tandem api serve`, over the
//! DynamoDB table, run by `lambda_http`.

use std::sync::Arc;

use tandem_dr::api::ApiState;
use tandem_dr::dynamodb::{DynamoBackupCreator, DynamoTable};

/// The function's configuration, read once from the environment.
///
/// - `TABLE_NAME`: the DynamoDB table (default `Product`);
/// - `API_KEY`: when set, required in `x-api-key` on writes (API Gateway usage plans
///   can enforce keys too; this keeps direct invocations honest);
/// - `AWS_REGION` (set by Lambda): named in every answer's `x-tandem-region`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Table name.
    pub table: String,
    /// Write key.
    pub api_key: Option<String>,
    /// The region the function runs in.
    pub region: Option<String>,
}

impl Config {
    /// Reads `TABLE_NAME`, `API_KEY` and `AWS_REGION`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            table: var("TABLE_NAME").unwrap_or_else(|| "Product".into()),
            api_key: var("API_KEY"),
            region: var("AWS_REGION"),
        }
    }
}

/// The router for Lambda: [`tandem_dr::api::router`] behind [`strip_stage`].
pub fn service(
    state: ApiState,
) -> tower::util::MapRequest<axum::Router, fn(lambda_http::Request) -> lambda_http::Request> {
    tower::ServiceExt::map_request(tandem_dr::api::router(state), strip_stage as fn(_) -> _)
}

/// Removes the API Gateway stage from the path before routing.
///
/// Behind a REST API stage, lambda_http hands the function the path with the stage in
/// front (`/prod/addProduct`): the routes are the seed's (`/addProduct`), whatever the
/// stage is called, so the stage named in the request context is taken off. An HTTP
/// API's `$default` stage adds nothing; a path without the prefix is left alone.
pub fn strip_stage(mut req: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return req;
    };
    let prefix = format!("/{stage}");
    let path = req.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(r) if r.starts_with('/') => r,
        _ => return req,
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The API's state over a DynamoDB client.
pub fn state(config: &Config, client: aws_sdk_dynamodb::Client) -> ApiState {
    let table = DynamoTable::new(client, &config.table);
    ApiState {
        store: Arc::new(table.clone()),
        backups: Some(Arc::new(DynamoBackupCreator { table })),
        api_key: config.api_key.clone(),
        region: config.region.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_lambda_router_reads_the_configured_table() {
        let get = mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| r.table_name() == Some("Catalogue"))
            .then_output(|| {
                GetItemOutput::builder()
                    .item("product_id", AttributeValue::S("p1".into()))
                    .item("product_category", AttributeValue::S("Books".into()))
                    .item("product_title", AttributeValue::S("Dune".into()))
                    .item("sum_rating", AttributeValue::N("9".into()))
                    .item("count_rating", AttributeValue::N("2".into()))
                    .build()
            });
        let calls = tandem_aws::calls::contract::Calls::new("product-api function");
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get], |c| c
            .interceptor(calls.recorder(tandem_dr::calls::dynamodb)));
        let config = Config {
            table: "Catalogue".into(),
            api_key: Some("k".into()),
            region: Some("eu-west-1".into()),
        };
        let app = tandem_dr::api::router(state(&config, client));
        let resp = app
            .clone()
            .oneshot(
                Request::get("/getProduct?product_id=p1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // The answer names the region that served it (the function's AWS_REGION).
        assert_eq!(resp.headers()[tandem_dr::api::REGION_HEADER], "eu-west-1");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["product_title"].as_str(), v["sum_rating"].as_i64()),
            (Some("Dune"), Some(9))
        );
        // The configured key guards writes.
        let resp = app
            .oneshot(Request::post("/createBackup").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
