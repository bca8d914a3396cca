//! stagehand's engine: plans a job from its spec and workspace, stages its data through
//! the `Store` seam, runs it through the `Runner` seam, uploads its outputs, and reports
//! events. The `stagehand` binary (main.rs) is a thin command line over this.

pub mod cache;
pub mod commands;
pub mod console;
pub mod credentials;
pub mod digest;
pub mod events;
pub mod exit;
pub mod lifecycle;
pub mod linux;
pub mod metrics;
pub mod mount;
pub mod outcome;
pub mod owner;
pub mod partial;
pub mod plan;
pub mod progress_bar;
pub mod redact;
pub mod retry;
pub mod run;
pub mod settings;
pub mod signals;
pub mod store;
pub mod transfer;
