//! tandem-dr: disaster recovery for a product catalogue API.
//!
//! - [`product`]: the item, its validation and its content hash;
//! - [`store`]: the `ProductStore` trait every backend implements, and its
//!   behaviour suite;
//! - [`embedded`]: the default backend, a redb database file per table per "region"
//!   directory, with a change log that makes point-in-time restore exact;
//! - [`backup`]: on-demand and scheduled backups, point-in-time restore, copies to
//!   another region;
//! - [`api`]: the one `axum::Router` served locally and in Lambda;
//! - [`drill`]: the disaster-recovery drill, one driver over the embedded and the
//!   DynamoDB + AWS Backup backends;
//! - [`region`]: checked region names;
//! - [`serve`]: the API on a socket, with connection limits and timeouts;
//! - `standby` (feature `drill-aws`): the deployed standby region's switch, what
//!   `tandem dr failover` and `tandem dr failback` do.

pub mod api;
pub mod backup;
#[cfg(feature = "dynamodb")]
pub mod calls;
pub mod drill;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
pub mod product;
pub mod region;
pub mod replica;
pub mod serve;
#[cfg(feature = "drill-aws")]
pub mod standby;
pub mod store;
#[cfg(feature = "dynamodb")]
pub mod teardown;

pub use store::{Error, Result};
