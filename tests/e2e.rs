//! The end-to-end tests: one binary that drives the built `stagehand` the way a
//! scheduler does (files in, exit code and events out), against real Azurite, Docker and
//! FUSE. One binary rather than one per file, so `common` is compiled once and every test
//! is found with `cargo test --test e2e <filter>` (as ripgrep's tests/tests.rs).
//!
//! A new area of tests is a file beside this one, declared here as a `mod`; it reaches
//! the helpers through `crate::common`. Without a service its tests fail in CI
//! (`CI=true`) and return early elsewhere.

mod common;

mod aml;
mod aml_data;
mod aml_env;
mod aml_examples;
mod aml_runconfig;
mod architecture;
mod azure_file;
mod blob;
mod blob_identity;
mod cache_warm;
mod cli_text;
mod container;
mod deploy;
mod distributed_container;
mod fault_trials;
mod hub_inputs;
mod lifecycle;
mod metrics;
mod mount;
mod mount_azure;
mod node_cache;
mod orphans;
mod package;
mod postgres;
mod restore_outputs;
mod resume;
mod s3;
mod slurm;
mod slurm_resources;
mod store_conformance;
mod sync_outputs;
mod unwritable_output;
mod user_errors;
mod web_inputs;
