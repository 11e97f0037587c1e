//! Logging and tracing set-up: `RUST_LOG` filters (the default is given per binary); logs go to
//! standard error, so the `demo` report on standard output stays readable. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported under `service_name`.

pub use auth_api::telemetry::TelemetryGuard;

pub fn init(service_name: &'static str, default_filter: &str) -> TelemetryGuard {
    auth_api::telemetry::init(service_name, false, default_filter)
}
