//! CloudWatch's PutMetricData on the fake account: the data a game day publishes,
//! kept as CloudWatch would store it, and refused where the API reference says it is
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>):
//! more than 1,000 datums in a request, more than 30 dimensions on one, a namespace
//! starting with `AWS/` (reserved for AWS services), a value that is not a finite
//! number.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::operation::put_metric_data::{PutMetricDataError, PutMetricDataOutput};
use aws_sdk_cloudwatch::types::error::InvalidParameterValueException;
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};

use super::{FakeAws, retries};

/// One datum as CloudWatch stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub namespace: String,
    pub name: String,
    /// (name, value), in the order sent.
    pub dimensions: Vec<(String, String)>,
    pub value: f64,
    pub unit: String,
    pub at_us: u64,
}

fn invalid(message: String) -> MockResponse<PutMetricDataOutput, PutMetricDataError> {
    MockResponse::Error(PutMetricDataError::InvalidParameterValueException(
        InvalidParameterValueException::builder().message(message).build(),
    ))
}

impl FakeAws {
    /// A CloudWatch client in `region`, its calls recorded as the game day's.
    pub fn cloudwatch_client(&self, region: &str) -> Client {
        let fake = self.clone();
        let rule = mock!(Client::put_metric_data).then_compute_response(move |req| {
            let namespace = req.namespace().unwrap_or_default();
            if namespace.starts_with("AWS/") {
                return invalid(format!(
                    "The value {namespace} for parameter Namespace is invalid: AWS/ is reserved for AWS services"
                ));
            }
            let data = req.metric_data();
            if data.len() > 1000 {
                return invalid(format!(
                    "The collection MetricData must not have a size greater than 1000 ({})",
                    data.len()
                ));
            }
            let mut stored = Vec::with_capacity(data.len());
            for (i, d) in data.iter().enumerate() {
                let value = d.value().unwrap_or(f64::NAN);
                if !value.is_finite() {
                    return invalid(format!(
                        "The value {value} for parameter MetricData.member.{}.Value is invalid.",
                        i + 1
                    ));
                }
                if d.dimensions().len() > 30 {
                    return invalid(format!(
                        "The collection MetricData.member.{}.Dimensions must not have a size greater than 30.",
                        i + 1
                    ));
                }
                stored.push(Published {
                    namespace: namespace.to_string(),
                    name: d.metric_name().unwrap_or_default().to_string(),
                    dimensions: d
                        .dimensions()
                        .iter()
                        .map(|x| (x.name().unwrap_or_default().to_string(), x.value().unwrap_or_default().to_string()))
                        .collect(),
                    value,
                    unit: d.unit().map(|u| u.as_str().to_string()).unwrap_or_default(),
                    at_us: d
                        .timestamp()
                        .map(|t| (t.as_secs_f64() * 1e6) as u64)
                        .unwrap_or_else(|| fake.now_us()),
                });
            }
            fake.metrics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(stored);
            MockResponse::Output(PutMetricDataOutput::builder().build())
        });
        mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule], |c| c
            .interceptor(self.recorder("tandem dr game day", crate::calls::cloudwatch))
            .region(aws_sdk_cloudwatch::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_cloudwatch)))
    }

    /// Every datum CloudWatch stored, in order.
    pub fn published(&self) -> Vec<Published> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
