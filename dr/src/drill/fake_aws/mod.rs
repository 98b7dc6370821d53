//! A fake AWS account for the drill's tests: the simulated account of [`account`]
//! (pure state, with its own tests) behind the real SDK clients through
//! `aws-smithy-mocks` (one thin rule file per service), and the deployed APIs
//! ([`apis`]), all on a virtual clock (tokio's, paused in tests, so an hour of
//! waiting takes no time).
//!
//! Every call the drill's clients make is recorded as IAM sees it, so the tests
//! check it against the IAM contract; the fake APIs' own DynamoDB calls are
//! recorded as the product-api function's.

mod account;
mod apis;

pub use apis::{Refused, USAGE_PLAN_RATE, WAF_LIMIT};
pub use cloudwatch::Published;
mod backup;
mod cloudwatch;
mod control;
mod dynamodb;

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;

pub use account::Faults;
use account::{ACCOUNT, Account, Names, Refusal};

use super::StandbyMode;
use super::aws::{AwsBackend, AwsClients, AwsSetup, DeployedStandby};
use crate::region::RegionName;
use crate::standby::{Standby, SwitchClients};

/// A client's mock rules: each answers one operation from the account, locked, at
/// the call's instant and in the client's region; a [`Refusal`] becomes the
/// service's error answer.
struct Rules {
    fake: FakeAws,
    region: String,
    err: fn(&Refusal) -> HttpResponse,
    rules: Vec<aws_smithy_mocks::Rule>,
}

impl Rules {
    fn new(fake: &FakeAws, region: &str, err: fn(&Refusal) -> HttpResponse) -> Self {
        Self {
            fake: fake.clone(),
            region: region.to_string(),
            err,
            rules: Vec::new(),
        }
    }

    /// Answers the operation of `rule` with `f(account, now, region, input)`.
    fn answer<I, O, E>(
        &mut self,
        rule: aws_smithy_mocks::RuleBuilder<I, O, E>,
        f: impl Fn(&mut Account, u64, &String, &I) -> Result<O, Refusal> + Send + Sync + 'static,
    ) where
        I: std::fmt::Debug + Send + Sync + 'static,
        O: std::fmt::Debug + Send + Sync + 'static,
        E: std::fmt::Debug + Send + Sync + std::error::Error + 'static,
    {
        let (fake, region, err) = (self.fake.clone(), self.region.clone(), self.err);
        self.rules.push(rule.then_compute_response(move |req| {
            let now = fake.now_us();
            let mut account = fake.lock();
            match f(&mut account, now, &region, req) {
                Ok(out) => aws_smithy_mocks::MockResponse::Output(out),
                Err(r) => aws_smithy_mocks::MockResponse::Http(err(&r)),
            }
        }));
    }

    /// The rules, for the client.
    fn done(self) -> Vec<aws_smithy_mocks::Rule> {
        self.rules
    }
}

/// The retry configuration of the fake clients: the SDK's, with short pauses.
macro_rules! retries {
    ($service:ident) => {
        $service::config::retry::RetryConfig::standard()
            .with_max_attempts(6)
            .with_initial_backoff(std::time::Duration::from_millis(100))
    };
}
pub(crate) use retries;

/// An error answer in the JSON protocols (DynamoDB, Secrets Manager: `__type`).
pub(crate) fn json_error(prefix: &str, r: &Refusal) -> HttpResponse {
    let body = serde_json::json!({"__type": format!("{prefix}#{}", r.code), "message": r.message});
    let mut h = HttpResponse::new(
        StatusCode::try_from(400).unwrap_or_else(|_| unreachable!()),
        SdkBody::from(body.to_string()),
    );
    h.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    h
}

/// An error answer in the REST-JSON protocols (AWS Backup, Lambda).
pub(crate) fn rest_error(r: &Refusal) -> HttpResponse {
    let status = match r.code {
        "ResourceNotFoundException" => 404,
        _ => 400,
    };
    let body = serde_json::json!({"Code": r.code, "Message": r.message, "message": r.message});
    let mut h = HttpResponse::new(
        StatusCode::try_from(status).unwrap_or_else(|_| unreachable!()),
        SdkBody::from(body.to_string()),
    );
    h.headers_mut().insert("content-type", "application/json");
    h.headers_mut().insert("x-amzn-errortype", r.code.to_string());
    h
}

