//! Analytics: scans and conversions from capture to storage, and every number
//! read back from them.
//!
//! The front door is [`Analytics`], opened from one [`Config`]: it wires the
//! backends (embedded, Redis, ClickHouse), runs the recorder, the conversion
//! sequence and the queries. The gateway holds one `Analytics` and knows none
//! of the modules behind it.

pub mod batch;
pub mod classify;
mod codec;
pub mod config;
pub mod conversions;
pub mod enrich;
mod error;
pub mod event;
pub mod export;
pub mod fraud;
pub mod histogram;
pub mod ip_ranges;
pub mod ledger;
pub mod migration;
pub mod query;
pub mod recorder;
pub mod records;
pub mod redis_conn;
pub mod redis_keys;
pub mod review;
pub mod rollup;
pub mod scan_id;
mod service;
pub mod sink;
pub mod sketch;
pub mod spool;
pub mod stats;
pub mod token;
pub mod webhooks;

pub use codelink_shared::text::Text;
pub use config::Config;
pub use error::Error;
pub use scan_id::{ScanId, ScanIdGenerator};
pub use service::{Analytics, AnalyticsTasks, Erasure, Pruned};
pub use sink::Subject;
