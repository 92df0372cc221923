//! Analytics: the scan event model and (as the scan-recording work lands) its
//! storage backends and queries.
//!
//! Today it holds the scan id: the identifier each scan gets at redirect time,
//! which travels to the destination as `cl_scan` and later names the scan in a
//! conversion.

pub mod classify;
pub mod scan_id;

pub use scan_id::{ScanId, ScanIdGenerator};
pub mod batch;
pub mod enrich;
pub mod event;
pub mod ledger;
pub mod query;
pub mod recorder;
pub mod sink;
pub mod spool;
pub mod stats;
pub mod token;