/// An instant of the virtual clock as the SDK's date.
pub(crate) fn date(us: u64) -> DateTime {
    DateTime::from_secs_and_nanos((us / 1_000_000) as i64, ((us % 1_000_000) * 1000) as u32)
}

/// The fake account. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct FakeAws {
    account: Arc<Mutex<Account>>,
    epoch_us: u64,
    start: Instant,
    dns: bool,
    /// Every call the clients made, as IAM sees them (the contract check).
    calls: tandem_sdk::calls::CallLog,
    /// The deployed APIs' web ACL and usage plan limits.
    stages: apis::Stages,
    /// What CloudWatch stored (the game day's metrics).
    metrics: Arc<Mutex<Vec<Published>>>,
}

impl FakeAws {
    /// A fresh account with `faults` in `primary` and `recovery`, whose deployment
    /// has a pilot light and no hosted zone.
    pub fn new(primary: &str, recovery: &str, faults: Faults) -> Self {
        Self::deployed(primary, recovery, faults, StandbyMode::PilotLight, false)
    }

    /// A fresh account whose deployment's standby is `mode`, with a hosted zone
    /// (clients switch by DNS) when `dns`.
    pub fn deployed(primary: &str, recovery: &str, faults: Faults, mode: StandbyMode, dns: bool) -> Self {
        let epoch_us = 1_800_000_000_000_000;
        let names = Names {
            primary: primary.into(),
            recovery: recovery.into(),
            table: "DisasterRecoveryStack-ProductE1A2B3C4-1Q2W3E4R5T6Y".into(),
            primary_vault: "tandem-dr-primary".into(),
            recovery_vault: "tandem-dr-recovery".into(),
            plan: "plan-1".into(),
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/tandem-dr-backup"),
            function: "DisasterRecoveryStack-standby-api".into(),
            health_check: "f1e2d3c4-0000-4000-8000-000000000001".into(),
            secret: "tandem/DisasterRecoveryStack/api-key".into(),
        };
        Self {
            account: Arc::new(Mutex::new(Account::new(names, faults, mode, epoch_us))),
            epoch_us,
            start: Instant::now(),
            dns,
            calls: tandem_sdk::calls::CallLog::memory(),
            stages: Default::default(),
            metrics: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn names(&self) -> Names {
        self.lock().names.clone()
    }

    /// Every call made through this account's clients so far.
    pub fn calls(&self) -> Vec<tandem_sdk::calls::Call> {
        self.calls.calls()
    }

    fn recorder(
        &self,
        component: &str,
        resolver: tandem_sdk::calls::Resolver,
    ) -> tandem_sdk::calls::Recorder {
        tandem_sdk::calls::Recorder::new(self.calls.clone(), component, resolver)
    }

    /// The account's clock, µs since the epoch (virtual under paused tokio time).
    pub fn now_us(&self) -> u64 {
        self.epoch_us + self.start.elapsed().as_micros() as u64
    }

    /// The clock as a function, for the backend.
    pub fn clock(&self) -> Arc<dyn Fn() -> u64 + Send + Sync> {
        let me = self.clone();
        Arc::new(move || me.now_us())
    }

    /// The names the deployed stacks give this account's resources, for the IAM
    /// contract's placeholders.
    pub fn stack_names(&self) -> Vec<(&'static str, String)> {
        let n = self.names();
        vec![
            ("Region", n.primary.clone()),
            ("RecoveryRegion", n.recovery.clone()),
            ("ProductTable", n.table.clone()),
            ("ServedTable", n.table.clone()),
            ("PrimaryVault", n.primary_vault.clone()),
            ("RecoveryVault", n.recovery_vault.clone()),
            ("BackupPlan", n.plan.clone()),
            ("BackupRole", "tandem-dr-backup".into()),
            ("StandbyFunction", n.function.clone()),
            ("HealthCheck", n.health_check.clone()),
            ("ApiKeySecret", n.secret.clone()),
        ]
    }

    /// The DR stacks' outputs for this account.
    pub fn setup(&self) -> AwsSetup {
        let n = self.names();
        let mode = self.lock().mode;
        let region: RegionName = n.recovery.parse().unwrap_or_else(|_| unreachable!());
        AwsSetup {
            table: Some(n.table.clone()),
            served_table: None,
            api_rate: Some(apis::USAGE_PLAN_RATE as u32),
            primary_vault: Some(n.primary_vault.clone()),
            recovery_vault_arn: Some(Account::vault_arn(&n.recovery, &n.recovery_vault)),
            role_arn: Some(n.role_arn.clone()),
            plan_id: Some(n.plan.clone()),
            standby: Some(DeployedStandby {
                standby: Standby {
                    region,
                    mode,
                    function: n.function.clone(),
                    health_check: self.dns.then(|| n.health_check.clone()),
                },
                primary_api: format!("https://{}/prod/", apis::host(&n.primary)),
                standby_api: format!("https://{}/prod/", apis::host(&n.recovery)),
                client_url: self.dns.then(|| format!("https://{}", apis::CLIENT_HOST)),
                api_key_secret: n.secret.clone(),
            }),
        }
    }

    /// The standby's switch on this account, as `tandem dr failover` finds it.
    pub fn switch(&self) -> (SwitchClients, Standby) {
        let n = self.names();
        let clients = SwitchClients {
            lambda: self.lambda_client(&n.recovery),
            route53: self.route53_client(),
        };
        let standby = self.setup().standby.unwrap_or_else(|| unreachable!()).standby;
        (clients, standby)
    }

    /// The deployed APIs as a client reaches them (`https://api.REGION.fake/prod`).
    pub fn api_transport(&self) -> Arc<dyn crate::drill::client::Transport> {
        Arc::new(apis::FakeTransport::new(self.clone()))
    }

    /// The API key clients hold (the secret's value).
    pub fn api_key(&self) -> String {
        let n = self.names();
        self.lock()
            .secrets
            .get(&(n.primary.clone(), n.secret.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// The recovery period each table's PITR was switched on with, by table name.
    pub fn pitr_periods(&self) -> Vec<(String, Option<i32>)> {
        self.lock().pitr_periods.clone()
    }

    /// The AWS Backup jobs started so far: (backup, copy, restore).
    pub fn jobs_started(&self) -> (usize, usize, usize) {
        let a = self.lock();
        (a.backup_jobs.len(), a.copy_jobs.len(), a.restore_jobs.len())
    }

    /// Every AWS Backup start call so far: its operation and idempotency token.
    pub fn start_calls(&self) -> Vec<(&'static str, Option<String>)> {
        self.lock().start_calls.clone()
    }

    /// The served table's ARN.
    pub fn table_arn(&self) -> String {
        let n = self.names();
        Account::table_arn(&n.primary, &n.table)
    }

    /// An AWS Backup client of this account in `region`, as the drill's.
    pub fn backup(&self, region: &str) -> aws_sdk_backup::Client {
        self.backup_client(region)
    }

    /// What the deployed APIs' limits refused so far.
    pub fn refused(&self) -> apis::Refused {
        self.stages.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The drill's backend over this account's clients and APIs.
    pub fn backend(&self) -> AwsBackend {
        let n = self.names();
        let regions = [&n.primary, &n.recovery];
        let clients = AwsClients {
            dynamodb: regions
                .iter()
                .map(|r| {
                    (
                        r.parse().unwrap_or_else(|_| unreachable!()),
                        self.dynamodb_client(r, "tandem dr-drill"),
                    )
                })
                .collect(),
            backup: regions
                .iter()
                .map(|r| {
                    (
                        r.parse().unwrap_or_else(|_| unreachable!()),
                        self.backup_client(r),
                    )
                })
                .collect(),
            switch: SwitchClients {
                lambda: self.lambda_client(&n.recovery),
                route53: self.route53_client(),
            },
            secrets: self.secrets_client(&n.recovery),
        };
        AwsBackend::with_transport(
            n.primary.parse().unwrap_or_else(|_| unreachable!()),
            clients,
            self.setup(),
            self.clock(),
            Arc::new(apis::FakeTransport::new(self.clone())),
        )
    }

    /// What the drill left: tables, backups, recovery points, unfinished jobs, items
    /// in the served table, the standby's switch not as deployed.
    pub fn leftovers(&self) -> Vec<String> {
        let now = self.now_us();
        let mut a = self.lock();
        a.settle(now);
        a.leftovers(now)
    }

    /// Every table in the account, by region and name.
    pub fn tables(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.lock().tables.keys().cloned().collect();
        v.sort();
        v
    }
}
