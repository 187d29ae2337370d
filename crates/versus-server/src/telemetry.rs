//! Logs and metrics. Log lines are JSON objects with the fields operators query on:
//! `timestamp, level, service, event, player_id, session_id, trace_id, details`. Span fields
//! (the request span carries `trace_id` and, once authenticated, `player_id`) flow into every
//! event logged inside the span.
//!
//! Nothing here may log a password or token: handlers never put one in a field, and request
//! spans record the path only, never the query string (browsers send `?token=` to `/ws`).

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber, span};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber. Later calls (tests start many apps in one process) are
/// no-ops.
pub fn init_logging(config: &LogConfig, service: &str) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match config.format {
        LogFormat::Json => registry
            .with(JsonLogLayer {
                service: service.to_owned(),
            })
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
    };
}

/// Fields that get a top-level key of their own rather than a place in `details`.
const TOP_LEVEL: [&str; 3] = ["player_id", "session_id", "trace_id"];

struct JsonLogLayer {
    service: String,
}

/// The fields recorded on a span so far, kept in the span's extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for JsonLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut details = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    details.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut own = Map::new();
        event.record(&mut JsonVisitor(&mut own));
        details.extend(own);

        let message = details.remove("message").unwrap_or(Value::Null);
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(
                OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .unwrap_or_default(),
            ),
        );
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str()),
        );
        line.insert("service".into(), Value::from(self.service.as_str()));
        line.insert("event".into(), message);
        for key in TOP_LEVEL {
            line.insert(key.into(), details.remove(key).unwrap_or(Value::Null));
        }
        details.insert("target".into(), Value::from(event.metadata().target()));
        line.insert("details".into(), Value::Object(details));

        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&bytes);
    }
}

/// Seconds: a tick or a settle is sub-millisecond for a normal pool and tens of milliseconds for
/// a 100k-ticket backlog (BENCHMARKS.md).
const MATCHMAKER_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The process-wide Prometheus recorder. `metrics` has one global recorder, so every app in a
/// process (tests start many) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("game_queue_waiting_seconds".into()),
                    &[
                        0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                    ],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("game_matchmaking_tick_duration_seconds".into()),
                    MATCHMAKER_BUCKETS,
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("game_matchmaking_settle_duration_seconds".into()),
                    MATCHMAKER_BUCKETS,
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("the metrics recorder is installed once per process");
            describe_metrics();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}

fn describe_metrics() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by route and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by route and status"
    );
    metrics::describe_gauge!(
        "http_connections_open",
        "Open client connections, WebSockets included"
    );
    metrics::describe_counter!(
        "http_connections_refused_total",
        "Connections closed as soon as accepted, by the cap they met (max_connections, \
         max_connections_per_ip)"
    );
    metrics::describe_counter!(
        "http_connections_timed_out_total",
        "Connections closed for silence: no whole request head in time (header_read_timeout) \
         or idle between requests (idle_timeout)"
    );
    metrics::describe_gauge!(
        "game_websocket_connections",
        "Live player WebSocket connections"
    );
    metrics::describe_histogram!(
        "game_queue_waiting_seconds",
        metrics::Unit::Seconds,
        "Time from joining a queue to being matched, by queue"
    );
    metrics::describe_counter!("game_matchmaking_success_total", "Matches formed, by queue");
    metrics::describe_histogram!(
        "game_matchmaking_tick_duration_seconds",
        metrics::Unit::Seconds,
        "Duration of one matchmaker tick, by queue"
    );
    metrics::describe_histogram!(
        "game_matchmaking_settle_duration_seconds",
        metrics::Unit::Seconds,
        "Time settling a queue's pool after a tick's matches are published (releasing matched \
         tickets, merging arrivals), by queue"
    );
    metrics::describe_gauge!(
        "game_queue_searching_tickets",
        "Tickets searching, by queue"
    );
    metrics::describe_gauge!(
        "game_server_slots_free",
        "Sessions each game server of the static allocator can still take, by endpoint"
    );
    metrics::describe_counter!(
        "game_ws_events_sent_total",
        "Events handed to live WebSocket connections"
    );
    metrics::describe_counter!(
        "game_ws_events_dropped_total",
        "Events not sent live (kept for replay), by reason"
    );
    metrics::describe_counter!(
        "game_ws_messages_rate_limited_total",
        "Inbound WebSocket messages refused by the per-connection rate limit"
    );
    metrics::describe_histogram!(
        "store_query_duration_seconds",
        metrics::Unit::Seconds,
        "Latency of store health probes"
    );
}
