//! The drill as a client of the product API: the same requests a client sends (the
//! key in `x-api-key`, JSON bodies), to the embedded backend's servers over HTTP and
//! to API Gateway over HTTPS. Every answer carries the region that served it
//! ([`crate::api::REGION_HEADER`]), which is how the drill knows a failover happened.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::api::REGION_HEADER;
use crate::product::Product;
use crate::store::{BoxError, Error, Result};

/// Where an API answers: its base URL (`https://ID.execute-api.REGION.amazonaws.com/prod`,
/// `http://127.0.0.1:PORT`) and the key it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEndpoint {
    /// How the report names it (`the standby's API in us-east-1`).
    pub label: String,
    /// The base URL, without a trailing slash.
    pub base: String,
    /// The API key (`x-api-key`), when the API wants one.
    pub key: Option<String>,
}

impl ApiEndpoint {
    /// An endpoint at `base` (a trailing slash is dropped).
    pub fn new(label: impl Into<String>, base: &str, key: Option<String>) -> Self {
        Self {
            label: label.into(),
            base: base.trim_end_matches('/').to_string(),
            key,
        }
    }
}

/// Sends one request and returns the whole answer.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends `req` (its URI absolute).
    async fn send(&self, req: Request<Bytes>) -> std::result::Result<Response<Bytes>, BoxError>;
}

/// One answer of the API.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// The region that served it, when it said.
    pub region: Option<String>,
    /// Its body.
    pub body: Bytes,
}

impl Reply {
    /// The body as a product, when it is one.
    pub fn product(&self) -> Option<Product> {
        serde_json::from_slice(&self.body).ok()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned()
    }
}

/// A write the API acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The item.
    pub id: String,
    /// The region that took it.
    pub region: Option<String>,
}

/// The API's client: requests with a timeout each, over a [`Transport`], at most
/// one every `pace` when it is paced, and a throttled request (429) sent again.
#[derive(Debug, Clone)]
pub struct ApiClient {
    transport: Arc<dyn Transport>,
    timeout: Duration,
    pace: Option<Arc<Pace>>,
}

