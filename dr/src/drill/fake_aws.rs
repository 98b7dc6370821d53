//! A fake AWS account for the drill's tests: DynamoDB and AWS Backup answering the
//! real SDK clients (through `aws-smithy-mocks`), behaving like the services over
//! time on a virtual clock (tokio's, paused in tests, so an hour of waiting takes
//! no time).
//!
//! What it reproduces, because the drill must handle it on a real account:
//! - tables are CREATING for a while; writes to a table that is not ACTIVE fail;
//!   DeleteTable is refused while a table is CREATING or UPDATING;
//! - enabling PITR is refused for the first minute after a table becomes active, the
//!   latest restorable time trails now by five minutes, and a restore point outside
//!   the window is refused;
//! - on-demand backups are CREATING for two minutes and hold the writes of up to 40
//!   seconds after the request (inside DynamoDB's documented minute);
//! - restores (point in time, from a backup, AWS Backup restore jobs) take 15 to 20
//!   minutes, backup jobs five, copy jobs ten; recovery points in use by a copy cannot
//!   be deleted;
//! - a replica is CREATING for eight minutes and then reads the primary's writes with
//!   a lag; removing one takes four;
//! - throttling: every Nth batch write can come back with half its items
//!   unprocessed, to be sent again. (Throttling answered as an error is retried by
//!   the SDK itself and tested elsewhere with plain mock sequences: a computed mock
//!   response cannot be replayed on a retry.)
//!
//! [`Faults`] injects what a drill must catch: restores that drop items, a replica
//! that lags past its RPO target, restore jobs that fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;

use super::aws::{AwsBackend, BackupSetup};
use crate::dynamodb::{from_item, to_item};
use crate::product::Product;
use crate::region::RegionName;

const ACCOUNT: &str = "123456789012";
const MIN_US: u64 = 60_000_000;

/// What to break.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Items every restore (of any kind) leaves out.
    pub restore_drops: usize,
    /// How far behind the primary a replica reads.
    pub replica_lag: Duration,
    /// Every Nth BatchWriteItem is throttled: half its items come back unprocessed,
    /// as DynamoDB answers a batch it cannot absorb (0: never).
    pub unprocessed_every: u32,
    /// AWS Backup restore jobs end FAILED.
    pub fail_restore_jobs: bool,
}

type Log = Vec<(u64, String, Option<Product>)>;

#[derive(Debug, Clone)]
struct Replica {
    active_us: u64,
    removing_since: Option<u64>,
}

#[derive(Debug, Clone)]
struct Table {
    arn: String,
    ready_us: u64,
    log: Log,
    pitr_since: Option<u64>,
    replicas: BTreeMap<String, Replica>,
}

#[derive(Debug, Clone)]
struct Backup {
    table_arn: String,
    region: String,
    requested_us: u64,
    available_us: u64,
}

#[derive(Debug, Clone)]
struct RecoveryPoint {
    region: String,
    vault: String,
    /// The log it was taken from and the instant it holds.
    source_arn: String,
    as_of_us: u64,
}

#[derive(Debug, Clone)]
struct Job {
    region: String,
    started_us: u64,
    done_us: u64,
    failed: bool,
    /// Backup job: its recovery point; copy job: the destination point made at the
    /// end; restore job: the table made at the end.
    output: String,
    source: String,
    /// Restore: the target table name; copy: the destination region.
    target: String,
    /// What the job makes at its end has been made.
    settled: bool,
}

#[derive(Debug, Default)]
struct State {
    tables: HashMap<(String, String), Table>,
    /// Logs of deleted tables, by ARN (backups still read them).
    graveyard: HashMap<String, Log>,
    backups: HashMap<String, Backup>,
    points: HashMap<String, RecoveryPoint>,
    backup_jobs: HashMap<String, Job>,
    copy_jobs: HashMap<String, Job>,
    restore_jobs: HashMap<String, Job>,
    requests: u64,
    next_id: u64,
}

/// The fake account. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct FakeAws {
    state: Arc<Mutex<State>>,
    faults: Arc<Faults>,
    epoch_us: u64,
    start: Instant,
    primary: String,
    recovery: String,
    /// Every call the drill's clients made, as IAM sees them (the contract check).
    calls: tandem_sdk::calls::CallLog,
}

fn state_at(log: &Log, at_us: u64) -> BTreeMap<String, Product> {
    let mut items = BTreeMap::new();
    for (ts, id, item) in log {
        if *ts > at_us {
            break;
        }
        match item {
            Some(p) => items.insert(id.clone(), p.clone()),
            None => items.remove(id),
        };
    }
    items
}

fn ddb_error(code: &str, message: &str) -> HttpResponse {
    let body =
        serde_json::json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message});
    let mut r = HttpResponse::new(
        StatusCode::try_from(400).unwrap_or_else(|_| unreachable!()),
        SdkBody::from(body.to_string()),
    );
    r.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    r
}

/// DynamoDB's answer for a table that is not there.
fn table_not_found(name: &str) -> HttpResponse {
    ddb_error("TableNotFoundException", &format!("Table not found: {name}"))
}

fn backup_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({"Code": code, "Message": message});
    let mut r = HttpResponse::new(
        StatusCode::try_from(status).unwrap_or_else(|_| unreachable!()),
        SdkBody::from(body.to_string()),
    );
    r.headers_mut().insert("content-type", "application/json");
    r.headers_mut().insert("x-amzn-errortype", code.to_string());
    r
}

fn date(us: u64) -> DateTime {
    DateTime::from_secs_and_nanos((us / 1_000_000) as i64, ((us % 1_000_000) * 1000) as u32)
}

