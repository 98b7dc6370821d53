//! The product API: one `axum::Router`, served by `tandem api serve` locally and by
//! `lambda_http` in Lambda, tested with `router(..).oneshot(request)`.
//!
//! Routes keep the original's paths and shapes so existing clients keep working;
//! unlike the original, bad input is a 400 naming the field (an unknown or repeated
//! key included), a body that is not declared JSON a 415, one over [`MAX_BODY`] a
//! 413, a missing product a 404, and `POST /createBackup` works.
//!
//! Every write (each route but the two reads) passes one guard, [`guard_writes`],
//! before its handler: the API key when one is set, then no cross-site request from
//! a browser, then a declared JSON body on `POST` and `PUT` (`createBackup` included,
//! its body may be empty). A cross-site form post is refused however it is made.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use crate::embedded::now_us;
use crate::product::{MAX_CATEGORY, MAX_TITLE, Product, check_field};
use crate::store::{Error, ProductStore};

/// The response header that names the region an answer came from (`us-east-1`):
/// set on every answer when [`ApiState::region`] is, so a client (and the drill) can
/// tell which side of a failover served it.
pub const REGION_HEADER: &str = "x-tandem-region";

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest `limit` of `GET /getProducts`.
pub const MAX_PAGE: usize = 1000;

/// Takes an on-demand backup of the API's table (`POST /createBackup`).
#[async_trait::async_trait]
pub trait BackupCreator: Send + Sync + std::fmt::Debug {
    /// Creates a backup and returns its details as the API shows them.
    async fn create_backup(&self) -> Result<Value, Error>;
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The table.
    pub store: Arc<dyn ProductStore>,
    /// Backups of the table, when the deployment has them.
    pub backups: Option<Arc<dyn BackupCreator>>,
    /// Required in `x-api-key` on writes when set.
    pub api_key: Option<String>,
    /// The region this API serves from, sent in [`REGION_HEADER`].
    pub region: Option<String>,
}

/// The router.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/addProduct", post(add_product))
        .route("/getProduct", get(get_product))
        .route("/getProducts", get(get_products))
        .route("/updateProduct", put(update_product))
        .route("/deleteProduct", delete(delete_product))
        .route("/createBackup", post(create_backup))
        .route("/health", get(health))
        // On matched routes only: an unknown path stays a 404, a wrong method a 405.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard_writes))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            name_region,
        ))
        .with_state(state)
}

/// Names the serving region on every answer, errors included.
async fn name_region(State(state): State<Arc<ApiState>>, mut response: Response) -> Response {
    if let Some(region) = state.region.as_deref()
        && let Ok(v) = axum::http::HeaderValue::from_str(region)
    {
        response.headers_mut().insert(REGION_HEADER, v);
    }
    response
}

/// `GET /health`: 200 when this region's table answers a read, 503 otherwise. No key:
/// Route 53 health checks cannot send one (docs/dr.md, DNS failover).
async fn health(State(state): State<Arc<ApiState>>) -> Response {
    match state.store.get("tandem-health-probe").await {
        Ok(_) => (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the table did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "the product store is unavailable" })),
            )
                .into_response()
        }
    }
}

/// The one gate in front of every write: the API key, then the cross-site check,
/// then the declared JSON body. Reads pass untouched.
pub async fn guard_writes(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return next.run(request).await;
    }
    let headers = request.headers();
    let checked = check_api_key(&state, headers)
        .and_then(|()| check_same_origin(headers))
        .and_then(|()| match *method {
            Method::POST | Method::PUT => check_json_content_type(headers),
            _ => Ok(()),
        });
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// A JSON error response: `{"error": ..., "field": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }
    fn bad(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }
    fn not_found(id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("product {id} not found"),
            field: Some("product_id".into()),
        }
    }
    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY} bytes"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => Self {
                status: StatusCode::NOT_FOUND,
                message: format!("{what} not found"),
                field: None,
            },
            Error::AlreadyExists(what) => Self {
                status: StatusCode::CONFLICT,
                message: format!("{what} already exists"),
                field: None,
            },
            Error::InvalidInput(m) => Self::bad(None, m),
            other => {
                tracing::warn!(error = %other, "store failure");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "the product store is unavailable".into(),
                    field: None,
                }
            }
        }
    }
}

fn check_api_key(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.api_key else {
        return Ok(());
    };
    let given = headers.get("x-api-key").map(|v| v.as_bytes()).unwrap_or_default();
    // Constant-time comparison: a wrong key takes as long as a nearly right one.
    let ok = given.len() == expected.len()
        && given
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "a valid x-api-key header is required for writes".into(),
            field: None,
        })
    }
}

/// A JSON object that remembers the first key it saw twice (serde_json's `Map`
/// keeps the last value silently; a client sending two titles gets told).
struct Object {
    map: Map<String, Value>,
    repeated: Option<String>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Object, A::Error> {
                let mut map = Map::new();
                let mut repeated = None;
                while let Some(k) = a.next_key::<String>()? {
                    let v: Value = a.next_value()?;
                    if map.contains_key(&k) {
                        repeated.get_or_insert(k);
                    } else {
                        map.insert(k, v);
                    }
                }
                Ok(Object { map, repeated })
            }
        }
        d.deserialize_map(V)
    }
}

