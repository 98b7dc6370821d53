//! The API behaviour suite: every route and every bad-input case, through
//! `router(..).oneshot(request)` against the embedded store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tandem_dr::api::{ApiState, BackupCreator, MAX_BODY, router};
use tandem_dr::embedded::Region;
use tower::ServiceExt;

#[derive(Debug)]
struct FixedBackup;

#[async_trait::async_trait]
impl BackupCreator for FixedBackup {
    async fn create_backup(&self) -> Result<Value, tandem_dr::Error> {
        Ok(json!({"BackupArn": "backup-1", "BackupStatus": "AVAILABLE"}))
    }
}

struct Api {
    state: ApiState,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new(api_key: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "us-east-2").unwrap();
        let table = region.create_table("Product").unwrap();
        Self {
            state: ApiState {
                store: table,
                backups: Some(Arc::new(FixedBackup)),
                api_key: api_key.map(String::from),
            },
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn add(&self, category: &str, title: &str) -> String {
        let body = json!({"product_category": category, "product_title": title}).to_string();
        let (s, v) = self.call("POST", "/addProduct", Some(&body), None).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["product_id"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn crud_round_trip_with_the_original_shapes() {
    let api = Api::new(None);
    let id = api.add("Books", "Dune").await;
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let (s, item) = api
        .call("GET", &format!("/getProduct?product_id={id}"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(item["product_title"], "Dune");
    assert_eq!(item["sum_rating"], 0);
    assert_eq!(item["count_rating"], 0);
    let body =
        json!({"product_id": id, "product_category": "Books", "product_title": "Dune Messiah"}).to_string();
    let (s, item) = api.call("PUT", "/updateProduct", Some(&body), None).await;
    assert_eq!(
        (s, item["product_title"].as_str()),
        (StatusCode::OK, Some("Dune Messiah"))
    );
    let (s, _) = api
        .call("DELETE", &format!("/deleteProduct?product_id={id}"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api
        .call("GET", &format!("/getProduct?product_id={id}"), None, None)
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("product_id"))
    );
}

#[tokio::test]
async fn new_products_get_time_ordered_ids() {
    // Version 7 UUIDs (RFC 9562): items added one after another sort one after
    // another, so a group commit in the embedded store touches a few B-tree pages
    // instead of one page per item, and a listing pages in creation order.
    let api = Api::new(None);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(api.add("Games", &format!("g{i}")).await);
    }
    for id in &ids {
        let v = uuid::Uuid::parse_str(id).unwrap().get_version_num();
        assert_eq!(v, 7, "{id} is a version {v} UUID");
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing: {ids:?}");
    let (_, all) = api.call("GET", "/getProducts", None, None).await;
    let listed: Vec<&str> = all["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test]
async fn get_products_pages_with_limit_and_cursor() {
    let api = Api::new(None);
    for i in 0..5 {
        api.add("Games", &format!("g{i}")).await;
    }
    let (s, p1) = api.call("GET", "/getProducts?limit=2", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p1["Items"].as_array().unwrap().len(), 2);
    let cursor = p1["LastEvaluatedKey"]["product_id"].as_str().unwrap().to_string();
    let (_, p2) = api
        .call(
            "GET",
            &format!("/getProducts?limit=2&cursor={cursor}"),
            None,
            None,
        )
        .await;
    let (_, p3) = api
        .call(
            "GET",
            &format!(
                "/getProducts?limit=2&cursor={}",
                p2["LastEvaluatedKey"]["product_id"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(p3["Items"].as_array().unwrap().len(), 1);
    assert!(p3.get("LastEvaluatedKey").is_none());
    let (_, all) = api.call("GET", "/getProducts", None, None).await;
    assert_eq!(all["Items"].as_array().unwrap().len(), 5);
    for bad in ["0", "1001", "abc", "-1"] {
        let (s, v) = api
            .call("GET", &format!("/getProducts?limit={bad}"), None, None)
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("limit")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let api = Api::new(None);
    let long = "x".repeat(501);
    let cases: Vec<(&str, &str, String, Option<&str>, &str)> = vec![
        ("POST", "/addProduct", "{not json".into(), None, "not valid JSON"),
        ("POST", "/addProduct", "[1,2]".into(), None, "JSON object"),
        (
            "POST",
            "/addProduct",
            json!({"product_title": "t"}).to_string(),
            Some("product_category"),
            "required",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_category": "", "product_title": "t"}).to_string(),
            Some("product_category"),
            "empty",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_category": "c", "product_title": 5}).to_string(),
            Some("product_title"),
            "string",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_category": "c", "product_title": long}).to_string(),
            Some("product_title"),
            "limit is 500",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_category": "c", "product_title": "t", "colour": "red"}).to_string(),
            Some("colour"),
            "colour is not a known field",
        ),
        (
            "POST",
            "/addProduct",
            r#"{"product_category": "c", "product_title": "t", "product_title": "u"}"#.into(),
            Some("product_title"),
            "given more than once",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_id": "mine", "product_category": "c", "product_title": "t"}).to_string(),
            Some("product_id"),
            "set by the server",
        ),
        (
            "POST",
            "/addProduct",
            json!({"product_category": "c", "product_title": "t", "sum_rating": 5}).to_string(),
            Some("sum_rating"),
            "set by the server",
        ),
        (
            "PUT",
            "/updateProduct",
            json!({"product_category": "c", "product_title": "t"}).to_string(),
            Some("product_id"),
            "required",
        ),
        (
            "PUT",
            "/updateProduct",
            json!({"product_id": "x", "product_category": "c", "product_title": "t", "count_rating": 1})
                .to_string(),
            Some("count_rating"),
            "set by the server",
        ),
    ];
    for (method, uri, body, field, needle) in cases {
        let (s, v) = api.call(method, uri, Some(&body), None).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {}: {v}",
            &body[..body.len().min(80)]
        );
        assert_eq!(v["field"].as_str(), field, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{needle:?} not in {v}"
        );
    }
    let (s, v) = api.call("GET", "/getProduct", None, None).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("product_id"))
    );
    let big = format!(
        "{{\"product_category\": \"{}\", \"product_title\": \"t\"}}",
        "y".repeat(MAX_BODY)
    );
    let (s, v) = api.call("POST", "/addProduct", Some(&big), None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
    let (s, _) = api.call("DELETE", "/deleteProduct?product_id=", None, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn missing_products_are_404_for_get_update_and_delete() {
    let api = Api::new(None);
    let body = json!({"product_id": "nope", "product_category": "c", "product_title": "t"}).to_string();
    assert_eq!(
        api.call("PUT", "/updateProduct", Some(&body), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("DELETE", "/deleteProduct?product_id=nope", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/getProduct?product_id=nope", None, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn writes_need_the_api_key_when_one_is_configured() {
    let api = Api::new(Some("s3cret"));
    let body = json!({"product_category": "c", "product_title": "t"}).to_string();
    assert_eq!(
        api.call("POST", "/addProduct", Some(&body), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("POST", "/addProduct", Some(&body), Some("s3cre"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = api.call("POST", "/addProduct", Some(&body), Some("s3cret")).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = v["product_id"].as_str().unwrap();
    // Reads need no key.
    assert_eq!(
        api.call("GET", &format!("/getProduct?product_id={id}"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.call("DELETE", &format!("/deleteProduct?product_id={id}"), None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("POST", "/createBackup", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn create_backup_returns_201_with_the_details() {
    let api = Api::new(None);
    let (s, v) = api.call("POST", "/createBackup", None, None).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["BackupStatus"], "AVAILABLE");
    let mut no_backups = Api::new(None);
    no_backups.state.backups = None;
    assert_eq!(
        no_backups.call("POST", "/createBackup", None, None).await.0,
        StatusCode::NOT_IMPLEMENTED
    );
}

#[tokio::test]
async fn writes_must_be_declared_json() {
    let api = Api::new(None);
    let body = json!({"product_category": "c", "product_title": "t"}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = Request::builder().method("POST").uri("/addProduct");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = router(api.state.clone())
            .oneshot(req.body(Body::from(body.clone())).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["error"].as_str().unwrap().contains("application/json"), "{v}");
    }
    // Parameters and case do not matter.
    let req = Request::builder()
        .method("POST")
        .uri("/addProduct")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    let resp = router(api.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}
