//! tandem-core: the array pipeline as a library.
//!
//! Everything a run needs lives here, shaped so that the same code serves a laptop,
//! an EFS volume shared by 10,000 AWS Batch children, and the tests:
//!
//! - [`plan`]: how `N` IDs are split across at most 10,000 array children;
//! - [`workload`]: the reference workload (record generation, processing, the exact
//!   answer), pure functions over slices and `RecordBatch`es;
//! - [`ids`]: the one ID file per run (Arrow IPC), mapped and sliced without copying;
//! - [`exchange`]: the Parquet files stages hand each other, with the child's
//!   completion record in the footer;
//! - [`layout`] and [`manifest`]: where a run lives on the shared volume;
//! - [`store`]: the object store egress writes to (`file://` directory here);
//! - [`stage`]: one child of one stage, exactly as `tandem worker` runs it;
//! - [`executor`]: the local N_TO_N executor with AWS Batch semantics;
//! - [`verify`] and [`report`]: the independent check of a run and its timing report.
//!
//! The library has no async runtime and no AWS SDK: I/O sits behind small traits
//! at the edges so that cloud backends can be added without touching the stages.

pub mod cost;
pub mod error;
pub mod exchange;
pub mod executor;
pub mod guard;
pub mod ids;
pub mod index_map;
pub mod layout;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod prepare;
pub mod report;
pub mod stage;
pub mod store;
pub mod time;
pub mod verify;
pub mod workload;

pub use error::{Error, Result};
