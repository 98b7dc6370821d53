//! DynamoDB's operations on the simulated account.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::{
    batch_get_item::BatchGetItemOutput, batch_write_item::BatchWriteItemOutput,
    create_backup::CreateBackupOutput, create_table::CreateTableOutput, delete_backup::DeleteBackupOutput,
    delete_item::DeleteItemOutput, delete_table::DeleteTableOutput, describe_backup::DescribeBackupOutput,
    describe_continuous_backups::DescribeContinuousBackupsOutput, describe_table::DescribeTableOutput,
    get_item::GetItemOutput, put_item::PutItemOutput,
    restore_table_from_backup::RestoreTableFromBackupOutput,
    restore_table_to_point_in_time::RestoreTableToPointInTimeOutput, scan::ScanOutput,
    update_continuous_backups::UpdateContinuousBackupsOutput, update_item::UpdateItemOutput,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, BackupDescription, BackupDetails, BackupStatus, BackupType, ContinuousBackupsDescription,
    ContinuousBackupsStatus, PointInTimeRecoveryDescription, PointInTimeRecoveryStatus, ReplicaDescription,
    ReplicaStatus, TableDescription, TableStatus, WriteRequest,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::account::{Account, Refusal, refuse};
use super::{FakeAws, Rules, date, json_error, retries};
use crate::dynamodb::{from_item, to_item};
use crate::product::Product;

fn err(r: &Refusal) -> HttpResponse {
    json_error("com.amazonaws.dynamodb.v20120810", r)
}

