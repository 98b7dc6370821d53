//! Puts a drill's metrics ([`super::metrics`]) into CloudWatch with PutMetricData:
//! every datum in [`NAMESPACE`] with the dimension `Stack` (and `Method` for a
//! method's), at the drill's end.
//!
//! What CloudWatch refuses, as its API reference states it
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>):
//! more than 1,000 datums in one request, a namespace starting with `AWS/`, values
//! that are not finite; the caller needs `cloudwatch:PutMetricData`, which can be
//! limited to the namespace (`cloudwatch:namespace`). The datums of one drill are
//! far under the request limit; the requests are split all the same.

use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use tandem_sdk::ServiceError;

use super::metrics::{Metric, NAMESPACE, Unit};
use crate::store::{Error, Result};

/// The most datums one PutMetricData request takes.
pub const MAX_DATUMS: usize = 1000;

fn datum(stack: &str, m: &Metric, at_us: u64) -> MetricDatum {
    let mut dims = vec![Dimension::builder().name("Stack").value(stack).build()];
    if let Some(method) = m.method {
        dims.push(Dimension::builder().name("Method").value(method.name()).build());
    }
    MetricDatum::builder()
        .metric_name(m.name.name())
        .set_dimensions(Some(dims))
        .value(m.value)
        .unit(match m.unit {
            Unit::Count => StandardUnit::Count,
            Unit::Seconds => StandardUnit::Seconds,
        })
        .timestamp(DateTime::from(UNIX_EPOCH + Duration::from_micros(at_us)))
        .build()
}

/// Puts `metrics` of the drill of `stack`, stamped `at_us` (µs since the epoch).
pub async fn put(
    client: &aws_sdk_cloudwatch::Client,
    stack: &str,
    metrics: &[Metric],
    at_us: u64,
) -> Result<()> {
    if stack.is_empty() {
        return Err(Error::InvalidInput(
            "the drill's metrics need the stack's name (their Stack dimension)".into(),
        ));
    }
    if let Some(m) = metrics.iter().find(|m| !m.value.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "metric {} is {}: CloudWatch takes finite values only",
            m.name.name(),
            m.value
        )));
    }
    for chunk in metrics.chunks(MAX_DATUMS) {
        client
            .put_metric_data()
            .namespace(NAMESPACE)
            .set_metric_data(Some(chunk.iter().map(|m| datum(stack, m, at_us)).collect()))
            .send()
            .await
            .map_err(|e| {
                Error::storage(
                    format!("put {} metrics into CloudWatch ({NAMESPACE})", chunk.len()),
                    ServiceError::from(e),
                )
            })?;
    }
    Ok(())
}