/// Refuses a write a browser sends from another site, the way Go's
/// `http.CrossOriginProtection` does: by `Sec-Fetch-Site` when the browser sends it
/// (every current one does), else by an `Origin` that does not name this host.
/// Clients that are not browsers send neither and pass.
fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |why: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("cross-site writes are refused: {why}"),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            other => refused(format!("Sec-Fetch-Site is {:?}", String::from_utf8_lossy(other))),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => refused(format!(
            "Origin {origin:?} is not this host ({})",
            host.unwrap_or("no Host header")
        )),
    }
}

/// Requires `Content-Type: application/json` (parameters such as `charset` allowed):
/// a browser's cross-site form post cannot send it without a preflight.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be sent as Content-Type: application/json, not {}",
                if given.is_empty() {
                    "no content type".to_string()
                } else {
                    format!("{given:?}")
                }
            ),
        ))
    }
}

/// Parses a JSON object body allowing exactly `allowed` fields.
fn object(
    body: Result<Bytes, BytesRejection>,
    allowed: &[&'static str],
) -> Result<Map<String, Value>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad(None, format!("unreadable request body: {e}"))
        }
    })?;
    // Syntax first, for its message; then the shape.
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(None, format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad(None, "request body must be a JSON object"));
    }
    let Object { map, repeated } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(None, format!("request body is not valid JSON: {e}")))?;
    if let Some(k) = repeated {
        return Err(ApiError::bad(Some(&k), format!("{k} is given more than once")));
    }
    for k in map.keys() {
        if !allowed.contains(&k.as_str()) {
            let owned = ["product_id", "sum_rating", "count_rating", "updated_at_us"];
            let why = if owned.contains(&k.as_str()) {
                "is set by the server"
            } else {
                "is not a known field"
            };
            return Err(ApiError::bad(
                Some(k),
                match allowed {
                    [] => format!("{k} {why}; this route takes no fields"),
                    _ => format!("{k} {why}; allowed: {}", allowed.join(", ")),
                },
            ));
        }
    }
    Ok(map)
}

fn string_field(map: &Map<String, Value>, field: &'static str, max: usize) -> Result<String, ApiError> {
    let v = match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ApiError::bad(Some(field), format!("{field} must be a string"))),
    };
    check_field(field, v, max).map_err(|e| ApiError::bad(Some(e.field), e.message))
}

fn id_param(q: &BTreeMap<String, String>) -> Result<String, ApiError> {
    match q.get("product_id") {
        Some(id) if !id.trim().is_empty() && id.len() <= 64 => Ok(id.clone()),
        Some(_) => Err(ApiError::bad(
            Some("product_id"),
            "product_id must be 1 to 64 characters",
        )),
        None => Err(ApiError::bad(Some("product_id"), "product_id is required")),
    }
}

async fn add_product(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let map = object(body, &["product_category", "product_title"])?;
    let item = Product {
        product_id: uuid::Uuid::now_v7().to_string(),
        product_category: string_field(&map, "product_category", MAX_CATEGORY)?,
        product_title: string_field(&map, "product_title", MAX_TITLE)?,
        sum_rating: 0,
        count_rating: 0,
        updated_at_us: now_us(),
    };
    state.store.create(&item).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "product_id": item.product_id })),
    ))
}

async fn get_product(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let id = id_param(&q)?;
    match state.store.get(&id).await? {
        Some(p) => Ok(axum::Json(p)),
        None => Err(ApiError::not_found(&id)),
    }
}

#[derive(Serialize)]
struct ProductsPage {
    #[serde(rename = "Items")]
    items: Vec<Product>,
    #[serde(rename = "LastEvaluatedKey", skip_serializing_if = "Option::is_none")]
    last_evaluated_key: Option<Value>,
}

async fn get_products(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    Some("limit"),
                    format!("limit {l:?} must be a number from 1 to {MAX_PAGE}"),
                ));
            }
        },
    };
    let cursor = q.get("cursor").or_else(|| q.get("ExclusiveStartKey"));
    let page = state.store.scan(limit, cursor.map(String::as_str)).await?;
    Ok(axum::Json(ProductsPage {
        items: page.items,
        last_evaluated_key: page.last_evaluated_key.map(|k| json!({ "product_id": k })),
    }))
}

async fn update_product(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let map = object(body, &["product_id", "product_category", "product_title"])?;
    let id = string_field(&map, "product_id", 64)?;
    let category = string_field(&map, "product_category", MAX_CATEGORY)?;
    let title = string_field(&map, "product_title", MAX_TITLE)?;
    match state.store.update(&id, &category, &title, now_us()).await? {
        Some(p) => Ok(axum::Json(p)),
        None => Err(ApiError::not_found(&id)),
    }
}

async fn delete_product(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let id = id_param(&q)?;
    if state.store.delete(&id).await? {
        Ok(axum::Json(json!({ "product_id": id, "deleted": true })))
    } else {
        Err(ApiError::not_found(&id))
    }
}

async fn create_backup(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // No parameters: an empty body or `{}`.
    if !body.as_ref().is_ok_and(|b| b.is_empty()) {
        object(body, &[])?;
    }
    let Some(backups) = &state.backups else {
        return Err(ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            message: "this deployment has no backup service configured".into(),
            field: None,
        });
    };
    Ok((StatusCode::CREATED, axum::Json(backups.create_backup().await?)))
}
