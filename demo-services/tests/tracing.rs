//! One call to order-service yields one trace with spans from order-service, auth-service and
//! payment-service. A real OTLP receiver (the collector's gRPC trace service) runs in this test;
//! order-service and payment-service are the real binaries, auth-service runs in this process
//! (so this test binary's global tracer is auth-service's: keep it the only test here).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{HashMap, HashSet},
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_api::v1::{
    CredentialKind, LoginRequest, RegisterRequest, auth_service_client::AuthServiceClient,
    login_response::Credential,
};
use demo_services::{
    stack::AuthReplica,
    v1::{PlaceOrderRequest, order_service_client::OrderServiceClient},
    with_bearer,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tonic::{Request, Response, Status, transport::Server};

/// A received span: the service that sent it and its trace id.
type ReceivedSpan = (String, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(
                    |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(name) => Some(name.clone()),
                        _ => None,
                    },
                )
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span.trace_id));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(binary: &str, env: &[(&str, String)]) -> Killed {
    Killed(
        Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .spawn()
            .unwrap(),
    )
}

fn terminate(child: &mut Killed) {
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let _ = child.0.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_across_order_auth_and_payment_services() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let telemetry = auth_api::telemetry::init_with_endpoint(
        "auth-service",
        false,
        "warn",
        Some(endpoint.clone()),
    );
    let data = tempfile::tempdir().unwrap();
    let settings = AuthReplica::sqlite_settings(data.path());
    let auth = AuthReplica::start(settings.clone()).await.unwrap();
    let auth_url = auth.url.to_string();
    // The order-service client, as an operator creates it; the binary gets its secret.
    let operator = demo_services::operator::provision(&settings, &auth.url, None)
        .await
        .unwrap();

    let (payment_port, order_port) = (free_port(), free_port());
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let mut payment = start(
        env!("CARGO_BIN_EXE_payment-service"),
        &[
            otel[0].clone(),
            otel[1].clone(),
            ("PAYMENT_LISTEN_ADDR", format!("127.0.0.1:{payment_port}")),
            ("PAYMENT_AUTH_URL", auth_url.clone()),
        ],
    );
    let mut order = start(
        env!("CARGO_BIN_EXE_order-service"),
        &[
            otel[0].clone(),
            otel[1].clone(),
            ("ORDER_LISTEN_ADDR", format!("127.0.0.1:{order_port}")),
            ("ORDER_AUTH_URL", auth_url.clone()),
            (
                "ORDER_CLIENT_SECRET",
                operator.order_client_secret.expose().to_owned(),
            ),
            (
                "ORDER_PAYMENT_URL",
                format!("http://127.0.0.1:{payment_port}"),
            ),
        ],
    );

    let mut client = AuthServiceClient::connect(auth_url.clone()).await.unwrap();
    client
        .register(RegisterRequest {
            email: "traced@example.com".into(),
            password: "correct horse battery".into(),
        })
        .await
        .unwrap();
    let login = client
        .login(LoginRequest {
            email: "traced@example.com".into(),
            password: "correct horse battery".into(),
            kind: CredentialKind::Tokens.into(),
            management: false,
        })
        .await
        .unwrap()
        .into_inner();
    let Some(Credential::Tokens(tokens)) = login.credential else {
        panic!("no tokens")
    };

    let order_url = format!("http://127.0.0.1:{order_port}");
    let mut orders = None;
    for _ in 0..300 {
        if let Ok(client) = OrderServiceClient::connect(order_url.clone()).await {
            orders = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut orders = orders.expect("order-service did not start");
    let mut placed = None;
    for _ in 0..100 {
        // payment-service may still be connecting its LocalVerifier.
        match orders
            .place_order(
                with_bearer(
                    &tokens.access_token,
                    PlaceOrderRequest {
                        item: "tea".into(),
                        amount_cents: 450,
                    },
                )
                .unwrap(),
            )
            .await
        {
            Ok(response) => {
                placed = Some(response.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(placed.is_some(), "PlaceOrder never succeeded");

    // Flush: the children on SIGTERM, this process's exporter when its guard drops.
    terminate(&mut order);
    terminate(&mut payment);
    auth.stop().await;
    drop(telemetry);

    let wanted: HashSet<&str> = ["order-service", "auth-service", "payment-service"].into();
    let mut shared_trace = None;
    for _ in 0..100 {
        let spans = receiver.spans.lock().unwrap().clone();
        let mut services_by_trace: HashMap<Vec<u8>, HashSet<String>> = HashMap::new();
        for (service, trace_id) in spans {
            services_by_trace
                .entry(trace_id)
                .or_default()
                .insert(service);
        }
        shared_trace = services_by_trace
            .into_iter()
            .find(|(_, services)| wanted.iter().all(|wanted| services.contains(*wanted)));
        if shared_trace.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spans = receiver.spans.lock().unwrap().clone();
    assert!(
        shared_trace.is_some(),
        "no trace has spans from all three services: {spans:?}"
    );
}
