//! The drill on DynamoDB: the same methods, measurements and verdicts as on the
//! embedded backend, through aws-sdk-dynamodb. Against the local emulator this
//! reports honestly what the emulator does not do (moto ignores the PITR restore
//! time, does not replicate global tables, has no AWS Backup plans or cross-region
//! copies): those methods fail, with the difference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    BackupTypeFilter, CreateReplicationGroupMemberAction, PointInTimeRecoverySpecification, PutRequest,
    ReplicationGroupUpdate, TableStatus, WriteRequest,
};

use crate::api::ApiState;
use crate::drill::{
    Canaries, DrillOptions, DrillReport, Method, MethodResult, Run, measure_rto, seed_items, verdict,
};
use crate::dynamodb::DynamoTable;
use crate::embedded::unique;
use crate::product::Product;
use crate::store::{Error, ProductStore, Result, scan_all};

fn sdk(what: &str, e: impl std::fmt::Display) -> Error {
    Error::storage(what.to_string(), e)
}

async fn wait_active(client: &Client, table: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let d = client.describe_table().table_name(table).send().await;
        if let Ok(d) = d
            && d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::storage(
        format!("table {table}"),
        "did not become ACTIVE within 120 s",
    ))
}

async fn seed(table: &DynamoTable, n: usize) -> Result<()> {
    for chunk in seed_items(n).chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|p| {
                let put = PutRequest::builder()
                    .set_item(Some(crate::dynamodb::to_item(p)))
                    .build();
                put.map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| sdk("build put", e))
            })
            .collect::<Result<_>>()?;
        // Retry what the service did not process.
        for _ in 0..10 {
            let out = table
                .client()
                .batch_write_item()
                .request_items(table.name(), requests)
                .send()
                .await
                .map_err(|e| sdk("seed", crate::dynamodb::message(&e)))?;
            requests = out
                .unprocessed_items()
                .and_then(|m| m.get(table.name()))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
        }
    }
    Ok(())
}

async fn drop_table(client: &Client, name: &str) {
    let _ = client.delete_table().table_name(name).send().await;
}

/// Runs the drill on DynamoDB: `primary` and `recovery` are clients for the two regions.
pub async fn run(opts: &DrillOptions, primary: Client, recovery: Client) -> Result<DrillReport> {
    opts.check()?;
    let mut methods = Vec::new();
    for &m in &opts.methods {
        methods.push(run_method(m, opts, &primary, &recovery).await?);
    }
    Ok(DrillReport::new("dynamodb", opts, methods))
}

