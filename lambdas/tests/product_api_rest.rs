//! The product API as API Gateway calls it: REST (v1) proxy events of a deployed stage,
//! whose path lambda_http hands over with the stage in front (`/prod/addProduct`).
//! Every seed route must answer there, over a (mocked) DynamoDB table.

use aws_sdk_dynamodb::operation::create_backup::CreateBackupOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, BackupDetails, BackupStatus, BackupType};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use tandem_lambdas::product_api::{Config, service, state};
use tower::ServiceExt;

const FIXTURE: &str = include_str!("fixtures/apigw_rest_stage_event.json");

/// The fixture event, turned into `method path?query` with `body`.
fn event(
    method: &str,
    path: &str,
    query: Option<serde_json::Value>,
    body: Option<&str>,
) -> lambda_http::Request {
    let mut e: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    e["httpMethod"] = method.into();
    e["resource"] = path.into();
    e["path"] = path.into();
    e["requestContext"]["httpMethod"] = method.into();
    e["requestContext"]["resourcePath"] = path.into();
    e["requestContext"]["path"] = format!("/prod{path}").into();
    if let Some(q) = query {
        e["multiValueQueryStringParameters"] = q
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!([v])))
            .collect();
        e["queryStringParameters"] = q;
    }
    e["body"] = body.map_or(serde_json::Value::Null, Into::into);
    lambda_http::request::from_str(&e.to_string()).unwrap()
}

fn item() -> std::collections::HashMap<String, AttributeValue> {
    [
        ("product_id", AttributeValue::S("p1".into())),
        ("product_category", AttributeValue::S("Books".into())),
        ("product_title", AttributeValue::S("Dune".into())),
        ("sum_rating", AttributeValue::N("0".into())),
        ("count_rating", AttributeValue::N("0".into())),
        ("updated_at_us", AttributeValue::N("1".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test]
async fn every_seed_route_answers_behind_a_rest_api_stage() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let get = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_output(|| GetItemOutput::builder().set_item(Some(item())).build());
    let scan =
        mock!(aws_sdk_dynamodb::Client::scan).then_output(|| ScanOutput::builder().items(item()).build());
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .then_output(|| UpdateItemOutput::builder().set_attributes(Some(item())).build());
    let delete = mock!(aws_sdk_dynamodb::Client::delete_item)
        .then_output(|| DeleteItemOutput::builder().set_attributes(Some(item())).build());
    let backup = mock!(aws_sdk_dynamodb::Client::create_backup).then_output(|| {
        CreateBackupOutput::builder()
            .backup_details(
                BackupDetails::builder()
                    .backup_arn("arn:aws:dynamodb:us-east-2:123456789012:table/Product/backup/01")
                    .backup_name("b")
                    .backup_status(BackupStatus::Creating)
                    .backup_type(BackupType::User)
                    .backup_creation_date_time(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let calls =
        tandem_aws::calls::contract::Calls::new("product-api function").bind("ServedTable", "Product");
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&put, &get, &scan, &update, &delete, &backup],
        |c| c.interceptor(calls.recorder(tandem_dr::calls::dynamodb))
    );
    let config = Config {
        table: "Product".into(),
        api_key: None,
        region: Some("us-east-2".into()),
    };
    let app = service(state(&config, client));
    let id = || Some(serde_json::json!({"product_id": "p1"}));
    let cases = [
        (
            "POST",
            "/addProduct",
            None,
            Some(r#"{"product_category": "Books", "product_title": "Dune"}"#),
            201,
        ),
        ("GET", "/getProduct", id(), None, 200),
        (
            "GET",
            "/getProducts",
            Some(serde_json::json!({"limit": "10"})),
            None,
            200,
        ),
        (
            "PUT",
            "/updateProduct",
            None,
            Some(r#"{"product_id": "p1", "product_category": "Books", "product_title": "Dune Messiah"}"#),
            200,
        ),
        ("DELETE", "/deleteProduct", id(), None, 200),
        ("POST", "/createBackup", None, None, 201),
    ];
    for (method, path, query, body, want) in cases {
        let req = event(method, path, query, body);
        // lambda_http puts the stage in front of the path.
        assert_eq!(req.uri().path(), format!("/prod{path}"), "{method} {path}");
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
    }
    assert_eq!(
        (
            put.num_calls(),
            get.num_calls(),
            scan.num_calls(),
            update.num_calls(),
            delete.num_calls()
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(backup.num_calls(), 1);
}

#[tokio::test]
async fn a_path_outside_the_stage_is_left_alone_and_an_unknown_route_is_404() {
    let calls = tandem_aws::calls::contract::Calls::new("product-api function");
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [] as [&aws_smithy_mocks::Rule; 0],
        |c| c.interceptor(calls.recorder(tandem_dr::calls::dynamodb))
    );
    let config = Config {
        table: "Product".into(),
        api_key: None,
        region: None,
    };
    let app = service(state(&config, client));
    let resp = app.oneshot(event("GET", "/nope", None, None)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // The fixture as it is: POST /prod/addProduct.
    let req = lambda_http::request::from_str(FIXTURE).unwrap();
    let stripped = tandem_lambdas::product_api::strip_stage(req);
    assert_eq!(stripped.uri().path(), "/addProduct");
}
