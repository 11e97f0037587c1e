//! Logging and tracing for the auth service and the services that use it (feature `telemetry`).
//!
//! - Logs: human-readable lines by default, JSON with `json_logs`; `RUST_LOG` filters.
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are exported over OTLP/gRPC with the
//!   given service name. An `https://` endpoint is TLS: `OTEL_EXPORTER_OTLP_CERTIFICATE` names
//!   the CA to trust (the system's roots when unset), `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`
//!   and `OTEL_EXPORTER_OTLP_CLIENT_KEY` a client certificate (the OpenTelemetry variables; the
//!   `OTEL_EXPORTER_OTLP_TRACES_*` forms take precedence). W3C trace context (`traceparent`) travels in gRPC metadata:
//!   [`TraceContextLayer`] continues an incoming trace on the server side, and [`traced`] /
//!   [`inject_trace_context`] carry the current one into outgoing calls.
//! - [`RpcLogLayer`] (`rpc_log.rs`): the one log line per RPC every server writes, with a hook
//!   for metrics ([`RpcObserver`]).
//! - [`shutdown_signal`]: Ctrl-C or SIGTERM, for `serve_with_shutdown`.

mod rpc_log;

use std::{
    future::Future,
    io::IsTerminal,
    path::PathBuf,
    pin::Pin,
    task::{Context, Poll},
};

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tonic::transport::ClientTlsConfig;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

pub use rpc_log::{RpcLog, RpcLogLayer, RpcObserver};

/// Flushes buffered spans when dropped: keep it alive until the process ends.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Blocking flush, off the async runtime's threads.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// Installs the global subscriber (once per process; later calls keep the first).
/// `default_filter` applies when `RUST_LOG` is unset.
pub fn init(service_name: &'static str, json_logs: bool, default_filter: &str) -> TelemetryGuard {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|endpoint| !endpoint.is_empty());
    init_with_endpoint(service_name, json_logs, default_filter, endpoint)
}

/// [`init`] with the OTLP endpoint given instead of read from the environment.
pub fn init_with_endpoint(
    service_name: &'static str,
    json_logs: bool,
    default_filter: &str,
    otlp_endpoint: Option<String>,
) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = if json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour only for a terminal: not in files, pipes or container logs.
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed()
    };
    let provider = otlp_endpoint.and_then(|endpoint| otlp_provider(service_name, endpoint));
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service_name))
            // The exporter's own transport must not be traced: that would feed back into itself.
            // Spans are traced at INFO and above whatever RUST_LOG says about logs.
            .with_filter(filter_fn(|metadata| {
                let target = metadata.target();
                metadata.level() <= &tracing::Level::INFO
                    && !["h2", "hyper", "tonic", "tower", "opentelemetry"]
                        .iter()
                        .any(|noisy| target.starts_with(noisy))
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    TelemetryGuard { provider }
}

fn otlp_provider(service_name: &'static str, endpoint: String) -> Option<SdkTracerProvider> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if endpoint.starts_with("https://") {
        match otlp_tls() {
            Ok(tls) => builder = builder.with_tls_config(tls),
            Err(error) => {
                eprintln!("{service_name}: tracing disabled, OTLP TLS: {error}");
                return None;
            }
        }
    }
    let exporter = builder.with_endpoint(endpoint).build();
    match exporter {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name(service_name).build())
                .build(),
        ),
        Err(error) => {
            // A bad endpoint must not stop the service: it runs, untraced.
            eprintln!("{service_name}: tracing disabled, OTLP exporter: {error}");
            None
        }
    }
}

/// The TLS of an `https://` OTLP endpoint, from the OpenTelemetry variables.
fn otlp_tls() -> Result<ClientTlsConfig, crate::tls::TlsError> {
    let path = |name: &str| {
        [
            format!("OTEL_EXPORTER_OTLP_TRACES_{name}"),
            format!("OTEL_EXPORTER_OTLP_{name}"),
        ]
        .iter()
        .find_map(|variable| std::env::var_os(variable).filter(|value| !value.is_empty()))
        .map(PathBuf::from)
    };
    let (ca, cert, key) = (
        path("CERTIFICATE"),
        path("CLIENT_CERTIFICATE"),
        path("CLIENT_KEY"),
    );
    Ok(
        match crate::tls::ClientTls::from_files(ca.as_deref(), cert.as_deref(), key.as_deref())? {
            Some(tls) => tls.config(),
            None => ClientTlsConfig::new().with_native_roots(),
        },
    )
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// A finished call's status as its response headers show it. Failed unary calls are
/// "trailers-only", with the status in the headers; a success's status (0) follows in the
/// trailers, so no status in the headers means OK.
pub fn response_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from)
}

/// Adds the current span's trace context to outgoing request metadata.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata))
    });
}

/// A request carrying the current trace context.
pub fn traced<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    inject_trace_context(request.metadata_mut());
    request
}

/// A server span per call, continuing the caller's trace when it sent one.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer;

impl<S> Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceContext { inner }
    }
}

#[derive(Clone, Debug)]
pub struct TraceContext<S> {
    inner: S,
}

impl<S, RequestBody> Service<http::Request<RequestBody>> for TraceContext<S>
where
    S: Service<http::Request<RequestBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let parent = global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let span = tracing::info_span!("grpc", otel.name = %request.uri().path(), otel.kind = "server", rpc.system = "grpc");
        let _ = span.set_parent(parent);
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(response.instrument(span))
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