fn key_id(key: Option<&HashMap<String, AttributeValue>>) -> String {
    key.and_then(|k| k.get("product_id"))
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// The items of table `name` a read in `region` sees at `now`: all of them for a
/// scan (`ids` None), else the keys `ids` only.
fn view(
    a: &Account,
    region: &str,
    name: &str,
    ids: Option<&[&str]>,
    now: u64,
) -> Result<std::collections::BTreeMap<String, Product>, Refusal> {
    let v = match ids {
        None => a.view(region, name, now),
        Some(ids) => a.view_of(region, name, ids, now),
    };
    match v {
        Some(v) => Ok(v),
        None => refuse("ResourceNotFoundException", "Requested resource not found"),
    }
}

fn pitr_description(window: Option<(u64, u64)>) -> ContinuousBackupsDescription {
    let mut pitr = PointInTimeRecoveryDescription::builder();
    pitr = match window {
        Some((lo, hi)) => pitr
            .point_in_time_recovery_status(PointInTimeRecoveryStatus::Enabled)
            .earliest_restorable_date_time(date(lo))
            .latest_restorable_date_time(date(hi)),
        None => pitr.point_in_time_recovery_status(PointInTimeRecoveryStatus::Disabled),
    };
    ContinuousBackupsDescription::builder()
        .continuous_backups_status(ContinuousBackupsStatus::Enabled)
        .point_in_time_recovery_description(pitr.build())
        .build()
        .unwrap_or_else(|_| unreachable!())
}

fn backup_details(arn: &str, status: BackupStatus, created: u64) -> BackupDetails {
    BackupDetails::builder()
        .backup_arn(arn)
        .backup_name("drill")
        .backup_status(status)
        .backup_type(BackupType::User)
        .backup_creation_date_time(date(created))
        .build()
        .unwrap_or_else(|_| unreachable!())
}

impl FakeAws {
    /// A DynamoDB client of the account in `region`, recording its calls as
    /// `component`'s.
    pub(super) fn dynamodb_client(&self, region: &str, component: &str) -> Client {
        let mut rules = Rules::new(self, region, err);
        rules.answer(mock!(Client::create_table), |a, now, region, req| {
            a.create_table(region, req.table_name().unwrap_or_default(), now)
                .map(|()| CreateTableOutput::builder().build())
        });
        rules.answer(mock!(Client::describe_table), |a, now, region, req| {
            let name = req.table_name().unwrap_or_default();
            match (a.status(region, name, now), a.table(region, name)) {
                (Some(status), Some(t)) => {
                    let replicas = std::iter::once(region.clone())
                        .chain(t.replicas.iter().cloned())
                        .map(|r| {
                            ReplicaDescription::builder()
                                .region_name(r)
                                .replica_status(ReplicaStatus::Active)
                                .build()
                        })
                        .collect();
                    Ok(DescribeTableOutput::builder()
                        .table(
                            TableDescription::builder()
                                .table_name(name)
                                .table_arn(Account::table_arn(region, name))
                                .table_status(TableStatus::from(status))
                                .set_replicas(Some(replicas))
                                .build(),
                        )
                        .build())
                }
                _ => refuse(
                    "ResourceNotFoundException",
                    format!("Requested resource not found: Table: {name} not found"),
                ),
            }
        });
        rules.answer(mock!(Client::delete_table), |a, now, region, req| {
            a.delete_table(region, req.table_name().unwrap_or_default(), now)
                .map(|()| DeleteTableOutput::builder().build())
        });
        rules.answer(mock!(Client::update_continuous_backups), |a, now, region, req| {
            let name = req.table_name().unwrap_or_default();
            let on = req
                .point_in_time_recovery_specification()
                .is_some_and(|s| s.point_in_time_recovery_enabled());
            let period = req
                .point_in_time_recovery_specification()
                .and_then(|s| s.recovery_period_in_days());
            if period.is_some_and(|d| !(1..=35).contains(&d)) {
                return super::account::refuse(
                    "ValidationException",
                    format!("RecoveryPeriodInDays {period:?} must be from 1 to 35"),
                );
            }
            if on {
                let r = a.enable_pitr(region, name, now);
                if r.is_ok() {
                    a.pitr_periods.push((name.to_string(), period));
                }
                r
            } else {
                a.disable_pitr(region, name)
            }
            .and_then(|()| a.pitr_window(region, name, now))
            .map(|w| {
                UpdateContinuousBackupsOutput::builder()
                    .continuous_backups_description(pitr_description(w))
                    .build()
            })
        });
        rules.answer(
            mock!(Client::describe_continuous_backups),
            |a, now, region, req| {
                a.pitr_window(region, req.table_name().unwrap_or_default(), now)
                    .map(|w| {
                        DescribeContinuousBackupsOutput::builder()
                            .continuous_backups_description(pitr_description(w))
                            .build()
                    })
            },
        );
        rules.answer(
            mock!(Client::restore_table_to_point_in_time),
            |a, now, region, req| {
                let at = req
                    .restore_date_time()
                    .map(|d| (d.as_secs_f64() * 1e6) as u64)
                    .unwrap_or(0);
                a.restore_to_time(
                    region,
                    req.source_table_name().unwrap_or_default(),
                    req.target_table_name().unwrap_or_default(),
                    at,
                    now,
                )
                .map(|()| RestoreTableToPointInTimeOutput::builder().build())
            },
        );
        rules.answer(mock!(Client::put_item), |a, now, region, req| {
            let name = req.table_name().unwrap_or_default();
            match from_item(name, req.item().unwrap_or(&HashMap::new())) {
                Err(_) => refuse("ValidationException", "bad item"),
                Ok(p) => view(a, region, name, Some(&[p.product_id.as_str()]), now).and_then(|v| {
                    if v.contains_key(&p.product_id) && req.condition_expression().is_some() {
                        return refuse(
                            "ConditionalCheckFailedException",
                            "The conditional request failed",
                        );
                    }
                    let id = p.product_id.clone();
                    a.write(region, name, &id, Some(p), now)
                        .map(|()| PutItemOutput::builder().build())
                }),
            }
        });
        rules.answer(mock!(Client::batch_write_item), |a, now, region, req| {
            let throttle = a.throttled();
            let mut unprocessed: HashMap<String, Vec<WriteRequest>> = HashMap::new();
            let mut result = Ok(());
            for (name, writes) in req.request_items().cloned().unwrap_or_default() {
                let half = writes.len() / 2;
                for (i, w) in writes.into_iter().enumerate() {
                    if throttle && i >= half {
                        unprocessed.entry(name.clone()).or_default().push(w);
                        continue;
                    }
                    let Some(put) = w.put_request() else { continue };
                    match from_item(&name, put.item()) {
                        Ok(p) => {
                            let id = p.product_id.clone();
                            result = result.and(a.write(region, &name, &id, Some(p), now));
                        }
                        Err(_) => result = refuse("ValidationException", "bad item"),
                    }
                }
            }
            result.map(|()| {
                BatchWriteItemOutput::builder()
                    .set_unprocessed_items((!unprocessed.is_empty()).then_some(unprocessed))
                    .build()
            })
        });
        rules.answer(mock!(Client::get_item), |a, now, region, req| {
            let id = key_id(req.key());
            view(
                a,
                region,
                req.table_name().unwrap_or_default(),
                Some(&[id.as_str()]),
                now,
            )
            .map(|v| GetItemOutput::builder().set_item(v.get(&id).map(to_item)).build())
        });
        rules.answer(mock!(Client::batch_get_item), |a, now, region, req| {
            let mut responses = HashMap::new();
            let mut result = Ok(());
            for (name, keys) in req.request_items().cloned().unwrap_or_default() {
                let ids: Vec<String> = keys.keys().iter().map(|k| key_id(Some(k))).collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                match view(a, region, &name, Some(&ids), now) {
                    Ok(v) => {
                        let items = keys
                            .keys()
                            .iter()
                            .filter_map(|k| v.get(&key_id(Some(k))).map(to_item))
                            .collect::<Vec<_>>();
                        responses.insert(name, items);
                    }
                    Err(e) => result = Err(e),
                }
            }
            result.map(|()| {
                BatchGetItemOutput::builder()
                    .set_responses(Some(responses))
                    .build()
            })
        });
        rules.answer(mock!(Client::update_item), |a, now, region, req| {
            let name = req.table_name().unwrap_or_default();
            let id = key_id(req.key());
            view(a, region, name, Some(&[id.as_str()]), now).and_then(|v| {
                let Some(mut p) = v.get(&id).cloned() else {
                    return refuse(
                        "ConditionalCheckFailedException",
                        "The conditional request failed",
                    );
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
                a.write(region, name, &id, Some(p), now)
                    .map(|()| UpdateItemOutput::builder().set_attributes(Some(out)).build())
            })
        });
        rules.answer(mock!(Client::delete_item), |a, now, region, req| {
            let name = req.table_name().unwrap_or_default();
            let id = key_id(req.key());
            view(a, region, name, Some(&[id.as_str()]), now).and_then(|v| {
                let old = v.get(&id).map(to_item);
                if old.is_some() {
                    a.write(region, name, &id, None, now)?;
                }
                Ok(DeleteItemOutput::builder().set_attributes(old).build())
            })
        });
        rules.answer(mock!(Client::scan), |a, now, region, req| {
            let after = key_id(req.exclusive_start_key());
            let limit = req.limit().unwrap_or(1000).max(1) as usize;
            view(a, region, req.table_name().unwrap_or_default(), None, now).map(|v| {
                let mut items: Vec<&Product> = v
                    .values()
                    .filter(|p| after.is_empty() || p.product_id > after)
                    .collect();
                let more = items.len() > limit;
                items.truncate(limit);
                let last = more.then(|| {
                    HashMap::from([(
                        "product_id".to_string(),
                        AttributeValue::S(items.last().map(|p| p.product_id.clone()).unwrap_or_default()),
                    )])
                });
                ScanOutput::builder()
                    .set_items(Some(items.into_iter().map(to_item).collect()))
                    .set_last_evaluated_key(last)
                    .build()
            })
        });
        rules.answer(mock!(Client::create_backup), |a, now, region, req| {
            a.create_backup(region, req.table_name().unwrap_or_default(), now)
                .map(|arn| {
                    CreateBackupOutput::builder()
                        .backup_details(backup_details(&arn, BackupStatus::Creating, now))
                        .build()
                })
        });
        rules.answer(mock!(Client::describe_backup), |a, now, _region, req| {
            let arn = req.backup_arn().unwrap_or_default();
            match a.backups.get(arn) {
                None => refuse("BackupNotFoundException", format!("Backup not found: {arn}")),
                Some(b) => {
                    let status = if now < b.available_us {
                        BackupStatus::Creating
                    } else {
                        BackupStatus::Available
                    };
                    Ok(DescribeBackupOutput::builder()
                        .backup_description(
                            BackupDescription::builder()
                                .backup_details(backup_details(arn, status, b.requested_us))
                                .build(),
                        )
                        .build())
                }
            }
        });
        rules.answer(mock!(Client::delete_backup), |a, now, _region, req| {
            a.delete_backup(req.backup_arn().unwrap_or_default(), now)
                .map(|()| DeleteBackupOutput::builder().build())
        });
        rules.answer(mock!(Client::restore_table_from_backup), |a, now, region, req| {
            a.restore_backup(
                region,
                req.backup_arn().unwrap_or_default(),
                req.target_table_name().unwrap_or_default(),
                now,
            )
            .map(|()| RestoreTableFromBackupOutput::builder().build())
        });
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &rules.done(), |c| c
            .interceptor(self.recorder(component, crate::calls::dynamodb))
            .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_dynamodb)))
    }
}
