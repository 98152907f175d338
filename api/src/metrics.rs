//! Prometheus metrics of the API, in a registry owned by the application (no global recorder).

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `X-GitHub-Event` once the signature is verified; `unverified` before.
    pub event: String,
    /// HTTP status code.
    pub status: u16,
    /// The response's `code`.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    /// The route's template, e.g. `/api/v1/users/{user_id}` (never the concrete path).
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

fn api_latency() -> Histogram {
    // 0.25 ms .. ~2 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 2.0, 14,
    ))
}

#[derive(Debug)]
pub struct Metrics {
    pub api_requests: Family<ApiLabels, Counter>,
    pub api_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub sign_ins: Family<OutcomeLabels, Counter>,
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub ingest_seconds: Histogram,
    pub batch_size: Histogram,
    pub pending: Gauge,
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("devpulse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests by event, HTTP status and response code",
            requests.clone(),
        );
        // 0.5 ms .. ~4 s
        let ingest_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 14),
        );
        registry.register(
            "webhook_ingest_seconds",
            "Time from the request's arrival to its answer, for webhook deliveries",
            ingest_seconds.clone(),
        );
        let batch_size = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 10),
        );
        registry.register(
            "webhook_ingest_batch_size",
            "Deliveries stored per PostgreSQL statement (group commit)",
            batch_size.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "webhook_deliveries_pending",
            "Deliveries stored in PostgreSQL and not yet handed to Redis",
            pending.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs waiting in the Redis queue (scheduled + active)",
            queue_depth.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "api_requests",
            "/api/v1 requests by method, route and HTTP status",
            api_requests.clone(),
        );
        let api_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(api_latency);
        registry.register(
            "api_request_seconds",
            "/api/v1 request latency by method and route",
            api_seconds.clone(),
        );
        let sign_ins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-in attempts by outcome (success, invalid_credentials, throttled, disabled, refresh_reused)",
            sign_ins.clone(),
        );
        Self {
            api_requests,
            api_seconds,
            sign_ins,
            registry,
            requests,
            ingest_seconds,
            batch_size,
            pending,
            queue_depth,
        }
    }

    pub fn count_request(&self, event: &str, status: u16, code: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                event: event.to_owned(),
                status,
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn count_sign_in(&self, outcome: &str) {
        self.sign_ins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn observe_api(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.api_requests
            .get_or_create(&ApiLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.api_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
