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
        region: None,
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

#[cfg(feature = "drill-aws")]
#[tokio::test]
#[ignore = "needs the emulator: scripts/emulator.sh cargo test -p tandem-dr --features dynamodb -- --include-ignored"]
async fn the_drill_on_the_emulator_reports_what_it_does_not_emulate_as_failures() {
    use std::time::Duration;
    use tandem_dr::drill::aws::{AwsBackend, AwsClients, AwsSetup, system_clock};
    use tandem_dr::drill::{Cleanup, DrillOptions, Guarantees, Method, run};
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    client().await; // asserts the endpoint is the local emulator
    let (primary_region, recovery_region) = ("us-east-2".parse().unwrap(), "us-east-1".parse().unwrap());
    // The emulator answers at once and restores exactly: small margins and polls.
    let clients = AwsClients::from_config(&config, &primary_region, &recovery_region);
    let backend = AwsBackend::new(
        primary_region.clone(),
        clients,
        AwsSetup::default(),
        system_clock(),
    )
    .unwrap()
    .with_guarantees(Guarantees {
        backup_fuzz: Duration::from_millis(50),
        pitr_margin: Duration::from_millis(50),
        canary_interval: Duration::from_millis(10),
        canary_run: Duration::from_millis(200),
        poll: Duration::from_millis(20),
        max_poll: Duration::from_millis(200),
    });
    let opts = DrillOptions {
        primary_region,
        recovery_region,
        products: 200,
        methods: Method::ALL.to_vec(),
        rto_target: Duration::from_secs(60),
        rpo_target: Duration::from_secs(5),
        pitr_window_days: 35,
        answer_timeout: Duration::from_secs(1),
        // What moto does it does at once; what it does not (an advancing restorable
        // window, replication) it never does.
        wait_limit: Duration::from_secs(5),
    };
    let report = run(&backend, &opts, &Cleanup::new(), &|_| {}).await.unwrap();
    assert_eq!(report.backend, "dynamodb");
    assert!(
        !report.passed,
        "moto cannot pass every method; the drill must not claim it did"
    );
    let m = |name: &str| report.methods.iter().find(|m| m.method.name() == name).unwrap();
    // On-demand backup and restore is emulated faithfully: it passes, verified.
    let backup = m("backup");
    assert!(
        backup.passed && backup.missing + backup.extra + backup.different == 0,
        "{backup:?}"
    );
    // moto's latest restorable time stays where PITR was enabled: the drill waits for
    // it to pass the restore point, gives up after the wait limit and says so.
    let pitr = m("pitr");
    assert!(
        !pitr.passed
            && pitr
                .checks
                .failed()
                .any(|c| c.detail.contains("restorable window")),
        "{pitr:?}"
    );
    // Without the stack there is no plan, vault, role or standby: the methods that
    // need them fail and say what to pass.
    let scheduled = m("scheduled");
    assert!(
        !scheduled.passed && scheduled.checks.failed().any(|c| c.detail.contains("--stack")),
        "{scheduled:?}"
    );
    assert!(!m("cross-region").passed);
    assert!(!m("pilot-light").passed && !m("warm-standby").passed);
    assert!(report.left_behind.is_empty(), "{:?}", report.left_behind);
    let client_in = |r: &str| {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .region(aws_sdk_dynamodb::config::Region::new(r.to_string()))
                .build(),
        )
    };
    let (primary, recovery) = (client_in("us-east-2"), client_in("us-east-1"));
    // Nothing the drill made is left behind.
    for c in [&primary, &recovery] {
        let tables = c.list_tables().send().await.unwrap();
        assert!(
            !tables
                .table_names()
                .iter()
                .any(|t| t.starts_with("Product-drill-")),
            "{tables:?}"
        );
    }
    let backups = primary.list_backups().send().await.unwrap();
    assert!(
        !backups
            .backup_summaries()
            .iter()
            .any(|b| b.table_name().is_some_and(|t| t.starts_with("Product-drill-")))
    );
}
