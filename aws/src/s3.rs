//! The `s3://BUCKET[/PREFIX]` object store.
//!
//! Objects are `PREFIX/KEY`. A put sends the content length and a CRC32 checksum the
//! service verifies; bodies above [`MULTIPART_THRESHOLD`] go as a multipart upload
//! (aborted if any part fails, so no partial object is ever visible). Throttling and
//! 5xx responses are retried by the SDK's standard strategy (see [`crate::Aws`]). A
//! semaphore bounds the requests in flight when many children egress from one
//! process.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tandem_core::store::{ObjectMeta, ObjectStore, check_key};
use tandem_core::{Error, Result};
use tokio::sync::Semaphore;

use crate::{Aws, sdk_message};

/// Bodies larger than this go as a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Requests in flight from one process.
pub const MAX_IN_FLIGHT: usize = 32;

/// A parsed `s3://BUCKET[/PREFIX]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Url {
    /// Parses and checks an S3 URL, naming what is wrong with a bad one.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::InvalidInput(format!("{url:?} is not an s3:// URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid_bucket {
            return Err(Error::InvalidInput(format!(
                "bucket name {bucket:?} in {url:?} is not valid: S3 bucket names are 3 to 63 \
                 characters of a-z 0-9 . -, starting and ending with a letter or digit"
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            check_key(&prefix)?;
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

/// An object store on an S3 bucket (or an S3-compatible endpoint).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    url: S3Url,
    aws: Aws,
    permits: Arc<Semaphore>,
}

/// An S3 client for `aws`'s configuration.
///
/// S3-compatible endpoints (`AWS_ENDPOINT_URL`, or the S3-only `AWS_ENDPOINT_URL_S3`:
/// moto, MinIO, LocalStack) are addressed path-style; AWS itself keeps
/// virtual-hosted style.
pub fn client(aws: &Aws) -> Client {
    let mut builder = crate::instrument!(
        aws_sdk_s3::config::Builder::from(aws.config()),
        crate::calls::resolve::s3
    );
    if aws.s3_endpoint_override() {
        builder = builder.force_path_style(true);
    }
    Client::from_conf(builder.build())
}

impl S3Store {
    /// Opens `s3://BUCKET[/PREFIX]` and checks that the bucket exists and the
    /// credentials may use it.
    pub fn open(aws: &Aws, url: &str) -> Result<Self> {
        Self::with_client(aws, client(aws), url)
    }

    /// [`S3Store::open`] with a given client (tests use mocked ones).
    pub fn with_client(aws: &Aws, client: Client, url: &str) -> Result<Self> {
        let parsed = S3Url::parse(url)?;
        let store = Self {
            client,
            url: parsed,
            aws: aws.clone(),
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        };
        store.check_bucket()?;
        Ok(store)
    }

    fn check_bucket(&self) -> Result<()> {
        let bucket = &self.url.bucket;
        let r = self.aws.block_on(self.client.head_bucket().bucket(bucket).send());
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // S3 names the bucket's region in this header on HeadBucket answers,
                // including the 301 and 400 a request to the wrong region gets.
                let bucket_region = e
                    .raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .map(str::to_string);
                let ours = self.client.config().region().map(|r| r.to_string());
                let message = match (status, bucket_region) {
                    (Some(301 | 400), Some(theirs)) if ours.as_deref() != Some(theirs.as_str()) => format!(
                        "bucket {bucket:?} is in region {theirs}, not {}: set AWS_REGION={theirs}",
                        ours.as_deref().unwrap_or("the configured region (none)")
                    ),
                    (Some(404), _) => format!("bucket {bucket:?} does not exist"),
                    (Some(403), _) => format!(
                        "access to bucket {bucket:?} denied: check the credentials and the bucket policy"
                    ),
                    (Some(301), None) => format!("bucket {bucket:?} is in another region than AWS_REGION"),
                    _ => sdk_message(&e),
                };
                Err(Error::Backend {
                    op: "open",
                    location: self.url_string(),
                    message,
                })
            }
        }
    }

    fn url_string(&self) -> String {
        if self.url.prefix.is_empty() {
            format!("s3://{}", self.url.bucket)
        } else {
            format!("s3://{}/{}", self.url.bucket, self.url.prefix)
        }
    }

    fn full_key(&self, key: &str) -> Result<String> {
        check_key(key)?;
        Ok(if self.url.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.url.prefix)
        })
    }

    fn fail(&self, op: &'static str, key: &str, message: String) -> Error {
        Error::Backend {
            op,
            location: format!("{}/{key}", self.url_string()),
            message,
        }
    }

    async fn put_async(&self, key: &str, data: Bytes) -> Result<()> {
        let full = self.full_key(key)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| self.fail("put", key, e.to_string()))?;
        if data.len() <= MULTIPART_THRESHOLD {
            self.client
                .put_object()
                .bucket(&self.url.bucket)
                .key(&full)
                .content_length(data.len() as i64)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(data))
                .send()
                .await
                .map_err(|e| self.fail("put", key, sdk_message(&e)))?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.url.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.fail("put (start multipart)", key, sdk_message(&e)))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| self.fail("put", key, "the service returned no upload id".into()))?
            .to_string();
        let result = self.upload_parts(&full, &upload_id, &data).await;
        let parts = match result {
            Ok(p) => p,
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.url.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(self.fail("put (multipart)", key, e));
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.url.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.fail("put (complete multipart)", key, sdk_message(&e)))?;
        Ok(())
    }

    async fn upload_parts(
        &self,
        full: &str,
        upload_id: &str,
        data: &Bytes,
    ) -> Result<Vec<CompletedPart>, String> {
        let mut parts = Vec::with_capacity(data.len().div_ceil(PART_SIZE));
        for (i, start) in (0..data.len()).step_by(PART_SIZE).enumerate() {
            let chunk = data.slice(start..(start + PART_SIZE).min(data.len()));
            let number = i as i32 + 1;
            let out = self
                .client
                .upload_part()
                .bucket(&self.url.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(chunk.len() as i64)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| format!("part {number}: {}", sdk_message(&e)))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            );
        }
        Ok(parts)
    }

    async fn get_async(&self, key: &str) -> Result<Bytes> {
        let full = self.full_key(key)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| self.fail("get", key, e.to_string()))?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.url.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(Error::NotFound {
                    what: "object".into(),
                    location: format!("{}/{key}", self.url_string()),
                });
            }
            Err(e) => return Err(self.fail("get", key, sdk_message(&e))),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.fail("get (body)", key, e.to_string()))?;
        Ok(body.into_bytes())
    }

    async fn list_async(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let full_prefix = if self.url.prefix.is_empty() {
            prefix.to_string()
        } else {
            format!("{}/{prefix}", self.url.prefix)
        };
        let strip = if self.url.prefix.is_empty() {
            0
        } else {
            self.url.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.url.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.fail("list", prefix, sdk_message(&e)))?;
            for o in page.contents() {
                if let Some(k) = o.key().filter(|k| k.len() >= strip) {
                    out.push(ObjectMeta {
                        key: k[strip..].to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete_async(&self, key: &str) -> Result<()> {
        let full = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.url.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.fail("delete", key, sdk_message(&e)))?;
        Ok(())
    }
}

impl ObjectStore for S3Store {
    fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.aws.block_on(self.put_async(key, data))
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        self.aws.block_on(self.get_async(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.aws.block_on(self.list_async(prefix))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.aws.block_on(self.delete_async(key))
    }

    fn url(&self) -> String {
        self.url_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_checked() {
        assert_eq!(
            S3Url::parse("s3://my-bucket/a/b/").unwrap(),
            S3Url {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(S3Url::parse("s3://my-bucket").unwrap().prefix, "");
        for bad in [
            "s3://",
            "s3://AB",
            "s3://Upper-Case",
            "s3://-x-",
            "s3://ok-bucket/../x",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad} accepted");
        }
        let err = S3Url::parse("s3://Upper").unwrap_err().to_string();
        assert!(err.contains("\"Upper\""), "{err}");
    }
}

/// Multipart and access errors, which the emulator cannot show faithfully.
#[cfg(test)]
mod mock_tests {
    use super::*;
    use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput;
    use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
    use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
    use aws_sdk_s3::operation::head_bucket::HeadBucketOutput;
    use aws_sdk_s3::operation::upload_part::UploadPartOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    fn aws() -> Aws {
        Aws::from_env().unwrap()
    }

    fn head_ok() -> Rule {
        mock!(Client::head_bucket).then_output(|| HeadBucketOutput::builder().build())
    }

    #[test]
    fn a_large_object_goes_as_a_multipart_upload() {
        let head = head_ok();
        let create = mock!(Client::create_multipart_upload)
            .then_output(|| CreateMultipartUploadOutput::builder().upload_id("u1").build());
        let part = mock!(Client::upload_part)
            .match_requests(|r| {
                r.upload_id() == Some("u1") && r.key() == Some("pre/r1/results/00001.parquet")
            })
            .then_output(|| UploadPartOutput::builder().e_tag("\"etag\"").build());
        let complete = mock!(Client::complete_multipart_upload)
            .match_requests(|r| {
                r.multipart_upload().map(|m| m.parts().len()) == Some(3)
                    && r.multipart_upload().is_some_and(|m| {
                        m.parts()
                            .iter()
                            .enumerate()
                            .all(|(i, p)| p.part_number() == Some(i as i32 + 1))
                    })
            })
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let calls = crate::calls::contract::Calls::new("tandem worker");
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&head, &create, &part, &complete],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::s3))
        );
        let aws = aws();
        let store = S3Store::with_client(&aws, client, "s3://bucket/pre").unwrap();
        store
            .put(
                "r1/results/00001.parquet",
                Bytes::from(vec![7u8; MULTIPART_THRESHOLD + 1]),
            )
            .unwrap();
        assert_eq!(
            (create.num_calls(), part.num_calls(), complete.num_calls()),
            (1, 3, 1)
        );
    }

    #[test]
    fn a_failed_part_aborts_the_upload_and_names_the_part() {
        let head = head_ok();
        let create = mock!(Client::create_multipart_upload)
            .then_output(|| CreateMultipartUploadOutput::builder().upload_id("u1").build());
        let part = mock!(Client::upload_part)
            .sequence()
            .output(|| UploadPartOutput::builder().e_tag("\"1\"").build())
            .http_status(
                400,
                Some("<Error><Code>InvalidPart</Code><Message>bad part</Message></Error>".into()),
            )
            .build();
        let abort = mock!(Client::abort_multipart_upload)
            .then_output(|| AbortMultipartUploadOutput::builder().build());
        // The worker's egress makes these calls: its contract (and role) must have
        // the abort, or a failed upload leaves its parts behind until the lifecycle rule.
        let calls = crate::calls::contract::Calls::new("tandem worker")
            .bind("ResultsBucket", "bucket")
            .bind("ResultsPrefix", "runs");
        let client = mock_client!(
            aws_sdk_s3,
            RuleMode::MatchAny,
            [&head, &create, &part, &abort],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::s3))
        );
        let aws = aws();
        let store = S3Store::with_client(&aws, client, "s3://bucket/runs").unwrap();
        let err = store
            .put(
                "r1/results/00001.parquet",
                Bytes::from(vec![7u8; MULTIPART_THRESHOLD + 1]),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("part 2"), "{err}");
        assert_eq!(abort.num_calls(), 1);
        assert!(calls.actions().contains(&"s3:AbortMultipartUpload".to_string()));
    }

    #[test]
    fn throttled_and_failed_puts_are_retried_with_backoff() {
        use aws_sdk_s3::operation::put_object::PutObjectOutput;
        let head = head_ok();
        let put = mock!(Client::put_object)
            .sequence()
            .http_status(
                503,
                Some(
                    "<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>".into(),
                ),
            )
            .http_status(
                500,
                Some("<Error><Code>InternalError</Code><Message>try again</Message></Error>".into()),
            )
            .output(|| PutObjectOutput::builder().build())
            .build();
        let calls = crate::calls::contract::Calls::new("tandem worker");
        let client = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&head, &put], |c| c
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(4)
                    .with_initial_backoff(std::time::Duration::from_millis(1))
            )
            .interceptor(calls.recorder(crate::calls::resolve::s3)));
        let store = S3Store::with_client(&aws(), client, "s3://bucket/runs").unwrap();
        store
            .put("r1/results/00001.parquet", Bytes::from_static(b"x"))
            .unwrap();
        assert_eq!(put.num_calls(), 3);
    }

    #[test]
    fn a_bucket_in_another_region_is_named_with_its_region() {
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        for status in [301u16, 400] {
            let head = mock!(Client::head_bucket).then_http_response(move || {
                let mut r = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
                r.headers_mut().insert("x-amz-bucket-region", "eu-west-1");
                r
            });
            let calls = crate::calls::contract::Calls::new("tandem worker");
            let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head], |c| c
                .region(aws_sdk_s3::config::Region::new("us-east-2"))
                .interceptor(calls.recorder(crate::calls::resolve::s3)));
            let err = S3Store::with_client(&aws(), client, "s3://bucket")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("is in region eu-west-1, not us-east-2: set AWS_REGION=eu-west-1"),
                "{status}: {err}"
            );
        }
    }

    #[test]
    fn denied_credentials_are_named_when_the_bucket_is_opened() {
        let head = mock!(Client::head_bucket)
            .sequence()
            .http_status(403, None)
            .build();
        let calls = crate::calls::contract::Calls::new("tandem worker");
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&head], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::s3)));
        let err = S3Store::with_client(&aws(), client, "s3://bucket")
            .unwrap_err()
            .to_string();
        assert!(err.contains("access to bucket \"bucket\" denied"), "{err}");
    }
}