impl FakeAws {
    /// A fresh account with `faults`, its two regions `primary` and `recovery`.
    pub fn new(primary: &str, recovery: &str, faults: Faults) -> Self {
        Self {
            state: Arc::default(),
            faults: Arc::new(faults),
            epoch_us: 1_800_000_000_000_000,
            start: Instant::now(),
            primary: primary.to_string(),
            recovery: recovery.to_string(),
            calls: tandem_sdk::calls::CallLog::memory(),
        }
    }

    /// Every call made through this account's clients so far (`tandem dr-drill`'s).
    pub fn calls(&self) -> Vec<tandem_sdk::calls::Call> {
        self.calls.calls()
    }

    fn recorder(&self, resolver: tandem_sdk::calls::Resolver) -> tandem_sdk::calls::Recorder {
        tandem_sdk::calls::Recorder::new(self.calls.clone(), "tandem dr-drill", resolver)
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

    fn vault_arn(region: &str, name: &str) -> String {
        format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}")
    }

    /// The DR stack's outputs for this account: vaults, role, plan.
    pub fn setup(&self) -> BackupSetup {
        BackupSetup {
            primary_vault: Some("tandem-dr-primary".into()),
            recovery_vault_arn: Some(Self::vault_arn(&self.recovery, "tandem-dr-recovery")),
            role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/tandem-dr-backup")),
            plan_id: Some("plan-1".into()),
        }
    }

    /// The drill's backend over this account's clients.
    pub fn backend(&self) -> AwsBackend {
        let mut dynamodb = HashMap::new();
        let mut backup = HashMap::new();
        for r in [&self.primary, &self.recovery] {
            let region: RegionName = r.parse().unwrap_or_else(|_| unreachable!());
            dynamodb.insert(region.clone(), self.dynamodb_client(r));
            backup.insert(region, self.backup_client(r));
        }
        AwsBackend::new(
            self.primary.parse().unwrap_or_else(|_| unreachable!()),
            dynamodb,
            backup,
            self.setup(),
            self.clock(),
        )
    }

    /// What the drill left: tables, backups, recovery points, unfinished jobs.
    pub fn leftovers(&self) -> Vec<String> {
        let now = self.now_us();
        let s = self.lock();
        let mut out: Vec<String> = s
            .tables
            .keys()
            .map(|(r, n)| format!("table {n} in {r}"))
            .chain(s.backups.keys().map(|b| format!("backup {b}")))
            .chain(s.points.keys().map(|p| format!("recovery point {p}")))
            .collect();
        for (kind, jobs) in [
            ("backup", &s.backup_jobs),
            ("copy", &s.copy_jobs),
            ("restore", &s.restore_jobs),
        ] {
            for (id, j) in jobs {
                if j.done_us > now {
                    out.push(format!("{kind} job {id} still running"));
                }
            }
        }
        for ((r, n), t) in &s.tables {
            for rr in t.replicas.keys() {
                out.push(format!("replica of {n} ({r}) in {rr}"));
            }
        }
        out.sort();
        out
    }

    /// Every table in the account, by region and name.
    pub fn tables(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.lock().tables.keys().cloned().collect();
        v.sort();
        v
    }

