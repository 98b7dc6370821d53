//! The API behaviour suite: every route and every bad-input case, through
//! `router(..).oneshot(request)` against the embedded store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tandem_dr::api::{ApiState, BackupCreator, MAX_BODY, router};
use tandem_dr::embedded::Region;
use tower::ServiceExt;

/// Counts the backups it is asked for.
#[derive(Debug, Default)]
struct FixedBackup(AtomicUsize);

#[async_trait::async_trait]
impl BackupCreator for FixedBackup {
    async fn create_backup(&self) -> Result<Value, tandem_dr::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(json!({"BackupArn": "backup-1", "BackupStatus": "AVAILABLE"}))
    }
}

struct Api {
    state: ApiState,
    backups: Arc<FixedBackup>,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new(api_key: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "us-east-2").unwrap();
        let table = region.create_table("Product").unwrap();
        let backups = Arc::new(FixedBackup::default());
        Self {
            state: ApiState {
                store: table,
                backups: Some(backups.clone()),
                api_key: api_key.map(String::from),
                region: Some("us-east-2".into()),
            },
            backups,
            _dir: dir,
        }
    }

    /// One request with exactly `headers` (no defaults): (status, body).
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router(self.state.clone())
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// What a write may have changed: the items and the backups taken.
    async fn effects(&self) -> (Value, usize) {
        let (_, items) = self.call("GET", "/getProducts", None, None).await;
        (items, self.backups.0.load(Ordering::SeqCst))
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
    let (s, v) = api.call("POST", "/addProduct", Some(&body), Some("s3cret")).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = v["product_id"].as_str().unwrap().to_string();
    let before = api.effects().await;
    let json = ("content-type", "application/json");
    let mut refused = 0;
    for (method, path, body) in writes(&id) {
        for key in [None, Some("s3cre"), Some("s3cret "), Some("S3CRET")] {
            let headers: Vec<(&str, &str)> = std::iter::once(json)
                .chain(key.map(|k| ("x-api-key", k)))
                .collect();
            let (s, v) = api.raw(method, &path, &headers, &body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} {key:?}: {v}");
            refused += 1;
        }
    }
    assert_eq!(refused, 16);
    assert_eq!(api.effects().await, before, "a refused write changed something");
    // Reads need no key.
    assert_eq!(
        api.call("GET", &format!("/getProduct?product_id={id}"), None, None)
            .await
            .0,
        StatusCode::OK
    );
    for (method, path, body) in writes(&id) {
        let (s, v) = api
            .raw(method, &path, &[json, ("x-api-key", "s3cret")], &body)
            .await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
    }
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

/// Every route that changes something: (method, path, a body it accepts).
fn writes(id: &str) -> [(&'static str, String, String); 4] {
    [
        (
            "POST",
            "/addProduct".into(),
            json!({"product_category": "c", "product_title": "t"}).to_string(),
        ),
        (
            "PUT",
            "/updateProduct".into(),
            json!({"product_id": id, "product_category": "c2", "product_title": "t2"}).to_string(),
        ),
        ("DELETE", format!("/deleteProduct?product_id={id}"), String::new()),
        ("POST", "/createBackup".into(), String::new()),
    ]
}

#[tokio::test]
async fn writes_with_a_body_must_declare_it_json_on_every_route() {
    let api = Api::new(None);
    let id = api.add("c", "t").await;
    let before = api.effects().await;
    // What a cross-site form or a no-cors fetch can send without a preflight.
    let simple = [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ];
    let mut refused = 0;
    for (method, path, body) in writes(&id) {
        if method == "DELETE" {
            // Not a method a form or a simple request can use; the cross-site test
            // covers it.
            continue;
        }
        for ct in simple {
            let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
            let (s, v) = api.raw(method, &path, &headers, &body).await;
            assert_eq!(
                s,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} {ct:?}: {v}"
            );
            assert!(v["error"].as_str().unwrap().contains("application/json"), "{v}");
            refused += 1;
        }
    }
    assert_eq!(refused, 3 * simple.len(), "every POST and PUT route was tried");
    assert_eq!(api.effects().await, before, "a refused write changed something");
    // Parameters and case do not matter; each route then works.
    let json = [("content-type", "Application/JSON; charset=utf-8")];
    for (method, path, body) in writes(&id) {
        let (s, v) = api.raw(method, &path, &json, &body).await;
        assert!(s.is_success(), "{method} {path}: {s} {v}");
    }
    assert_eq!(api.backups.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cross_site_writes_are_refused_on_every_route() {
    let api = Api::new(None);
    let id = api.add("c", "t").await;
    let before = api.effects().await;
    let json = ("content-type", "application/json");
    let host = ("host", "api.example.com");
    let cross_site: [&[(&str, &str)]; 4] = [
        &[json, host, ("sec-fetch-site", "cross-site")],
        &[json, host, ("sec-fetch-site", "same-site")],
        // A browser without Fetch Metadata: the Origin names another host.
        &[json, host, ("origin", "https://evil.example")],
        &[json, host, ("origin", "null")],
    ];
    let mut refused = 0;
    for (method, path, body) in writes(&id) {
        for headers in cross_site {
            let (s, v) = api.raw(method, &path, headers, &body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} {headers:?}: {v}");
            assert!(v["error"].as_str().unwrap().contains("cross-site"), "{v}");
            refused += 1;
        }
    }
    assert_eq!(refused, 4 * cross_site.len());
    assert_eq!(api.effects().await, before, "a refused write changed something");
    // Reads are not writes: a cross-site GET is answered (the browser keeps the
    // answer from the page without CORS).
    let (s, _) = api
        .raw("GET", &format!("/getProduct?product_id={id}"), cross_site[0], "")
        .await;
    assert_eq!(s, StatusCode::OK);
    // Same origin, a typed address, or no browser at all: every route works.
    let same: [&[(&str, &str)]; 3] = [
        &[json, host, ("sec-fetch-site", "same-origin")],
        &[json, host, ("origin", "https://api.example.com")],
        &[json, host, ("sec-fetch-site", "none")],
    ];
    for headers in same {
        let id = api.add("c", "t").await;
        for (method, path, body) in writes(&id) {
            let (s, v) = api.raw(method, &path, headers, &body).await;
            assert!(s.is_success(), "{method} {path} {headers:?}: {s} {v}");
        }
    }
    assert_eq!(api.backups.0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn create_backup_takes_no_fields() {
    let api = Api::new(None);
    let (s, _) = api.call("POST", "/createBackup", Some("{}"), None).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = api
        .call("POST", "/createBackup", Some(r#"{"table": "x"}"#), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "table");
    assert!(v.to_string().contains("this route takes no fields"), "{v}");
    let (s, _) = api.call("POST", "/createBackup", Some("nope"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(api.backups.0.load(Ordering::SeqCst), 1);
}

/// A key of the right length that differs from the real one in two bytes by the same
/// bits is refused: the comparison accumulates every difference (an XOR of the
/// differences would cancel them out and let it in).
#[tokio::test]
async fn a_key_wrong_in_two_bytes_the_same_way_is_refused() {
    let api = Api::new(Some("s3cret-key"));
    // 's' ^ 1 = 'r', '3' ^ 1 = '2'.
    let body = r#"{"product_category": "Books", "product_title": "x"}"#;
    let (s, v) = api
        .call("POST", "/addProduct", Some(body), Some("r2cret-key"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = api
        .call("POST", "/addProduct", Some(body), Some("s3cret-key"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn health_needs_no_key_and_every_answer_names_its_region() {
    let api = Api::new(Some("s3cret"));
    let resp = router(api.state.clone())
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[tandem_dr::api::REGION_HEADER], "us-east-2");
    // Errors name it too: a refused write, a missing product.
    for (method, uri) in [("POST", "/createBackup"), ("GET", "/getProduct?product_id=nope")] {
        let resp = router(api.state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{method} {uri}");
        assert_eq!(
            resp.headers()[tandem_dr::api::REGION_HEADER],
            "us-east-2",
            "{method} {uri}"
        );
    }
    // Without a region, no header.
    let mut quiet = Api::new(None);
    quiet.state.region = None;
    let resp = router(quiet.state.clone())
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(resp.headers().get(tandem_dr::api::REGION_HEADER).is_none());
}
