//! The `feature_store` sink: features per entity, offline in a Parquet dataset that
//! Feast's `FileSource` reads as it is, online in Redis.
//!
//! - [`config`]: the YAML block and its checks against the plan.
//! - [`offline`]: Hive-partitioned Parquet (`date=YYYY-MM-DD/epoch-<n>.parquet`),
//!   one file per date per epoch, written to a temp name and renamed at the barrier;
//!   a replay rewrites the same names, a rollback removes later epochs.
//! - [`online`]: one Redis hash per entity key, written with a server-side
//!   compare-and-set on the event timestamp, so an older event never overwrites a
//!   newer one. A `delete` row removes the entity (in Feast's layout, the view's
//!   fields of it).
//! - [`feast_layout`]: Feast's Redis keys, field names and value protos, so
//!   Feast's `get_online_features` reads what the sink wrote.
//! - [`feast`]: writes a Feast feature repo (`feature_store.yaml` and a Python file
//!   with the Entity, FileSource and FeatureView) that matches the schema.

pub mod config;
pub mod feast;
pub mod feast_layout;
pub mod offline;
pub mod online;
pub mod sink;

pub use config::FeatureStoreSinkConfig;