async fn run_method(
    method: Method,
    opts: &DrillOptions,
    primary: &Client,
    recovery: &Client,
) -> Result<MethodResult> {
    let mut run = Run::new();
    let name = format!("Product-drill-{}-{:x}", method.name(), unique());
    let table = DynamoTable::create(primary.clone(), &name).await?;
    wait_active(primary, &name).await?;
    seed(&table, opts.products).await?;
    run.step(format!(
        "seeded {} products into {name} in {}",
        opts.products, opts.primary_region
    ));
    let probe = table.get("seed-0000000").await?;
    let mut created: Vec<(Client, String)> = vec![(primary.clone(), name.clone())];
    let mut backups_made: Vec<String> = Vec::new();
    let canaries = Canaries::start(Arc::new(table.clone()) as Arc<dyn ProductStore>);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let expected: Vec<Product>;
    let disaster: Instant;
    let acked: Vec<(String, u64)>;
    // The table the recovered API serves, if recovery produced one.
    let mut recovered: Option<DynamoTable> = None;
    match method {
        Method::Pitr => {
            primary
                .update_continuous_backups()
                .table_name(&name)
                .point_in_time_recovery_specification(
                    PointInTimeRecoverySpecification::builder()
                        .point_in_time_recovery_enabled(true)
                        .recovery_period_in_days(opts.pitr_window_days as i32)
                        .build()
                        .map_err(|e| sdk("PITR specification", e))?,
                )
                .send()
                .await
                .map_err(|e| sdk("enable PITR", crate::dynamodb::message(&e)))?;
            canaries.pause(true).await;
            let before = scan_all(&table).await?;
            let restore_point = std::time::SystemTime::now();
            canaries.pause(false).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let damaged = crate::drill::bad_deploy(&table, &before).await?;
            run.step(format!("bad deploy deleted and corrupted {damaged} items"));
            disaster = Instant::now();
            run.step("disaster declared");
            acked = canaries.stop().await;
            let target = format!("{name}-pitr");
            let r = primary
                .restore_table_to_point_in_time()
                .source_table_name(&name)
                .target_table_name(&target)
                .restore_date_time(aws_sdk_dynamodb::primitives::DateTime::from(restore_point))
                .send()
                .await;
            match r {
                Ok(_) => {
                    wait_active(primary, &target).await?;
                    created.push((primary.clone(), target.clone()));
                    run.step(format!("restored to just before the bad deploy into {target}"));
                    recovered = Some(DynamoTable::new(primary.clone(), &target));
                }
                Err(e) => run.notes.push(format!(
                    "FAILED: RestoreTableToPointInTime: {}",
                    crate::dynamodb::message(&e)
                )),
            }
            expected = before;
        }
        Method::Backup | Method::CrossRegion => {
            canaries.pause(true).await;
            let backup = primary
                .create_backup()
                .table_name(&name)
                .backup_name(format!("{name}-drill"))
                .send()
                .await;
            let state_at_backup = scan_all(&table).await?;
            canaries.pause(false).await;
            let arn = match backup {
                Ok(b) => b.backup_details().map(|d| d.backup_arn().to_string()),
                Err(e) => {
                    run.notes
                        .push(format!("FAILED: CreateBackup: {}", crate::dynamodb::message(&e)));
                    None
                }
            };
            run.step(format!("on-demand backup {}", arn.as_deref().unwrap_or("(none)")));
            backups_made.extend(arn.clone());
            tokio::time::sleep(Duration::from_millis(100)).await;
            disaster = Instant::now();
            run.step(if method == Method::CrossRegion {
                "primary region lost"
            } else {
                "table lost"
            });
            acked = canaries.stop().await;
            drop_table(primary, &name).await;
            let (client, region) = if method == Method::CrossRegion {
                (recovery, &opts.recovery_region)
            } else {
                (primary, &opts.primary_region)
            };
            if let Some(arn) = arn {
                let target = format!("{name}-restored");
                match client.restore_table_from_backup().target_table_name(&target).backup_arn(&arn).send().await {
                    Ok(_) => {
                        wait_active(client, &target).await?;
                        created.push((client.clone(), target.clone()));
                        run.step(format!("restored the backup into {target} in {region}"));
                        recovered = Some(DynamoTable::new(client.clone(), &target));
                    }
                    Err(e) => run.notes.push(format!(
                        "FAILED: RestoreTableFromBackup in {region}: {} (DynamoDB restores a backup in its own region; a cross-region copy needs AWS Backup)",
                        crate::dynamodb::message(&e)
                    )),
                }
            }
            expected = state_at_backup;
        }
        Method::Scheduled => {
            let listed = primary
                .list_backups()
                .table_name(&name)
                .backup_type(BackupTypeFilter::All)
                .send()
                .await
                .map_err(|e| sdk("list backups", crate::dynamodb::message(&e)))?;
            let scheduled: Vec<_> = listed
                .backup_summaries()
                .iter()
                .filter(|b| b.backup_type().is_some_and(|t| t.as_str() != "USER"))
                .collect();
            if scheduled.is_empty() {
                run.notes.push(format!(
                    "FAILED: no scheduled backup of {name} exists: scheduled backups come from an AWS Backup plan \
                     (cron(10 9 * * ? *), 30 days), which this endpoint does not provide"
                ));
            }
            canaries.pause(true).await;
            expected = scan_all(&table).await?;
            canaries.pause(false).await;
            disaster = Instant::now();
            run.step("table lost");
            acked = canaries.stop().await;
        }
        Method::PilotLight | Method::WarmStandby => {
            let r = primary
                .update_table()
                .table_name(&name)
                .replica_updates(
                    ReplicationGroupUpdate::builder()
                        .create(
                            CreateReplicationGroupMemberAction::builder()
                                .region_name(&opts.recovery_region)
                                .build()
                                .map_err(|e| sdk("replica", e))?,
                        )
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = r {
                run.notes.push(format!(
                    "FAILED: adding the replica in {}: {}",
                    opts.recovery_region,
                    crate::dynamodb::message(&e)
                ));
            } else {
                run.step(format!(
                    "global table replica in {} requested",
                    opts.recovery_region
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            disaster = Instant::now();
            run.step("primary region lost");
            acked = canaries.stop().await;
            // The truth: the primary's last state (a replica may lag by its RPO, but
            // every item it holds must match and nothing older may be missing).
            expected = scan_all(&table).await?;
            recovered = Some(DynamoTable::new(recovery.clone(), &name));
            created.push((recovery.clone(), name.clone()));
        }
    }
    let store: Arc<dyn ProductStore> = match &recovered {
        Some(t) => Arc::new(t.clone()),
        None => Arc::new(DynamoTable::new(
            primary.clone(),
            &format!("{name}-not-recovered"),
        )),
    };
    let api = ApiState {
        store: store.clone(),
        backups: None,
        api_key: None,
    };
    if matches!(method, Method::PilotLight | Method::WarmStandby) {
        run.step(format!("API pointed at the replica in {}", opts.recovery_region));
    }
    let (rto, answered) = if recovered.is_some() {
        measure_rto(&mut run, &api, probe.as_ref(), disaster, opts.answer_timeout).await
    } else {
        run.step("nothing to serve: no recovered table");
        (disaster.elapsed(), false)
    };
    let actual = match &recovered {
        Some(t) => scan_all(t).await.unwrap_or_else(|e| {
            run.notes
                .push(format!("FAILED: reading the recovered table: {e}"));
            Vec::new()
        }),
        None => Vec::new(),
    };
    // For the replica methods, canaries written after the replica's last change are
    // the RPO, not a defect: compare only what the primary had up to the newest
    // canary the replica holds.
    let expected = if matches!(method, Method::PilotLight | Method::WarmStandby) {
        let newest = actual
            .iter()
            .filter(|p| p.product_category == "canary")
            .map(|p| p.updated_at_us)
            .max();
        expected
            .into_iter()
            .filter(|p| p.product_category != "canary" || newest.is_some_and(|n| p.updated_at_us <= n))
            .collect()
    } else {
        expected
    };
    let mut result = verdict(method, opts, run, rto, answered, &expected, &actual, &acked);
    if method == Method::Pitr && result.missing + result.extra + result.different > 0 && recovered.is_some() {
        result.notes.push(
            "FAILED: the restored table is not the table as it was at the restore time: the endpoint did not \
             restore to the requested instant (moto restores the current state)"
                .into(),
        );
        result.passed = false;
    }
    // Everything the drill created goes: tables in both regions and its backups.
    for (client, t) in created {
        drop_table(&client, &t).await;
    }
    for arn in backups_made {
        let _ = primary.delete_backup().backup_arn(arn).send().await;
    }
    Ok(result)
}

/// DynamoDB clients for the primary and the recovery region, from one SDK
/// configuration (endpoint and credentials from the standard AWS environment).
pub fn clients(config: &aws_config::SdkConfig, primary: &str, recovery: &str) -> (Client, Client) {
    let client = |region: &str| {
        Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(config)
                .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
                .build(),
        )
    };
    (client(primary), client(recovery))
}
