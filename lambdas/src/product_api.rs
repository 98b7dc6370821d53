//! The product API in Lambda: the same `axum::Router` as `tandem api serve`, over the
//! DynamoDB table, run by `lambda_http`.

use std::sync::Arc;

use tandem_dr::api::ApiState;
use tandem_dr::dynamodb::{DynamoBackupCreator, DynamoTable};

/// The function's configuration, read once from the environment.
///
/// - `TABLE_NAME`: the DynamoDB table (default `Product`);
/// - `API_KEY`: when set, required in `x-api-key` on writes (API Gateway usage plans
///   can enforce keys too; this keeps direct invocations honest).
#[derive(Debug, Clone)]
pub struct Config {
    /// Table name.
    pub table: String,
    /// Write key.
    pub api_key: Option<String>,
}

impl Config {
    /// Reads `TABLE_NAME` and `API_KEY`.
    pub fn from_env() -> Self {
        Self {
            table: std::env::var("TABLE_NAME").unwrap_or_else(|_| "Product".into()),
            api_key: std::env::var("API_KEY").ok().filter(|k| !k.is_empty()),
        }
    }
}

/// The API's state over a DynamoDB client.
pub fn state(config: &Config, client: aws_sdk_dynamodb::Client) -> ApiState {
    let table = DynamoTable::new(client, &config.table);
    ApiState {
        store: Arc::new(table.clone()),
        backups: Some(Arc::new(DynamoBackupCreator { table })),
        api_key: config.api_key.clone(),
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
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get]);
        let config = Config {
            table: "Catalogue".into(),
            api_key: Some("k".into()),
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