    /// The state, with the replica removals whose four minutes have passed done.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let now = self.now_us();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for t in s.tables.values_mut() {
            t.replicas
                .retain(|_, r| r.removing_since.is_none_or(|since| now < since + 4 * MIN_US));
        }
        s
    }

    /// Whether this batch write is one the table throttles (its every Nth).
    fn throttled(&self) -> bool {
        let mut s = self.lock();
        s.requests += 1;
        self.faults.unprocessed_every > 0
            && s.requests
                .is_multiple_of(u64::from(self.faults.unprocessed_every))
    }

    fn id(&self) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        format!("{:012x}", s.next_id)
    }

    fn drop_items(&self, mut items: BTreeMap<String, Product>) -> BTreeMap<String, Product> {
        let victims: Vec<String> = items
            .keys()
            .filter(|k| k.starts_with("seed-"))
            .take(self.faults.restore_drops)
            .cloned()
            .collect();
        for v in victims {
            items.remove(&v);
        }
        items
    }

    /// A new table in `region` holding `items`, ACTIVE at `ready_us`.
    fn make_table(
        &self,
        s: &mut State,
        region: &str,
        name: &str,
        items: BTreeMap<String, Product>,
        ready_us: u64,
    ) {
        let arn = format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}");
        let log = items.into_iter().map(|(k, v)| (0, k, Some(v))).collect();
        s.tables.insert(
            (region.to_string(), name.to_string()),
            Table {
                arn,
                ready_us,
                log,
                pitr_since: None,
                replicas: BTreeMap::new(),
            },
        );
    }

    fn table_status(t: &Table, now: u64) -> &'static str {
        if now < t.ready_us {
            "CREATING"
        } else if t
            .replicas
            .values()
            .any(|r| now < r.active_us || r.removing_since.is_some())
        {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }

    /// The items a read in `region` of `name` sees: the table's, or a replica's view
    /// of its primary (lagging), or `None` when nothing readable is there.
    fn read_view(&self, region: &str, name: &str) -> Option<BTreeMap<String, Product>> {
        let now = self.now_us();
        let s = self.lock();
        if let Some(t) = s.tables.get(&(region.to_string(), name.to_string())) {
            return (now >= t.ready_us).then(|| state_at(&t.log, now));
        }
        s.tables.iter().find_map(|((_, n), t)| {
            let r = t.replicas.get(region)?;
            (n == name && now >= r.active_us && r.removing_since.is_none()).then(|| {
                state_at(
                    &t.log,
                    now.saturating_sub(self.faults.replica_lag.as_micros() as u64),
                )
            })
        })
    }

    /// Appends a write to the table `name` read or written in `region` (a replica's
    /// writes go to its table's log). `Err` when there is no active table.
    fn write(&self, region: &str, name: &str, id: &str, item: Option<Product>) -> Result<(), ()> {
        let now = self.now_us();
        let mut s = self.lock();
        let key = (region.to_string(), name.to_string());
        let target = if s.tables.contains_key(&key) {
            Some(key)
        } else {
            s.tables
                .iter()
                .find(|((_, n), t)| n == name && t.replicas.get(region).is_some_and(|r| now >= r.active_us))
                .map(|(k, _)| k.clone())
        };
        match target.and_then(|k| s.tables.get_mut(&k)) {
            Some(t) if now >= t.ready_us => {
                t.log.push((now, id.to_string(), item));
                Ok(())
            }
            _ => Err(()),
        }
    }

    fn dynamodb_client(&self, region: &str) -> aws_sdk_dynamodb::Client {
        use aws_sdk_dynamodb::Client;
        use aws_sdk_dynamodb::operation::{
            batch_write_item::BatchWriteItemOutput, create_backup::CreateBackupOutput,
            create_table::CreateTableOutput, delete_backup::DeleteBackupOutput,
            delete_item::DeleteItemOutput, delete_table::DeleteTableOutput,
            describe_backup::DescribeBackupOutput,
            describe_continuous_backups::DescribeContinuousBackupsOutput,
            describe_table::DescribeTableOutput, get_item::GetItemOutput, put_item::PutItemOutput,
            restore_table_from_backup::RestoreTableFromBackupOutput,
            restore_table_to_point_in_time::RestoreTableToPointInTimeOutput, scan::ScanOutput,
            update_continuous_backups::UpdateContinuousBackupsOutput, update_item::UpdateItemOutput,
            update_table::UpdateTableOutput,
        };
        use aws_sdk_dynamodb::types::{
            BackupDescription, BackupDetails, BackupStatus, BackupType, ContinuousBackupsDescription,
            ContinuousBackupsStatus, PointInTimeRecoveryDescription, PointInTimeRecoveryStatus,
            ReplicaDescription, ReplicaStatus, TableDescription, TableStatus,
        };
        let r = region.to_string();
        let me = self.clone();

        let describe = |me: &FakeAws, r: &str, name: &str| -> Option<TableDescription> {
            let now = me.now_us();
            let s = me.lock();
            let t = s.tables.get(&(r.to_string(), name.to_string()))?;
            let mut replicas = vec![
                ReplicaDescription::builder()
                    .region_name(r)
                    .replica_status(ReplicaStatus::Active)
                    .build(),
            ];
            for (rr, rep) in &t.replicas {
                let st = if rep.removing_since.is_some() {
                    ReplicaStatus::Deleting
                } else if now < rep.active_us {
                    ReplicaStatus::Creating
                } else {
                    ReplicaStatus::Active
                };
                replicas.push(
                    ReplicaDescription::builder()
                        .region_name(rr)
                        .replica_status(st)
                        .build(),
                );
            }
            Some(
                TableDescription::builder()
                    .table_name(name)
                    .table_arn(&t.arn)
                    .table_status(TableStatus::from(FakeAws::table_status(t, now)))
                    .set_replicas(Some(replicas))
                    .build(),
            )
        };

        let mut rules: Vec<Rule> = Vec::new();
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::create_table).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let now = me.now_us();
                let mut s = me.lock();
                if s.tables.contains_key(&(r.clone(), name.clone())) {
                    return MockResponse::Http(ddb_error(
                        "ResourceInUseException",
                        &format!("Table already exists: {name}"),
                    ));
                }
                me.make_table(&mut s, &r, &name, BTreeMap::new(), now + 15_000_000);
                MockResponse::Output(CreateTableOutput::builder().build())
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::describe_table).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default();
                match describe(&me, &r, name) {
                    Some(d) => MockResponse::Output(DescribeTableOutput::builder().table(d).build()),
                    None => MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        &format!("Requested resource not found: Table: {name} not found"),
                    )),
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::delete_table).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let now = me.now_us();
                let mut s = me.lock();
                let key = (r.clone(), name.clone());
                match s.tables.get(&key) {
                    Some(t) => {
                        let status = FakeAws::table_status(t, now);
                        if status != "ACTIVE" {
                            return MockResponse::Http(ddb_error(
                                "ResourceInUseException",
                                &format!("Attempt to change a resource which is still in use: Table is {status}: {name}"),
                            ));
                        }
                        if let Some(t) = s.tables.remove(&key) {
                            s.graveyard.insert(t.arn, t.log);
                        }
                        MockResponse::Output(DeleteTableOutput::builder().build())
                    }
                    None => {
                        // Deleting a replica's table removes the replica.
                        let primary = s.tables.values_mut().find(|t| t.arn.ends_with(&format!("table/{name}")) && t.replicas.contains_key(&r));
                        match primary {
                            Some(t) => {
                                t.replicas.remove(&r);
                                MockResponse::Output(DeleteTableOutput::builder().build())
                            }
                            None => MockResponse::Http(ddb_error("ResourceNotFoundException", &format!("Requested resource not found: Table: {name} not found"))),
                        }
                    }
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(
                mock!(Client::update_continuous_backups).then_compute_response(move |req| {
                    let name = req.table_name().unwrap_or_default().to_string();
                    let now = me.now_us();
                    let mut s = me.lock();
                    let Some(t) = s.tables.get_mut(&(r.clone(), name.clone())) else {
                        return MockResponse::Http(table_not_found(&name));
                    };
                    if now < t.ready_us + MIN_US {
                        return MockResponse::Http(ddb_error(
                            "ContinuousBackupsUnavailableException",
                            "Backups are being enabled for the table: Please retry later",
                        ));
                    }
                    t.pitr_since.get_or_insert(now);
                    MockResponse::Output(
                        UpdateContinuousBackupsOutput::builder()
                            .continuous_backups_description(
                                ContinuousBackupsDescription::builder()
                                    .continuous_backups_status(ContinuousBackupsStatus::Enabled)
                                    .point_in_time_recovery_description(
                                        PointInTimeRecoveryDescription::builder()
                                            .point_in_time_recovery_status(PointInTimeRecoveryStatus::Enabled)
                                            .build(),
                                    )
                                    .build()
                                    .unwrap_or_else(|_| unreachable!()),
                            )
                            .build(),
                    )
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(
                mock!(Client::describe_continuous_backups).then_compute_response(move |req| {
                    let name = req.table_name().unwrap_or_default().to_string();
                    let now = me.now_us();
                    let s = me.lock();
                    let Some(t) = s.tables.get(&(r.clone(), name.clone())) else {
                        return MockResponse::Http(table_not_found(&name));
                    };
                    let mut pitr = PointInTimeRecoveryDescription::builder();
                    if let Some(since) = t.pitr_since {
                        pitr = pitr
                            .point_in_time_recovery_status(PointInTimeRecoveryStatus::Enabled)
                            .earliest_restorable_date_time(date(since))
                            .latest_restorable_date_time(date(since.max(now.saturating_sub(5 * MIN_US))));
                    } else {
                        pitr = pitr.point_in_time_recovery_status(PointInTimeRecoveryStatus::Disabled);
                    }
                    MockResponse::Output(
                        DescribeContinuousBackupsOutput::builder()
                            .continuous_backups_description(
                                ContinuousBackupsDescription::builder()
                                    .continuous_backups_status(ContinuousBackupsStatus::Enabled)
                                    .point_in_time_recovery_description(pitr.build())
                                    .build()
                                    .unwrap_or_else(|_| unreachable!()),
                            )
                            .build(),
                    )
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(
                mock!(Client::restore_table_to_point_in_time).then_compute_response(move |req| {
                    let source = req.source_table_name().unwrap_or_default().to_string();
                    let target = req.target_table_name().unwrap_or_default().to_string();
                    let at = req
                        .restore_date_time()
                        .map(|d| (d.as_secs_f64() * 1e6) as u64)
                        .unwrap_or(0);
                    let now = me.now_us();
                    let mut s = me.lock();
                    let Some(t) = s.tables.get(&(r.clone(), source.clone())) else {
                        return MockResponse::Http(table_not_found(&source));
                    };
                    let Some(since) = t.pitr_since else {
                        return MockResponse::Http(ddb_error(
                            "PointInTimeRecoveryUnavailableException",
                            "Point in time recovery is not enabled",
                        ));
                    };
                    let latest = since.max(now.saturating_sub(5 * MIN_US));
                    if at < since || at > latest {
                        return MockResponse::Http(ddb_error(
                            "InvalidRestoreTimeException",
                            &format!("Restore time {at} is outside the restorable window {since}..{latest}"),
                        ));
                    }
                    if s.tables.contains_key(&(r.clone(), target.clone())) {
                        return MockResponse::Http(ddb_error(
                            "TableAlreadyExistsException",
                            &format!("Table already exists: {target}"),
                        ));
                    }
                    let items = me.drop_items(state_at(&t.log, at));
                    me.make_table(&mut s, &r, &target, items, now + 20 * MIN_US);
                    MockResponse::Output(RestoreTableToPointInTimeOutput::builder().build())
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::put_item).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let Ok(p) = from_item(&name, req.item().unwrap_or(&HashMap::new())) else {
                    return MockResponse::Http(ddb_error("ValidationException", "bad item"));
                };
                let exists = me.read_view(&r, &name).map(|v| v.contains_key(&p.product_id));
                match exists {
                    None => MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    )),
                    Some(true) if req.condition_expression().is_some() => MockResponse::Http(ddb_error(
                        "ConditionalCheckFailedException",
                        "The conditional request failed",
                    )),
                    Some(_) => match me.write(&r, &name, &p.product_id.clone(), Some(p)) {
                        Ok(()) => MockResponse::Output(PutItemOutput::builder().build()),
                        Err(()) => MockResponse::Http(ddb_error(
                            "ResourceNotFoundException",
                            "Requested resource not found",
                        )),
                    },
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::batch_write_item).then_compute_response(move |req| {
                let throttle = me.throttled();
                let mut unprocessed: HashMap<String, Vec<aws_sdk_dynamodb::types::WriteRequest>> =
                    HashMap::new();
                for (name, writes) in req.request_items().cloned().unwrap_or_default() {
                    let half = writes.len() / 2;
                    for (i, w) in writes.into_iter().enumerate() {
                        if throttle && i >= half {
                            unprocessed.entry(name.clone()).or_default().push(w);
                            continue;
                        }
                        let Some(put) = w.put_request() else { continue };
                        let Ok(p) = from_item(&name, put.item()) else {
                            return MockResponse::Http(ddb_error("ValidationException", "bad item"));
                        };
                        if me.write(&r, &name, &p.product_id.clone(), Some(p)).is_err() {
                            return MockResponse::Http(ddb_error(
                                "ResourceNotFoundException",
                                "Requested resource not found",
                            ));
                        }
                    }
                }
                MockResponse::Output(
                    BatchWriteItemOutput::builder()
                        .set_unprocessed_items((!unprocessed.is_empty()).then_some(unprocessed))
                        .build(),
                )
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::get_item).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let id = req
                    .key()
                    .and_then(|k| k.get("product_id"))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                match me.read_view(&r, &name) {
                    None => MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    )),
                    Some(v) => MockResponse::Output(
                        GetItemOutput::builder().set_item(v.get(&id).map(to_item)).build(),
                    ),
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::update_item).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let id = req
                    .key()
                    .and_then(|k| k.get("product_id"))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let Some(view) = me.read_view(&r, &name) else {
                    return MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    ));
                };
                let Some(mut p) = view.get(&id).cloned() else {
                    return MockResponse::Http(ddb_error(
                        "ConditionalCheckFailedException",
                        "The conditional request failed",
                    ));
                };
                let values = req.expression_attribute_values().cloned().unwrap_or_default();
                let s = |k: &str| values.get(k).and_then(|v| v.as_s().ok()).cloned();
                p.product_category = s(":c").unwrap_or(p.product_category);
                p.product_title = s(":t").unwrap_or(p.product_title);
                if let Some(u) = values
                    .get(":u")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                {
                    p.updated_at_us = u;
                }
                let out = to_item(&p);
                match me.write(&r, &name, &id, Some(p)) {
                    Ok(()) => {
                        MockResponse::Output(UpdateItemOutput::builder().set_attributes(Some(out)).build())
                    }
                    Err(()) => MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    )),
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::delete_item).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let id = req
                    .key()
                    .and_then(|k| k.get("product_id"))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let Some(view) = me.read_view(&r, &name) else {
                    return MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    ));
                };
                let old = view.get(&id).map(to_item);
                if old.is_some() && me.write(&r, &name, &id, None).is_err() {
                    return MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    ));
                }
                MockResponse::Output(DeleteItemOutput::builder().set_attributes(old).build())
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::scan).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let Some(view) = me.read_view(&r, &name) else {
                    return MockResponse::Http(ddb_error(
                        "ResourceNotFoundException",
                        "Requested resource not found",
                    ));
                };
                let after = req
                    .exclusive_start_key()
                    .and_then(|k| k.get("product_id"))
                    .and_then(|v| v.as_s().ok())
                    .cloned();
                let limit = req.limit().unwrap_or(1000).max(1) as usize;
                let mut items: Vec<&Product> = view
                    .values()
                    .filter(|p| after.as_ref().is_none_or(|a| p.product_id.as_str() > a.as_str()))
                    .collect();
                let more = items.len() > limit;
                items.truncate(limit);
                let last = more.then(|| {
                    HashMap::from([(
                        "product_id".to_string(),
                        AttributeValue::S(items.last().map(|p| p.product_id.clone()).unwrap_or_default()),
                    )])
                });
                MockResponse::Output(
                    ScanOutput::builder()
                        .set_items(Some(items.into_iter().map(to_item).collect()))
                        .set_last_evaluated_key(last)
                        .build(),
                )
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::create_backup).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let now = me.now_us();
                let id = me.id();
                let mut s = me.lock();
                let Some(t) = s.tables.get(&(r.clone(), name.clone())) else {
                    return MockResponse::Http(table_not_found(&name));
                };
                let arn = format!("{}/backup/{id}", t.arn);
                let table_arn = t.arn.clone();
                s.backups.insert(
                    arn.clone(),
                    Backup {
                        table_arn,
                        region: r.clone(),
                        requested_us: now,
                        available_us: now + 2 * MIN_US,
                    },
                );
                MockResponse::Output(
                    CreateBackupOutput::builder()
                        .backup_details(
                            BackupDetails::builder()
                                .backup_arn(arn)
                                .backup_name(req.backup_name().unwrap_or_default())
                                .backup_status(BackupStatus::Creating)
                                .backup_type(BackupType::User)
                                .backup_creation_date_time(date(now))
                                .build()
                                .unwrap_or_else(|_| unreachable!()),
                        )
                        .build(),
                )
            }));
        }
        {
            let me = me.clone();
            rules.push(mock!(Client::describe_backup).then_compute_response(move |req| {
                let arn = req.backup_arn().unwrap_or_default().to_string();
                let now = me.now_us();
                let s = me.lock();
                let Some(b) = s.backups.get(&arn) else {
                    return MockResponse::Http(ddb_error(
                        "BackupNotFoundException",
                        &format!("Backup not found: {arn}"),
                    ));
                };
                let status = if now < b.available_us {
                    BackupStatus::Creating
                } else {
                    BackupStatus::Available
                };
                MockResponse::Output(
                    DescribeBackupOutput::builder()
                        .backup_description(
                            BackupDescription::builder()
                                .backup_details(
                                    BackupDetails::builder()
                                        .backup_arn(&arn)
                                        .backup_name("b")
                                        .backup_status(status)
                                        .backup_type(BackupType::User)
                                        .backup_creation_date_time(date(b.requested_us))
                                        .build()
                                        .unwrap_or_else(|_| unreachable!()),
                                )
                                .build(),
                        )
                        .build(),
                )
            }));
        }
        {
            let me = me.clone();
            rules.push(mock!(Client::delete_backup).then_compute_response(move |req| {
                let arn = req.backup_arn().unwrap_or_default().to_string();
                let now = me.now_us();
                let mut s = me.lock();
                match s.backups.get(&arn) {
                    None => MockResponse::Http(ddb_error(
                        "BackupNotFoundException",
                        &format!("Backup not found: {arn}"),
                    )),
                    Some(b) if now < b.available_us => {
                        MockResponse::Http(ddb_error("BackupInUseException", "Backup is being created"))
                    }
                    Some(_) => {
                        s.backups.remove(&arn);
                        MockResponse::Output(DeleteBackupOutput::builder().build())
                    }
                }
            }));
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(
                mock!(Client::restore_table_from_backup).then_compute_response(move |req| {
                    let arn = req.backup_arn().unwrap_or_default().to_string();
                    let target = req.target_table_name().unwrap_or_default().to_string();
                    let now = me.now_us();
                    let mut s = me.lock();
                    let Some(b) = s.backups.get(&arn).cloned() else {
                        return MockResponse::Http(ddb_error(
                            "BackupNotFoundException",
                            &format!("Backup not found: {arn}"),
                        ));
                    };
                    if b.region != r {
                        return MockResponse::Http(ddb_error(
                            "BackupNotFoundException",
                            &format!("Backup not found in {r}: {arn}"),
                        ));
                    }
                    if now < b.available_us {
                        return MockResponse::Http(ddb_error(
                            "BackupInUseException",
                            "Backup is being created",
                        ));
                    }
                    if s.tables.contains_key(&(r.clone(), target.clone())) {
                        return MockResponse::Http(ddb_error(
                            "TableAlreadyExistsException",
                            &format!("Table already exists: {target}"),
                        ));
                    }
                    let log = s
                        .tables
                        .values()
                        .find(|t| t.arn == b.table_arn)
                        .map(|t| t.log.clone())
                        .or_else(|| s.graveyard.get(&b.table_arn).cloned())
                        .unwrap_or_default();
                    // A backup holds the writes of up to 40 s after its request.
                    let items = me.drop_items(state_at(&log, b.requested_us + 40_000_000));
                    me.make_table(&mut s, &r, &target, items, now + 15 * MIN_US);
                    MockResponse::Output(RestoreTableFromBackupOutput::builder().build())
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::update_table).then_compute_response(move |req| {
                let name = req.table_name().unwrap_or_default().to_string();
                let now = me.now_us();
                let mut s = me.lock();
                let Some(t) = s.tables.get_mut(&(r.clone(), name.clone())) else {
                    return MockResponse::Http(ddb_error("ResourceNotFoundException", &format!("Table not found: {name}")));
                };
                if FakeAws::table_status(t, now) != "ACTIVE" {
                    return MockResponse::Http(ddb_error(
                        "ResourceInUseException",
                        &format!("Attempt to change a resource which is still in use: Table is being updated: {name}"),
                    ));
                }
                for u in req.replica_updates() {
                    if let Some(c) = u.create() {
                        t.replicas.insert(
                            c.region_name().to_string(),
                            Replica {
                                active_us: now + 8 * MIN_US,
                                removing_since: None,
                            },
                        );
                    }
                    if let Some(d) = u.delete()
                        && let Some(rep) = t.replicas.get_mut(d.region_name())
                    {
                        rep.removing_since = Some(now);
                    }
                }
                MockResponse::Output(UpdateTableOutput::builder().build())
            }));
        }
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &rules, |c| c
            .interceptor(self.recorder(crate::calls::dynamodb))
            .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(100))
            ))
    }

    fn backup_client(&self, region: &str) -> aws_sdk_backup::Client {
        use aws_sdk_backup::Client;
        use aws_sdk_backup::operation::{
            delete_recovery_point::DeleteRecoveryPointOutput, describe_backup_job::DescribeBackupJobOutput,
            describe_copy_job::DescribeCopyJobOutput, describe_restore_job::DescribeRestoreJobOutput,
            get_backup_plan::GetBackupPlanOutput, start_backup_job::StartBackupJobOutput,
            start_copy_job::StartCopyJobOutput, start_restore_job::StartRestoreJobOutput,
        };
        use aws_sdk_backup::types::{
            BackupJobState, BackupPlan, BackupRule, CopyAction, CopyJob, CopyJobState, Lifecycle,
            RestoreJobStatus,
        };
        let r = region.to_string();
        let me = self.clone();
        let setup = self.setup();
        let mut rules: Vec<Rule> = Vec::new();

        // Finishes jobs whose time has come: a copy makes its destination point, a
        // restore makes its table.
        let settle = |me: &FakeAws| {
            let now = me.now_us();
            let mut s = me.lock();
            let copies: Vec<(String, Job)> = s
                .copy_jobs
                .iter()
                .filter(|(_, j)| now >= j.done_us && !j.failed && !j.settled)
                .map(|(k, j)| (k.clone(), j.clone()))
                .collect();
            for (id, j) in copies {
                if let Some(job) = s.copy_jobs.get_mut(&id) {
                    job.settled = true;
                }
                if let Some(src) = s.points.get(&j.source).cloned() {
                    s.points.insert(
                        j.output.clone(),
                        RecoveryPoint {
                            region: j.target.clone(),
                            vault: "tandem-dr-recovery".into(),
                            source_arn: src.source_arn,
                            as_of_us: src.as_of_us,
                        },
                    );
                }
            }
            let restores: Vec<(String, Job)> = s
                .restore_jobs
                .iter()
                .filter(|(_, j)| now >= j.done_us && !j.failed && !j.settled)
                .map(|(k, j)| (k.clone(), j.clone()))
                .collect();
            for (id, j) in restores {
                if let Some(job) = s.restore_jobs.get_mut(&id) {
                    job.settled = true;
                }
                let Some(p) = s.points.get(&j.source).cloned() else {
                    continue;
                };
                let log = s
                    .tables
                    .values()
                    .find(|t| t.arn == p.source_arn)
                    .map(|t| t.log.clone())
                    .or_else(|| s.graveyard.get(&p.source_arn).cloned())
                    .unwrap_or_default();
                let items = me.drop_items(state_at(&log, p.as_of_us));
                me.make_table(&mut s, &j.region, &j.target, items, j.done_us);
            }
        };

        {
            let (me, r, setup) = (me.clone(), r.clone(), setup.clone());
            rules.push(mock!(Client::start_backup_job).then_compute_response(move |req| {
                let vault = req.backup_vault_name().unwrap_or_default();
                if Some(vault) != setup.primary_vault.as_deref() || r != me.primary {
                    return MockResponse::Http(backup_error(
                        400,
                        "ResourceNotFoundException",
                        &format!("Backup vault {vault} not found in {r}"),
                    ));
                }
                if req.iam_role_arn() != setup.role_arn.as_deref() {
                    return MockResponse::Http(backup_error(
                        400,
                        "InvalidParameterValueException",
                        "unknown role",
                    ));
                }
                let table_arn = req.resource_arn().unwrap_or_default().to_string();
                let now = me.now_us();
                let id = me.id();
                let point = format!("arn:aws:backup:{r}:{ACCOUNT}:recovery-point:{id}");
                let mut s = me.lock();
                if !s.tables.values().any(|t| t.arn == table_arn) {
                    return MockResponse::Http(backup_error(
                        400,
                        "InvalidParameterValueException",
                        &format!("no resource {table_arn}"),
                    ));
                }
                s.points.insert(
                    point.clone(),
                    RecoveryPoint {
                        region: r.clone(),
                        vault: vault.to_string(),
                        source_arn: table_arn.clone(),
                        as_of_us: now + 30_000_000,
                    },
                );
                s.backup_jobs.insert(
                    id.clone(),
                    Job {
                        region: r.clone(),
                        started_us: now,
                        done_us: now + 5 * MIN_US,
                        failed: false,
                        output: point.clone(),
                        source: table_arn,
                        target: String::new(),
                        settled: true,
                    },
                );
                MockResponse::Output(
                    StartBackupJobOutput::builder()
                        .backup_job_id(id)
                        .recovery_point_arn(point)
                        .creation_date(date(now))
                        .build(),
                )
            }));
        }
        {
            let me = me.clone();
            rules.push(
                mock!(Client::describe_backup_job).then_compute_response(move |req| {
                    let id = req.backup_job_id().unwrap_or_default();
                    let now = me.now_us();
                    let s = me.lock();
                    let Some(j) = s.backup_jobs.get(id) else {
                        return MockResponse::Http(backup_error(
                            400,
                            "ResourceNotFoundException",
                            &format!("no backup job {id}"),
                        ));
                    };
                    let state = if now < j.started_us + 30_000_000 {
                        BackupJobState::Created
                    } else if now < j.done_us {
                        BackupJobState::Running
                    } else {
                        BackupJobState::Completed
                    };
                    MockResponse::Output(
                        DescribeBackupJobOutput::builder()
                            .backup_job_id(id)
                            .state(state)
                            .recovery_point_arn(&j.output)
                            .build(),
                    )
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(mock!(Client::start_copy_job).then_compute_response(move |req| {
                let point = req.recovery_point_arn().unwrap_or_default().to_string();
                let dest = req.destination_backup_vault_arn().unwrap_or_default().to_string();
                let dest_region = dest.split(':').nth(3).unwrap_or_default().to_string();
                let now = me.now_us();
                let id = me.id();
                let mut s = me.lock();
                if s.points.get(&point).is_none_or(|p| p.region != r) {
                    return MockResponse::Http(backup_error(
                        400,
                        "ResourceNotFoundException",
                        &format!("no recovery point {point} in {r}"),
                    ));
                }
                let done = s
                    .backup_jobs
                    .values()
                    .find(|j| j.output == point)
                    .map(|j| j.done_us)
                    .unwrap_or(now);
                if now < done {
                    return MockResponse::Http(backup_error(
                        400,
                        "InvalidRequestException",
                        "the recovery point is not completed",
                    ));
                }
                s.copy_jobs.insert(
                    id.clone(),
                    Job {
                        region: r.clone(),
                        started_us: now,
                        done_us: now + 10 * MIN_US,
                        failed: false,
                        output: format!("arn:aws:backup:{dest_region}:{ACCOUNT}:recovery-point:{id}"),
                        source: point,
                        target: dest_region,
                        settled: false,
                    },
                );
                MockResponse::Output(
                    StartCopyJobOutput::builder()
                        .copy_job_id(id)
                        .creation_date(date(now))
                        .build(),
                )
            }));
        }
        {
            let me = me.clone();
            rules.push(
                mock!(Client::describe_copy_job).then_compute_response(move |req| {
                    settle(&me);
                    let id = req.copy_job_id().unwrap_or_default();
                    let now = me.now_us();
                    let s = me.lock();
                    let Some(j) = s.copy_jobs.get(id) else {
                        return MockResponse::Http(backup_error(
                            400,
                            "ResourceNotFoundException",
                            &format!("no copy job {id}"),
                        ));
                    };
                    let done = now >= j.done_us;
                    let mut job = CopyJob::builder()
                        .copy_job_id(id)
                        .source_recovery_point_arn(&j.source)
                        .state(if done {
                            CopyJobState::Completed
                        } else {
                            CopyJobState::Running
                        });
                    if done {
                        job = job.destination_recovery_point_arn(&j.output);
                    }
                    MockResponse::Output(DescribeCopyJobOutput::builder().copy_job(job.build()).build())
                }),
            );
        }
        {
            let (me, r, setup) = (me.clone(), r.clone(), setup.clone());
            rules.push(
                mock!(Client::start_restore_job).then_compute_response(move |req| {
                    settle(&me);
                    let point = req.recovery_point_arn().unwrap_or_default().to_string();
                    let target = req
                        .metadata()
                        .and_then(|m| m.get("targetTableName"))
                        .cloned()
                        .unwrap_or_default();
                    if req.iam_role_arn() != setup.role_arn.as_deref() {
                        return MockResponse::Http(backup_error(
                            400,
                            "InvalidParameterValueException",
                            "unknown role",
                        ));
                    }
                    let now = me.now_us();
                    let id = me.id();
                    let mut s = me.lock();
                    if s.points.get(&point).is_none_or(|p| p.region != r) {
                        return MockResponse::Http(backup_error(
                            400,
                            "ResourceNotFoundException",
                            &format!("no recovery point {point} in {r}"),
                        ));
                    }
                    if target.is_empty() || s.tables.contains_key(&(r.clone(), target.clone())) {
                        return MockResponse::Http(backup_error(
                            400,
                            "InvalidRequestException",
                            &format!("bad target table {target:?}"),
                        ));
                    }
                    let failed = me.faults.fail_restore_jobs;
                    s.restore_jobs.insert(
                        id.clone(),
                        Job {
                            region: r.clone(),
                            started_us: now,
                            done_us: now + if failed { 5 } else { 20 } * MIN_US,
                            failed,
                            output: String::new(),
                            source: point,
                            target,
                            settled: false,
                        },
                    );
                    MockResponse::Output(StartRestoreJobOutput::builder().restore_job_id(id).build())
                }),
            );
        }
        {
            let me = me.clone();
            rules.push(
                mock!(Client::describe_restore_job).then_compute_response(move |req| {
                    settle(&me);
                    let id = req.restore_job_id().unwrap_or_default();
                    let now = me.now_us();
                    let s = me.lock();
                    let Some(j) = s.restore_jobs.get(id) else {
                        return MockResponse::Http(backup_error(
                            400,
                            "ResourceNotFoundException",
                            &format!("no restore job {id}"),
                        ));
                    };
                    let (status, message) = if now < j.done_us {
                        (RestoreJobStatus::Running, None)
                    } else if j.failed {
                        (
                            RestoreJobStatus::Failed,
                            Some("Access denied to the KMS key of the vault"),
                        )
                    } else {
                        (RestoreJobStatus::Completed, None)
                    };
                    let pct =
                        (now.saturating_sub(j.started_us) * 100 / (j.done_us - j.started_us).max(1)).min(100);
                    MockResponse::Output(
                        DescribeRestoreJobOutput::builder()
                            .restore_job_id(id)
                            .status(status)
                            .set_status_message(message.map(str::to_string))
                            .percent_done(format!("{pct}%"))
                            .build(),
                    )
                }),
            );
        }
        {
            let (me, r) = (me.clone(), r.clone());
            rules.push(
                mock!(Client::delete_recovery_point).then_compute_response(move |req| {
                    settle(&me);
                    let point = req.recovery_point_arn().unwrap_or_default().to_string();
                    let now = me.now_us();
                    let mut s = me.lock();
                    let vault = req.backup_vault_name().unwrap_or_default();
                    if !s
                        .points
                        .get(&point)
                        .is_some_and(|p| p.region == r && p.vault == vault)
                    {
                        return MockResponse::Http(backup_error(
                            400,
                            "ResourceNotFoundException",
                            &format!("no recovery point {point} in vault {vault} in {r}"),
                        ));
                    }
                    let busy = s
                        .copy_jobs
                        .values()
                        .chain(s.restore_jobs.values())
                        .any(|j| j.source == point && now < j.done_us)
                        || s.backup_jobs
                            .values()
                            .any(|j| j.output == point && now < j.done_us);
                    if busy {
                        return MockResponse::Http(backup_error(
                            400,
                            "InvalidResourceStateException",
                            "the recovery point is in use by a job",
                        ));
                    }
                    s.points.remove(&point);
                    MockResponse::Output(DeleteRecoveryPointOutput::builder().build())
                }),
            );
        }
        {
            let setup = setup.clone();
            rules.push(mock!(Client::get_backup_plan).then_compute_response(move |req| {
                if req.backup_plan_id() != setup.plan_id.as_deref() {
                    return MockResponse::Http(backup_error(
                        400,
                        "ResourceNotFoundException",
                        "no such plan",
                    ));
                }
                let lifecycle = || Lifecycle::builder().delete_after_days(30).build();
                let rule = BackupRule::builder()
                    .rule_name("daily")
                    .target_backup_vault_name("tandem-dr-primary")
                    .schedule_expression("cron(10 9 * * ? *)")
                    .lifecycle(lifecycle())
                    .copy_actions(
                        CopyAction::builder()
                            .destination_backup_vault_arn(
                                setup.recovery_vault_arn.clone().unwrap_or_default(),
                            )
                            .lifecycle(lifecycle())
                            .build()
                            .unwrap_or_else(|_| unreachable!()),
                    )
                    .build()
                    .unwrap_or_else(|_| unreachable!());
                MockResponse::Output(
                    GetBackupPlanOutput::builder()
                        .backup_plan(
                            BackupPlan::builder()
                                .backup_plan_name("tandem-dr")
                                .rules(rule)
                                .build()
                                .unwrap_or_else(|_| unreachable!()),
                        )
                        .build(),
                )
            }));
        }
        mock_client!(aws_sdk_backup, RuleMode::MatchAny, &rules, |c| c
            .interceptor(self.recorder(crate::calls::backup))
            .region(aws_sdk_backup::config::Region::new(region.to_string()))
            .retry_config(
                aws_sdk_backup::config::retry::RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(100))
            ))
    }
}