/// One request start every `every`, whoever sends it.
#[derive(Debug)]
struct Pace {
    every: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    async fn turn(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.every;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How often a throttled request (429) is sent again before the drill gives up.
const THROTTLED_TRIES: u32 = 8;

impl ApiClient {
    /// A client over `transport`, giving each request `timeout`.
    pub fn new(transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        Self {
            transport,
            timeout,
            pace: None,
        }
    }

    /// The same client starting at most one request every `every` (all its clones
    /// share the pace).
    pub fn paced(self, every: Duration) -> Self {
        Self {
            pace: Some(Arc::new(Pace {
                every,
                next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            })),
            ..self
        }
    }

    /// A client over HTTP (and HTTPS with the `drill-aws` feature).
    pub fn http(timeout: Duration) -> Result<Self> {
        Ok(Self::new(Arc::new(HttpTransport::new()?), timeout))
    }

    /// One request to `ep`: `path_and_query` after its base, `body` as JSON. A 429
    /// (API Gateway's throttle, answered before the request reaches the function, so
    /// sending it again cannot write twice) is sent again after a backoff.
    pub async fn request(
        &self,
        ep: &ApiEndpoint,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Reply> {
        let mut backoff = super::wait::Backoff::new(Duration::from_millis(500), Duration::from_secs(20));
        let mut tries = 1;
        loop {
            if let Some(p) = &self.pace {
                p.turn().await;
            }
            let r = self
                .once(ep, method.clone(), path_and_query, body.as_ref())
                .await?;
            if r.status != StatusCode::TOO_MANY_REQUESTS || tries >= THROTTLED_TRIES {
                return Ok(r);
            }
            tries += 1;
            backoff.sleep().await;
        }
    }

    async fn once(
        &self,
        ep: &ApiEndpoint,
        method: Method,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply> {
        let uri = format!("{}{path_and_query}", ep.base);
        let mut req = Request::builder().method(method.clone()).uri(&uri);
        if let Some(k) = &ep.key {
            req = req.header("x-api-key", k);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            // createBackup and friends: a write declared JSON, with no body.
            None if method != Method::GET => {
                req = req.header("content-type", "application/json");
                Bytes::new()
            }
            None => Bytes::new(),
        };
        let req = req
            .body(bytes)
            .map_err(|e| Error::storage(format!("build {method} {uri}"), e))?;
        let what = format!("{method} {uri} ({})", ep.label);
        let resp = tokio::time::timeout(self.timeout, self.transport.send(req))
            .await
            .map_err(|_| Error::storage(what.clone(), format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| Error::storage(what, e))?;
        let region = resp
            .headers()
            .get(REGION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Reply {
            status: resp.status(),
            region,
            body: resp.into_body(),
        })
    }

    /// `POST /addProduct`: the new item's id, once acknowledged (201).
    pub async fn add(&self, ep: &ApiEndpoint, category: &str, title: &str) -> Result<Written> {
        let body = json!({"product_category": category, "product_title": title});
        let r = self.request(ep, Method::POST, "/addProduct", Some(body)).await?;
        if r.status != StatusCode::CREATED {
            return Err(refused(ep, "add a product", &r));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| Error::storage(format!("the answer of {} to an add", ep.label), e))?;
        let id = v["product_id"]
            .as_str()
            .ok_or_else(|| Error::storage(format!("the answer of {} to an add", ep.label), r.text()))?;
        Ok(Written {
            id: id.to_string(),
            region: r.region,
        })
    }

    /// `GET /getProduct`.
    pub async fn get(&self, ep: &ApiEndpoint, id: &str) -> Result<Reply> {
        self.request(ep, Method::GET, &format!("/getProduct?product_id={id}"), None)
            .await
    }

    /// `PUT /updateProduct`, once acknowledged (200).
    pub async fn update(&self, ep: &ApiEndpoint, id: &str, category: &str, title: &str) -> Result<Written> {
        let body = json!({"product_id": id, "product_category": category, "product_title": title});
        let r = self
            .request(ep, Method::PUT, "/updateProduct", Some(body))
            .await?;
        if r.status != StatusCode::OK {
            return Err(refused(ep, &format!("update {id}"), &r));
        }
        Ok(Written {
            id: id.to_string(),
            region: r.region,
        })
    }

    /// `DELETE /deleteProduct`: true when it was there, false when it was not.
    pub async fn delete(&self, ep: &ApiEndpoint, id: &str) -> Result<bool> {
        let r = self
            .request(
                ep,
                Method::DELETE,
                &format!("/deleteProduct?product_id={id}"),
                None,
            )
            .await?;
        match r.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(refused(ep, &format!("delete {id}"), &r)),
        }
    }
}

fn refused(ep: &ApiEndpoint, what: &str, r: &Reply) -> Error {
    Error::storage(
        format!("{} would not {what}", ep.label),
        format!("{}: {}", r.status, r.text()),
    )
}

/// HTTP/1.1 over TCP (and TLS with the system's roots, with `drill-aws`).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: hyper_util::client::legacy::Client<Connector, http_body_util::Full<Bytes>>,
}

#[cfg(feature = "drill-aws")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "drill-aws"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

impl HttpTransport {
    /// A transport with its own connection pool.
    pub fn new() -> Result<Self> {
        #[cfg(feature = "drill-aws")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Error::storage("load the system's TLS roots", e))?
            .https_or_http()
            .enable_http1()
            .build();
        #[cfg(not(feature = "drill-aws"))]
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
        Ok(Self { client })
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(&self, req: Request<Bytes>) -> std::result::Result<Response<Bytes>, BoxError> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        let resp = self
            .client
            .request(Request::from_parts(parts, http_body_util::Full::new(body)))
            .await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, bytes))
    }
}
