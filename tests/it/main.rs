//! Integration tests: one test binary, one module per concern.

mod audit_rules;
mod beside_audits;
mod bulk_input;
mod cli;
mod crash;
mod derived_state;
mod docs;
mod domain_rules;
mod group_commit;
mod hostile;
mod http;
mod lock;
mod monitor;
mod origins;
mod pages;
mod parquet;
mod readers;
mod readme;
mod recovery;
mod registry_rejections;
mod reports;
mod retries;
mod support;
mod tiles;
mod witnesses;
mod worlds;
