//! Prometheus metrics: requests, latencies, inference queue, job states and durations, model
//! load time. One registry per server instance (several servers can share a process in tests).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Requests by method, route and status.
    pub http_requests: IntCounterVec,
    /// Request latency by method and route.
    pub http_seconds: HistogramVec,
    /// Stylisations waiting for an inference slot.
    pub inference_waiting: IntGauge,
    /// Stylisations running.
    pub inference_running: IntGauge,
    /// Inference time by method and mode (`sync`, `job`).
    pub inference_seconds: HistogramVec,
    /// Jobs by state (refreshed when scraped).
    pub jobs: IntGaugeVec,
    /// Job run time by method and final state.
    pub job_seconds: HistogramVec,
    /// Model load time by model.
    pub model_load_seconds: HistogramVec,
    /// Webhook delivery attempts by outcome (`delivered`, `retrying`, `failed`).
    pub webhook_deliveries: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const JOB_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// A histogram with these buckets, by `labels`.
fn histogram(
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("styleforge".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_seconds = histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            &LATENCY_BUCKETS,
            &["method", "route"],
        )?;
        let inference_waiting = IntGauge::new(
            "inference_queue_depth",
            "Stylisations waiting for an inference slot",
        )?;
        let inference_running = IntGauge::new("inference_running", "Stylisations running now")?;
        let inference_seconds = histogram(
            "inference_duration_seconds",
            "Stylisation time (decode to encode)",
            &LATENCY_BUCKETS,
            &["method", "mode"],
        )?;
        let jobs = IntGaugeVec::new(Opts::new("jobs", "Jobs by state"), &["state"])?;
        let job_seconds = histogram(
            "job_duration_seconds",
            "Job run time by method and final state",
            &JOB_BUCKETS,
            &["method", "state"],
        )?;
        let model_load_seconds = histogram(
            "model_load_seconds",
            "Model load time",
            &LATENCY_BUCKETS,
            &["model"],
        )?;
        let webhook_deliveries = IntCounterVec::new(
            Opts::new("webhook_deliveries_total", "Webhook delivery attempts by outcome"),
            &["outcome"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        registry.register(Box::new(inference_waiting.clone()))?;
        registry.register(Box::new(inference_running.clone()))?;
        registry.register(Box::new(inference_seconds.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(job_seconds.clone()))?;
        registry.register(Box::new(model_load_seconds.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_seconds,
            inference_waiting,
            inference_running,
            inference_seconds,
            jobs,
            job_seconds,
            model_load_seconds,
            webhook_deliveries,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
