//! The DynamoDB backend: table `Product`, partition key `product_id` (S), through
//! aws-sdk-dynamodb. Same behaviour as the embedded store (the suite in
//! [`crate::store::suite`] runs against both); backups, PITR and replicas are the
//! service's own.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};

use crate::product::Product;
use crate::store::{Error, Page, ProductStore, Result};

use tandem_sdk::ServiceError;

fn is_condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

/// A DynamoDB table of products.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

pub(crate) fn to_item(p: &Product) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("product_id".to_string(), AttributeValue::S(p.product_id.clone())),
        (
            "product_category".to_string(),
            AttributeValue::S(p.product_category.clone()),
        ),
        (
            "product_title".to_string(),
            AttributeValue::S(p.product_title.clone()),
        ),
        (
            "sum_rating".to_string(),
            AttributeValue::N(p.sum_rating.to_string()),
        ),
        (
            "count_rating".to_string(),
            AttributeValue::N(p.count_rating.to_string()),
        ),
        (
            "updated_at_us".to_string(),
            AttributeValue::N(p.updated_at_us.to_string()),
        ),
    ])
}

pub(crate) fn from_item(table: &str, item: &HashMap<String, AttributeValue>) -> Result<Product> {
    let s = |k: &str| {
        item.get(k).and_then(|v| v.as_s().ok()).cloned().ok_or_else(|| {
            Error::storage(
                format!("item in {table}"),
                format!("attribute {k} is missing or not a string"),
            )
        })
    };
    let n = |k: &str| -> Result<i64> {
        match item.get(k) {
            None => Ok(0),
            Some(v) => v.as_n().ok().and_then(|n| n.parse().ok()).ok_or_else(|| {
                Error::storage(
                    format!("item in {table}"),
                    format!("attribute {k} is not an integer"),
                )
            }),
        }
    };
    Ok(Product {
        product_id: s("product_id")?,
        product_category: s("product_category")?,
        product_title: s("product_title")?,
        sum_rating: n("sum_rating")?,
        count_rating: n("count_rating")?,
        updated_at_us: n("updated_at_us")?.max(0) as u64,
    })
}

impl DynamoTable {
    /// The table `table` through `client` (nothing is checked yet).
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_string(),
        }
    }

    /// Creates the table (on-demand billing, key `product_id`) and waits until it is
    /// active.
    pub async fn create(client: Client, table: &str) -> Result<Self> {
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("product_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| Error::storage("build table definition", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("product_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| Error::storage("build key schema", e))?,
            )
            .send()
            .await
            .map_err(|e| match e.as_service_error().and_then(|s| s.code()) {
                Some("ResourceInUseException") => Error::AlreadyExists(format!("table {table}")),
                _ => Error::storage(format!("create table {table}"), ServiceError::from(e)),
            })?;
        Ok(Self::new(client, table))
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("product_id".to_string(), AttributeValue::S(id.to_string()))])
    }
}

#[async_trait]
impl ProductStore for DynamoTable {
    async fn create(&self, item: &Product) -> Result<()> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(item)))
            .condition_expression("attribute_not_exists(product_id)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(Error::AlreadyExists(format!("product {}", item.product_id)))
            }
            Err(e) => Err(Error::storage(
                format!("put into {}", self.table),
                ServiceError::from(e),
            )),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Product>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::storage(format!("get from {}", self.table), ServiceError::from(e)))?;
        out.item().map(|i| from_item(&self.table, i)).transpose()
    }

    async fn update(&self, id: &str, category: &str, title: &str, now_us: u64) -> Result<Option<Product>> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression("SET product_category = :c, product_title = :t, updated_at_us = :u")
            .condition_expression("attribute_exists(product_id)")
            .expression_attribute_values(":c", AttributeValue::S(category.to_string()))
            .expression_attribute_values(":t", AttributeValue::S(title.to_string()))
            .expression_attribute_values(":u", AttributeValue::N(now_us.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => out.attributes().map(|a| from_item(&self.table, a)).transpose(),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(Error::storage(
                format!("update in {}", self.table),
                ServiceError::from(e),
            )),
        }
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::storage(format!("delete from {}", self.table), ServiceError::from(e)))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }

    async fn scan(&self, limit: usize, after: Option<&str>) -> Result<Page> {
        if limit == 0 {
            return Err(Error::InvalidInput("limit must be at least 1".into()));
        }
        // DynamoDB scans in hash order; collect pages until `limit` items, then
        // return them sorted with the last key as the cursor only when DynamoDB
        // has more.
        let mut items = Vec::new();
        let mut start = after.map(Self::key);
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .limit((limit - items.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| Error::storage(format!("scan {}", self.table), ServiceError::from(e)))?;
            for i in out.items() {
                items.push(from_item(&self.table, i)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() && items.len() < limit => start = Some(k.clone()),
                Some(k) if !k.is_empty() => {
                    let cursor = k.get("product_id").and_then(|v| v.as_s().ok()).cloned();
                    return Ok(Page {
                        items,
                        last_evaluated_key: cursor,
                    });
                }
                _ => {
                    return Ok(Page {
                        items,
                        last_evaluated_key: None,
                    });
                }
            }
        }
    }

    fn table_name(&self) -> String {
        self.table.clone()
    }
}

/// `POST /createBackup` on DynamoDB: `CreateBackup` of the API's table.
#[derive(Debug)]
pub struct DynamoBackupCreator {
    /// The API's table.
    pub table: DynamoTable,
}

#[async_trait]
impl crate::api::BackupCreator for DynamoBackupCreator {
    async fn create_backup(&self) -> Result<serde_json::Value> {
        let name = format!("{}-{}", self.table.name(), crate::embedded::unique());
        let out = self
            .table
            .client()
            .create_backup()
            .table_name(self.table.name())
            .backup_name(&name)
            .send()
            .await
            .map_err(|e| {
                Error::storage(
                    format!("create a backup of {}", self.table.name()),
                    ServiceError::from(e),
                )
            })?;
        let d = out
            .backup_details()
            .ok_or_else(|| Error::storage("create backup", "the service returned no backup details"))?;
        Ok(serde_json::json!({
            "BackupArn": d.backup_arn(),
            "BackupName": d.backup_name(),
            "BackupStatus": d.backup_status().as_str(),
            "BackupType": d.backup_type().as_str(),
            "BackupSizeBytes": d.backup_size_bytes(),
            "TableName": self.table.name(),
        }))
    }
}
