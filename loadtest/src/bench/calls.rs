//! The calls each scenario repeats: [`Clients`] (the connections callers share) and one builder
//! per scenario that returns `call(caller, iteration)` for the loops in `measure`. A builder picks
//! which token or user a call uses so that callers spread over many credentials; it does no
//! timing and no counting.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use auth_api::v1::{self as pb, CredentialKind, auth_service_client::AuthServiceClient};
use tonic::{Status, transport::Channel};

use super::{BenchConfig, Credentials};
use crate::{RunError, cluster::lazy_channel, rng::mix};

/// The callers' connections to the target.
pub struct Clients {
    channels: Vec<Channel>,
}

impl Clients {
    pub fn connect(target: &str, connections: usize) -> Result<Self, RunError> {
        let channels = (0..connections.max(1))
            .map(|_| lazy_channel(target))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { channels })
    }

    pub fn auth(&self, caller: usize) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channels[caller % self.channels.len()].clone())
    }

    pub fn channel(&self, caller: usize) -> Channel {
        self.channels[caller % self.channels.len()].clone()
    }

    pub fn connections(&self) -> usize {
        self.channels.len()
    }
}

pub(super) type Call = std::pin::Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// Which of `len` items a caller uses at an iteration: callers walk them from different offsets.
pub(super) fn pick_index(len: usize, caller: usize, iteration: u64) -> usize {
    let index = (caller.wrapping_mul(7919) as u64).wrapping_add(iteration) as usize;
    index % len.max(1)
}

/// The token a caller presents at an iteration.
fn pick_token(tokens: &[String], caller: usize, iteration: u64) -> String {
    tokens
        .get(pick_index(tokens.len(), caller, iteration))
        .cloned()
        .unwrap_or_default()
}

pub(super) fn health_call(
    clients: &Clients,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| HealthClient::new(clients.channel(index)))
        .collect();
    move |caller, _| {
        let mut client = clients[caller % clients.len()].clone();
        Box::pin(async move {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

pub fn verify_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let token = pick_token(&tokens, caller, iteration);
        Box::pin(async move {
            client
                .verify(pb::VerifyRequest {
                    token,
                    audience: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

/// Every call presents a token the service has not seen; when they run out, `exhausted` turns
/// true and the scenario ends there.
pub fn cold_verify_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
    exhausted: Arc<AtomicBool>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    move |caller, _| {
        let mut client = clients[caller % clients.len()].clone();
        let index = next.fetch_add(1, Ordering::Relaxed);
        let token = tokens.get(index).cloned();
        let exhausted = Arc::clone(&exhausted);
        Box::pin(async move {
            let Some(token) = token else {
                exhausted.store(true, Ordering::Relaxed);
                return Ok(());
            };
            client
                .verify(pb::VerifyRequest {
                    token,
                    audience: String::new(),
                })
                .await
                .map(|_| ())
        })
    }
}

pub(super) fn refresh_call(
    clients: &Clients,
    credentials: &Credentials,
    callers: usize,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let chains = Arc::clone(&credentials.chains);
    let callers = callers.max(1);
    let per_caller = (chains.len() / callers).max(1);
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let chains = Arc::clone(&chains);
        Box::pin(async move {
            // Caller c owns chains c, c + callers, c + 2 callers...: with at least as many
            // chains (users) as callers, no two callers ever spend the same chain.
            let index = caller + (iteration as usize % per_caller) * callers;
            match chains.refresh(index, &mut client).await {
                Some(outcome) => outcome.map(|_| ()),
                None => Err(Status::aborted("chain busy or retired")),
            }
        })
    }
}

pub(super) fn login_call(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let emails = Arc::new(credentials.emails.clone());
    let password = config.password.clone();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let email = emails
            .get(mix((caller as u64) << 32 ^ iteration) as usize % emails.len().max(1))
            .cloned()
            .unwrap_or_default();
        let password = password.clone();
        Box::pin(async move {
            client
                .login(pb::LoginRequest {
                    email,
                    password,
                    kind: CredentialKind::Tokens as i32,
                    management: false,
                })
                .await
                .map(|_| ())
        })
    }
}

pub(super) fn mixed_call(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    let login = login_call(clients, config, credentials);
    let refresh = refresh_call(clients, credentials, config.concurrency);
    let mut tokens = credentials.access_tokens.clone();
    tokens.extend(credentials.session_tokens.iter().cloned());
    let verify = verify_call(clients, Arc::new(tokens));
    move |caller, iteration| match mix((caller as u64) << 32 ^ iteration ^ 0x5eed) % 1000 {
        0..10 => login(caller, iteration),
        10..110 => refresh(caller, iteration),
        _ => verify(caller, iteration),
    }
}

/// The mixed scenario for an open loop: `call(i)` names its operation, and a refresh takes
/// whichever chain is free (arrivals do not own chains as closed-loop callers do).
pub(super) fn mixed_open_call(
    clients: &Clients,
    config: &BenchConfig,
    credentials: &Credentials,
) -> impl Fn(u64) -> (&'static str, Call) + Send + Sync + 'static {
    let login = login_call(clients, config, credentials);
    let auth: Vec<_> = (0..clients.channels.len())
        .map(|index| clients.auth(index))
        .collect();
    let chains = Arc::clone(&credentials.chains);
    let next_chain = Arc::new(AtomicUsize::new(0));
    let mut tokens = credentials.access_tokens.clone();
    tokens.extend(credentials.session_tokens.iter().cloned());
    let verify = verify_call(clients, Arc::new(tokens));
    move |index| {
        let caller = index as usize;
        match mix(index ^ 0x5eed) % 1000 {
            0..10 => ("login", login(caller, index)),
            10..110 => {
                let mut client = auth[caller % auth.len()].clone();
                let (chains, next_chain) = (Arc::clone(&chains), Arc::clone(&next_chain));
                let call: Call = Box::pin(async move {
                    // The next chain not in flight (or retired). When every chain is in flight
                    // (a slow moment with few users), wait for one rather than fail a call the
                    // service never saw: the wait counts in the latency, which runs from when
                    // the call was due.
                    let give_up = tokio::time::Instant::now() + CHAIN_WAIT;
                    loop {
                        for _ in 0..chains.len() {
                            let chain = next_chain.fetch_add(1, Ordering::Relaxed);
                            if let Some(outcome) = chains.refresh(chain, &mut client).await {
                                return outcome.map(|_| ());
                            }
                        }
                        if tokio::time::Instant::now() >= give_up {
                            return Err(Status::aborted("no free refresh chain"));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                });
                ("refresh", call)
            }
            _ => ("verify", verify(caller, index)),
        }
    }
}

/// How long an open-loop refresh waits for a chain when every chain is in flight.
const CHAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn order_call(
    clients: &Clients,
    tokens: Arc<Vec<String>>,
) -> impl Fn(usize, u64) -> Call + Send + Sync + 'static {
    use demo_services::v1::{PlaceOrderRequest, order_service_client::OrderServiceClient};
    let clients: Vec<_> = (0..clients.channels.len())
        .map(|index| OrderServiceClient::new(clients.channel(index)))
        .collect();
    move |caller, iteration| {
        let mut client = clients[caller % clients.len()].clone();
        let token = pick_token(&tokens, caller, iteration);
        Box::pin(async move {
            let mut request = tonic::Request::new(PlaceOrderRequest {
                item: "benchmark item".into(),
                amount_cents: 1_250,
            });
            let bearer = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("a token that is not a header value"))?;
            request.metadata_mut().insert("authorization", bearer);
            client.place_order(request).await.map(|_| ())
        })
    }
}
