//! Everything that measures the auth service. Most of it drives real auth-service replicas (child
//! processes, so they can be `kill -9`ed) on real PostgreSQL and Redis with a mixed workload, and
//! checks on every answer what a user relies on: a revoked credential is never accepted, an
//! acknowledged rotation is never lost, errors during an outage are UNAVAILABLE (never OK for a
//! bad credential, never INTERNAL), and service resumes by itself.
//!
//! - [`cluster`]: the replicas, a private `redis-server`, the PostgreSQL schema of a run;
//! - [`proxy`]: a TCP proxy that can be cut, to take a connection away from one client;
//! - [`pool`]: the credentials the workload holds, and what it knows about each;
//! - [`workload`]: the operation mix, the auditor of revoked credentials, the final audit;
//! - [`stats`]: latency and status counts per phase, violations, the Markdown report;
//! - [`faults`] and [`soak`]: the reliability runs;
//! - [`bench`]: the load scenarios of BENCHMARKS.md against a running service;
//! - [`revocation`]: `revocation-bench`, how long a logout takes to reach a `LocalVerifier`
//!   (auth replicas in this process);
//!
//! `benches/micro.rs` holds the criterion micro-benchmarks. BENCHMARKS.md and RELIABILITY.md
//! have the commands and results; `bench/run.sh` reruns every measurement.

pub mod bench;
pub mod cluster;
pub mod deployment;
pub mod faults;
pub mod pool;
pub mod proxy;
pub mod revocation;
pub mod rng;
pub mod soak;
pub mod stats;
pub mod workload;

/// Any error that ends a run (as opposed to an answer the run records).
pub type RunError = Box<dyn std::error::Error + Send + Sync>;
