//! `loadgen faults` and `loadgen soak`: see RELIABILITY.md.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use loadtest::{
    RunError, bench,
    deployment::{Deployment, DeploymentConfig},
    faults::{self, FaultPlan},
    soak,
    workload::WorkloadConfig,
};

// The load generator shares the cores with the service: spend as little of them as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load, faults and soak against real auth-service replicas")]
struct Cli {
    #[command(subcommand)]
    run: Run,
}

#[derive(Subcommand)]
enum Run {
    /// Inject faults one after another under load and check that nothing is lost.
    Faults {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Load without faults before, between and after the faults.
        #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
        steady: Duration,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        redis_down: Duration,
        /// Shell command that restarts the PostgreSQL server; "auto" finds the local cluster's
        /// pg_ctlcluster command, "none" skips the fault.
        #[arg(long, default_value = "auto")]
        postgres_restart: String,
        /// Rounds of kill -9 (after a revocation, then after a rotation).
        #[arg(long, default_value_t = 2)]
        kills: usize,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        feed_cut: Duration,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        recovery_limit: Duration,
    },
    /// Load scenarios against a running service (BENCHMARKS.md); one row per scenario.
    Bench {
        /// The auth service, e.g. http://127.0.0.1:50051 (started with
        /// AUTH_LOGIN_RATE_PER_ADDRESS=0 and AUTH_REFRESH_RATE_PER_ADDRESS=0: every call comes
        /// from one address).
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        target: String,
        /// Scenarios to run, in order (default: all).
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Distinct access tokens for the warm scenarios.
        #[arg(long, default_value_t = 10_000)]
        tokens: usize,
        /// Unseen access tokens minted for verify-cold (must exceed what it sends).
        #[arg(long, default_value_t = 60_000)]
        cold_tokens: usize,
        /// Append each row as a JSON line to this file (for bench/chart.py).
        #[arg(long)]
        json: Option<PathBuf>,
        /// A label for the JSON lines (e.g. "sqlite", "postgres+redis").
        #[arg(long, default_value = "")]
        label: String,
        /// order-service, for the `order` scenario.
        #[arg(long)]
        order_target: Option<String>,
        /// The service's process id: each row then also gives the service's CPU time per call
        /// (from /proc), the load generator's own cost left out.
        #[arg(long)]
        service_pid: Option<u32>,
        /// An account with the admin role (`auth-service user create --role admin`), logged into
        /// for a management session: the `service-token` and `exchange` scenarios create
        /// service clients with it.
        #[arg(long)]
        admin_email: Option<String>,
        /// Its password (the users' password of the run when unset).
        #[arg(long, env = "LOADGEN_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// Service clients to create for `service-token` and `exchange`.
        #[arg(long, default_value_t = 100)]
        service_clients: usize,
    },
    /// Write gRPC-framed Verify requests (one access token, one session token) for h2load.
    H2loadBodies {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        target: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revocation propagation across processes: Logout on replica B until this process's
    /// LocalVerifier (fed by replica A) refuses the token; no other load.
    Propagation {
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Revocations to time, one at a time.
        #[arg(long, default_value_t = 300)]
        count: usize,
    },
    /// Run the mixed workload for a long time; one report row per interval.
    Soak {
        #[command(flatten)]
        deployment: DeploymentArgs,
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
}

#[derive(Args)]
struct DeploymentArgs {
    /// The auth-service binary; by default the one next to this binary.
    #[arg(long)]
    auth_service: Option<PathBuf>,
    /// PostgreSQL base URL; each run creates and drops its own schema.
    #[arg(long, env = "TEST_DATABASE_URL")]
    postgres: String,
    /// The redis-server binary: the run starts (and kills) a private one on a free port.
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Credentials held before the load starts.
    #[arg(long, default_value_t = 300)]
    sessions: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Operations per second over all workers (0: closed loop, as fast as answers come).
    #[arg(long, default_value_t = 400)]
    rate: u32,
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// The LocalVerifier's max_feed_outage.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    max_feed_outage: Duration,
    /// How long after an acknowledged revocation the LocalVerifier may still accept a token.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    local_bound: Duration,
    /// Keep the replicas' and Redis's logs here.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl DeploymentArgs {
    fn config(&self) -> Result<DeploymentConfig, RunError> {
        let auth_service_binary = match &self.auth_service {
            Some(path) => path.clone(),
            None => std::env::current_exe()?
                .parent()
                .ok_or("the binary has no directory")?
                .join("auth-service"),
        };
        if !auth_service_binary.exists() {
            return Err(format!(
                "{} not found: build it first (cargo build --release -p auth-service -p loadtest)",
                auth_service_binary.display()
            )
            .into());
        }
        Ok(DeploymentConfig {
            auth_service_binary,
            postgres_url: self.postgres.clone(),
            redis_server_binary: self.redis_server.clone(),
            replicas: self.replicas,
            users: self.users,
            sessions: self.sessions,
            max_feed_outage: self.max_feed_outage,
            workload: WorkloadConfig {
                concurrency: self.concurrency,
                rate: self.rate,
                deadline: self.deadline,
                local_bound: self.local_bound,
                ..WorkloadConfig::default()
            },
            log_dir: self.log_dir.clone(),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when the run completed and found a violation or an unexpected outcome.
async fn run(cli: Cli) -> Result<bool, RunError> {
    let (args, mut deployment, result) = match cli.run {
        Run::Propagation {
            deployment: args,
            count,
        } => {
            let mut config = args.config()?;
            config.sessions = 1;
            let deployment = Deployment::start(&config).await?;
            let samples = faults::propagation(&deployment, count).await;
            deployment.finish().await?;
            let samples = samples?;
            if samples.is_empty() {
                return Err("no revocation was timed (--count 0)".into());
            }
            let at = |q: f64| {
                samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
            };
            let report = format!(
                "| interval | count | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n\
                 | Logout sent to replica B -> LocalVerifier in another process (fed by replica A) refuses | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                samples.len(),
                at(0.5),
                at(0.9),
                at(0.99),
                at(1.0)
            );
            println!("{report}");
            if let Some(path) = &args.report {
                std::fs::write(path, &report)?;
            }
            return Ok(true);
        }
        Run::H2loadBodies { target, dir } => {
            let config = bench::BenchConfig::minimal(target, WorkloadConfig::default().password);
            bench::write_h2load_bodies(&config, &dir).await?;
            return Ok(true);
        }
        Run::Bench {
            target,
            scenarios,
            connections,
            concurrency,
            duration,
            warmup,
            users,
            tokens,
            cold_tokens,
            json,
            label,
            order_target,
            service_pid,
            admin_email,
            admin_password,
            service_clients,
        } => {
            let password = WorkloadConfig::default().password;
            let config = bench::BenchConfig {
                target,
                connections,
                concurrency,
                duration,
                warmup,
                users,
                tokens,
                admin_password: admin_password.unwrap_or_else(|| password.clone()),
                password,
                order_target,
                service_pid,
                admin_email,
                service_clients,
            };
            let scenarios = if scenarios.is_empty() {
                bench::SCENARIOS
                    .iter()
                    .map(|name| (*name).to_owned())
                    .collect()
            } else {
                scenarios
            };
            println!("{}", bench::BenchRow::markdown_header());
            let rows = bench::run(&config, &scenarios, cold_tokens).await?;
            if let Some(path) = json {
                use std::io::Write as _;
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                for row in &rows {
                    let line = row.json();
                    writeln!(file, "{{\"label\":{label:?},{}", &line[1..])?;
                }
            }
            // Correctness only: every scenario must have answered, and only as expected.
            let clean = rows
                .iter()
                .all(|row| row.ok() > 0 && row.errors() == shed(row));
            return Ok(clean);
        }
        Run::Faults {
            deployment: args,
            steady,
            redis_down,
            postgres_restart,
            kills,
            feed_cut,
            recovery_limit,
        } => {
            if args.replicas < 2 {
                return Err("the fault run needs at least two replicas".into());
            }
            let postgres_restart = match postgres_restart.as_str() {
                "auto" => faults::detect_postgres_restart(),
                "none" | "" => None,
                command => Some(command.to_owned()),
            };
            let plan = FaultPlan {
                steady,
                redis_down,
                postgres_restart,
                kills,
                feed_cut,
                recovery_limit,
            };
            let mut deployment = start(&args).await?;
            let result = faults::run(&mut deployment, &plan).await;
            (args, deployment, result)
        }
        Run::Soak {
            deployment: args,
            duration,
            interval,
        } => {
            let mut deployment = start(&args).await?;
            soak::run(&deployment, duration, interval).await;
            let _ = &mut deployment;
            (args, deployment, Ok(()))
        }
    };
    deployment.stop_load().await;
    deployment
        .recorder
        .begin_phase("final audit (load stopped)", false);
    deployment.workload.final_audit().await;
    let report = deployment.recorder.report();
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report)?;
    }
    let clean = deployment.recorder.violations() == 0 && deployment.recorder.unexpected() == 0;
    let log_dir = deployment.log_dir.clone();
    deployment.finish().await?;
    result?;
    if !clean {
        eprintln!(
            "loadgen: the run failed; the replicas' logs are in {}",
            log_dir.display()
        );
    }
    Ok(clean)
}

/// Calls a scenario may fail by design: shed logins.
fn shed(row: &bench::BenchRow) -> u64 {
    row.outcomes
        .iter()
        .filter(|(label, _)| label.starts_with("RESOURCE_EXHAUSTED OVERLOADED"))
        .map(|(_, count)| count)
        .sum()
}

async fn start(args: &DeploymentArgs) -> Result<Deployment, RunError> {
    let config = args.config()?;
    println!(
        "starting {} replicas, Redis, {} users, {} credentials...",
        config.replicas, config.users, config.sessions
    );
    let mut deployment = Deployment::start(&config).await?;
    println!(
        "load: {} workers at {} ops/s",
        config.workload.concurrency, config.workload.rate
    );
    deployment.start_load();
    Ok(deployment)
}
