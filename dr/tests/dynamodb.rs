//! The product store suite against DynamoDB on the local emulator. Ignored by a
//! plain `cargo test`; `scripts/test.sh` runs it under `scripts/emulator.sh`.
#![cfg(feature = "dynamodb")]

use tandem_dr::dynamodb::DynamoTable;
use tandem_dr::store::{ProductStore, suite};

async fn client() -> aws_sdk_dynamodb::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|u| u.starts_with("http://127.0.0.1")),
        "these tests talk to the local emulator only: run them with scripts/emulator.sh"
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

#[tokio::test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-dr --features dynamodb -- --include-ignored"]
async fn dynamodb_table_behaves_like_a_product_store() {
    let table = DynamoTable::create(client().await, "Product-suite")
        .await
        .unwrap();
    suite::crud_and_paging(&table).await;
    assert_eq!(table.table_name(), "Product-suite");
    let again = DynamoTable::create(table.client().clone(), "Product-suite")
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
}

#[tokio::test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-dr --features dynamodb -- --include-ignored"]
async fn the_api_serves_from_dynamodb() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;
    let table = DynamoTable::create(client().await, "Product-api").await.unwrap();
    let state = tandem_dr::api::ApiState {
        store: std::sync::Arc::new(table),
        backups: None,
        api_key: None,
    };
    let req = Request::post("/addProduct")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"product_category":"Books","product_title":"Dune"}"#,
        ))
        .unwrap();
    let resp = tandem_dr::api::router(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["product_id"]
        .as_str()
        .unwrap()
        .to_string();
    let req = Request::get(format!("/getProduct?product_id={id}"))
        .body(Body::empty())
        .unwrap();
    let resp = tandem_dr::api::router(state).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-dr --features dynamodb -- --include-ignored"]
async fn create_backup_works_on_dynamodb() {
    use tandem_dr::api::BackupCreator;
    let table = DynamoTable::create(client().await, "Product-backup")
        .await
        .unwrap();
    let details = tandem_dr::dynamodb::DynamoBackupCreator { table }
        .create_backup()
        .await
        .unwrap();
    assert_eq!(details["TableName"], "Product-backup");
    assert!(
        details["BackupArn"]
            .as_str()
            .is_some_and(|a| a.contains("Product-backup")),
        "{details}"
    );
}
