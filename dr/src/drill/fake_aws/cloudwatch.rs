//! CloudWatch's PutMetricData on the fake account: the data a game day publishes,
//! kept as CloudWatch would store it, and refused where the API reference says it is
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>):
//! more than 1,000 datums in a request; a namespace that is empty, longer than 255,
//! starting with `:` or with `AWS/` (reserved for AWS services); a datum without a
//! metric name (1 to 255), with more than 30 dimensions, a dimension name not 1 to 255
//! long or a value not 1 to 1,024 long with a character that is not whitespace; a value
//! that is not a number or beyond 2^360 either way; a timestamp more than two weeks
//! past or two hours ahead (MetricDatum, Dimension).

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
            if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with(':') {
                return invalid(format!("The value {namespace:?} for parameter Namespace is invalid."));
            }
            if namespace.starts_with("AWS/") {
                return invalid(format!(
                    "The value {namespace} for parameter Namespace is invalid: AWS/ is reserved for AWS services"
                ));
            }
            let now = fake.now_us();
            let data = req.metric_data();
            if data.len() > 1000 {
                return invalid(format!(
                    "The collection MetricData must not have a size greater than 1000 ({})",
                    data.len()
                ));
            }
            let mut stored = Vec::with_capacity(data.len());
            for (i, d) in data.iter().enumerate() {
                let member = i + 1;
                let name = d.metric_name().unwrap_or_default();
                if name.is_empty() || name.len() > 255 {
                    return invalid(format!("MetricData.member.{member}.MetricName {name:?} is invalid."));
                }
                let value = d.value().unwrap_or(f64::NAN);
                if !value.is_finite() || value.abs() > 2f64.powi(360) {
                    return invalid(format!(
                        "The value {value} for parameter MetricData.member.{member}.Value is invalid."
                    ));
                }
                if d.dimensions().len() > 30 {
                    return invalid(format!(
                        "The collection MetricData.member.{member}.Dimensions must not have a size greater than 30."
                    ));
                }
                for x in d.dimensions() {
                    let (n, v) = (x.name().unwrap_or_default(), x.value().unwrap_or_default());
                    if n.is_empty() || n.len() > 255 || v.is_empty() || v.len() > 1024 || v.trim().is_empty() {
                        return invalid(format!(
                            "MetricData.member.{member}.Dimensions: the dimension {n:?} = {v:?} is invalid."
                        ));
                    }
                }
                let at = d.timestamp().map(|t| (t.as_secs_f64() * 1e6) as u64).unwrap_or(now);
                if at + 14 * 24 * 3_600_000_000 < now || at > now + 2 * 3_600_000_000 {
                    return invalid(format!(
                        "The parameter MetricData.member.{member}.Timestamp must specify a time no more than two weeks in the past or two hours in the future."
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
                    at_us: at,
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
