//! The standby's switch on the simulated account: Lambda's reserved concurrency of
//! the standby's function, Route 53's health check, and the API key's secret.

use aws_sdk_lambda::operation::{
    delete_function_concurrency::DeleteFunctionConcurrencyOutput,
    get_function_concurrency::GetFunctionConcurrencyOutput,
    put_function_concurrency::PutFunctionConcurrencyOutput,
};
use aws_sdk_route53::operation::{
    get_health_check::GetHealthCheckOutput, get_health_check_status::GetHealthCheckStatusOutput,
    update_health_check::UpdateHealthCheckOutput,
};
use aws_sdk_route53::types::{
    HealthCheck, HealthCheckConfig, HealthCheckObservation, HealthCheckType, StatusReport,
};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;

use super::account::{Account, Refusal, refuse};
use super::{FakeAws, Rules, json_error, rest_error, retries};

/// Route 53's error answer (REST-XML).
fn xml_error(r: &Refusal) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>fake</RequestId></ErrorResponse>",
        r.code, r.message
    );
    let mut h = HttpResponse::new(
        StatusCode::try_from(404).unwrap_or_else(|_| unreachable!()),
        SdkBody::from(body),
    );
    h.headers_mut().insert("content-type", "text/xml");
    h
}

/// The reserved concurrency of function `name`, or Lambda's refusal.
fn function<'a>(a: &'a mut Account, name: &str) -> Result<&'a mut Option<i32>, Refusal> {
    match a.functions.get_mut(name) {
        Some(c) => Ok(c),
        None => refuse("ResourceNotFoundException", format!("Function not found: {name}")),
    }
}

/// Whether health check `id` is inverted, or Route 53's refusal.
fn health_check<'a>(a: &'a mut Account, id: &str) -> Result<&'a mut bool, Refusal> {
    match a.health_checks.get_mut(id) {
        Some(h) => Ok(h),
        None => refuse(
            "NoSuchHealthCheck",
            format!("No health check exists with the specified ID {id}"),
        ),
    }
}

fn secrets_error(r: &Refusal) -> HttpResponse {
    json_error("secretsmanager", r)
}

impl FakeAws {
    /// A Lambda client of the account in `region` (the standby's).
    pub(super) fn lambda_client(&self, region: &str) -> aws_sdk_lambda::Client {
        use aws_sdk_lambda::Client;
        let mut rules = Rules::new(self, region, rest_error);
        rules.answer(
            mock!(Client::get_function_concurrency),
            |a, _now, _region, req| {
                let c = function(a, req.function_name().unwrap_or_default())?;
                Ok(GetFunctionConcurrencyOutput::builder()
                    .set_reserved_concurrent_executions(*c)
                    .build())
            },
        );
        rules.answer(
            mock!(Client::put_function_concurrency),
            |a, _now, _region, req| {
                let n = req.reserved_concurrent_executions().unwrap_or(0);
                *function(a, req.function_name().unwrap_or_default())? = Some(n);
                Ok(PutFunctionConcurrencyOutput::builder()
                    .reserved_concurrent_executions(n)
                    .build())
            },
        );
        rules.answer(
            mock!(Client::delete_function_concurrency),
            |a, _now, _region, req| {
                let stays_off = a.faults.standby_stays_off;
                let c = function(a, req.function_name().unwrap_or_default())?;
                if !stays_off {
                    *c = None;
                }
                Ok(DeleteFunctionConcurrencyOutput::builder().build())
            },
        );
        mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &rules.done(), |c| c
            .interceptor(self.recorder("tandem dr-drill", crate::calls::lambda))
            .region(aws_sdk_lambda::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_lambda)))
    }

    /// A Route 53 client of the account (a global service).
    pub(super) fn route53_client(&self) -> aws_sdk_route53::Client {
        use aws_sdk_route53::Client;
        let region = "us-east-1";
        let mut rules = Rules::new(self, region, xml_error);
        let config = move |id: &str, inverted: bool| {
            HealthCheck::builder()
                .id(id)
                .caller_reference("tandem")
                .health_check_version(1)
                .health_check_config(
                    HealthCheckConfig::builder()
                        .r#type(HealthCheckType::Https)
                        .resource_path("/prod/health")
                        .inverted(inverted)
                        .build()
                        .unwrap_or_else(|_| unreachable!()),
                )
                .build()
                .unwrap_or_else(|_| unreachable!())
        };
        rules.answer(mock!(Client::get_health_check), move |a, _now, _region, req| {
            let id = req.health_check_id().unwrap_or_default();
            let inverted = *health_check(a, id)?;
            Ok(GetHealthCheckOutput::builder()
                .health_check(config(id, inverted))
                .build())
        });
        rules.answer(
            mock!(Client::update_health_check),
            move |a, _now, _region, req| {
                let id = req.health_check_id().unwrap_or_default();
                let inverted = health_check(a, id)?;
                if let Some(to) = req.inverted() {
                    *inverted = to;
                }
                let now_inverted = *inverted;
                Ok(UpdateHealthCheckOutput::builder()
                    .health_check(config(id, now_inverted))
                    .build())
            },
        );
        rules.answer(mock!(Client::get_health_check_status), |a, _now, _region, req| {
            health_check(a, req.health_check_id().unwrap_or_default())?;
            // What the checkers saw of the primary's /health (inverted or not, the
            // status reports what they saw).
            let status = if a.faults.primary_unhealthy {
                "Failure: Connection timed out."
            } else {
                "Success: HTTP Status Code 200, OK"
            };
            Ok(GetHealthCheckStatusOutput::builder()
                .set_health_check_observations(Some(
                    ["us-east-1", "eu-west-1", "ap-southeast-1"]
                        .into_iter()
                        .map(|r| {
                            HealthCheckObservation::builder()
                                .region(r.into())
                                .status_report(StatusReport::builder().status(status).build())
                                .build()
                        })
                        .collect(),
                ))
                .build()
                .unwrap_or_else(|_| unreachable!()))
        });
        mock_client!(aws_sdk_route53, RuleMode::MatchAny, &rules.done(), |c| c
            .interceptor(self.recorder("tandem dr-drill", crate::calls::route53))
            .region(aws_sdk_route53::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_route53)))
    }

    /// A Secrets Manager client of the account in `region`.
    pub(super) fn secrets_client(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        use aws_sdk_secretsmanager::Client;
        let mut rules = Rules::new(self, region, secrets_error);
        rules.answer(mock!(Client::get_secret_value), |a, _now, region, req| {
            let id = req.secret_id().unwrap_or_default();
            match a.secrets.get(&(region.clone(), id.to_string())) {
                Some(v) => Ok(GetSecretValueOutput::builder().name(id).secret_string(v).build()),
                None => refuse(
                    "ResourceNotFoundException",
                    format!("Secrets Manager can't find the specified secret: {id}"),
                ),
            }
        });
        mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &rules.done(), |c| c
            .interceptor(self.recorder("tandem dr-drill", crate::calls::secretsmanager))
            .region(aws_sdk_secretsmanager::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_secretsmanager)))
    }
}
