//! Integration tests: one binary, modules per feature. Every test that needs the event
//! log starts its own throwaway nats-server (free port, temporary store).

mod builds;
mod data_keys;
mod erasure;
mod fixtures;
mod message_fixtures;
mod promises;
mod quarantine;
mod read_side;
mod replicas;
mod support;
mod write_path;
