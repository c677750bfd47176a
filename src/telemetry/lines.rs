//! JSON log lines, one object per event, written in one call:
//!
//! ```json
//! {"level":"INFO","span":{"name":"request","request_id":"…"},"target":"access","timestamp":"2026-12-04T17:13:17.670488Z","message":"request","method":"POST",…}
//! ```
//!
//! The access and audit lines are on the path of every token, and a general-purpose JSON
//! formatter builds each line as a tree of values first, sorts it and only then writes it: two
//! lines cost more CPU than everything else a token needs besides its signature. This layer
//! writes each field straight into a buffer kept per thread, and a span's fields (the request
//! id) are formatted once, when the span opens.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Keys of the line itself; an event field of the same name is written as `fields.<name>`, so
/// that no line has a member twice.
const RESERVED: [&str; 4] = ["level", "span", "target", "timestamp"];

/// A buffer kept across lines up to this size; one that grew past it (a huge message) is let go.
const KEPT_BUFFER: usize = 16 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The layer: formats every event it sees as one JSON line for `writer`.
pub struct JsonLines<W> {
    writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(writer: W) -> JsonLines<W> {
        JsonLines { writer }
    }
}

/// A span's fields, formatted as members (`"name":"request","request_id":"…"`).
struct SpanFields(Vec<u8>);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut members = Vec::with_capacity(64);
        members.extend_from_slice(b"\"name\":");
        push_str(&mut members, attrs.metadata().name());
        attrs.record(&mut Members::new(&mut members));
        span.extensions_mut().insert(SpanFields(members));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(members)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Members::new(members));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let write = |line: &mut Vec<u8>| {
            line.clear();
            format_line(line, event, &ctx, SystemTime::now());
            // One call per line, so that lines from different threads never interleave.
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line);
        };
        // A value whose formatting logs something itself finds the buffer taken, and a thread
        // that is exiting has none left: either gets a buffer of its own.
        let kept = BUFFER.try_with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut line) => {
                write(&mut line);
                if line.capacity() > KEPT_BUFFER {
                    *line = Vec::new();
                }
                true
            }
            Err(_) => false,
        });
        if kept != Ok(true) {
            write(&mut Vec::new());
        }
    }
}

/// Appends `event` as one JSON object and a newline.
fn format_line<S>(line: &mut Vec<u8>, event: &Event<'_>, ctx: &Context<'_, S>, at: SystemTime)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // A record of the `log` crate arrives with target `log` and its own target among its
    // fields: the line names the record's.
    let normalized = event.normalized_metadata();
    let from_log = normalized.is_some();
    let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
    line.extend_from_slice(b"{\"level\":\"");
    line.extend_from_slice(metadata.level().as_str().as_bytes());
    line.push(b'"');
    if let Some(span) = ctx.event_span(event)
        && let Some(SpanFields(members)) = span.extensions().get::<SpanFields>()
    {
        line.extend_from_slice(b",\"span\":{");
        line.extend_from_slice(members);
        line.push(b'}');
    }
    line.extend_from_slice(b",\"target\":");
    push_str(line, metadata.target());
    line.extend_from_slice(b",\"timestamp\":\"");
    let _ = write!(line, "{}", humantime::format_rfc3339_micros(at));
    line.push(b'"');
    let mut members = Members::new(line);
    members.skip_log_fields = from_log;
    event.record(&mut members);
    line.extend_from_slice(b"}\n");
}

/// Appends `value` as a JSON string.
fn push_str(out: &mut Vec<u8>, value: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// Writes the fields it visits as JSON members, each after a comma.
struct Members<'a> {
    out: &'a mut Vec<u8>,
    /// For values formatted by `Debug` or `Display` before they are escaped.
    scratch: String,
    /// Whether to leave out the `log.*` fields by which a `log` record names its origin.
    skip_log_fields: bool,
}

impl<'a> Members<'a> {
    fn new(out: &'a mut Vec<u8>) -> Members<'a> {
        Members {
            out,
            scratch: String::new(),
            skip_log_fields: false,
        }
    }

    /// Writes the member's key; `false` when the field is left out.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.skip_log_fields && name.starts_with("log.") {
            return false;
        }
        self.out.extend_from_slice(b",\"");
        if RESERVED.contains(&name) {
            self.out.extend_from_slice(b"fields.");
        }
        // Field names are Rust identifiers (or dotted paths of them): nothing to escape.
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        true
    }

    fn formatted(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if !self.key(field) {
            return;
        }
        self.scratch.clear();
        let _ = self.scratch.write_fmt(value);
        push_str(self.out, &self.scratch);
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            let _ = write!(self.out, "{value}");
        }
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            push_str(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(field, format_args!("{value:?}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else if self.key(field) {
            // JSON has no NaN or infinity.
            self.out.extend_from_slice(b"null");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects what the layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    /// The lines `log` writes, each parsed.
    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn an_event_is_one_json_object_with_its_level_target_time_and_fields() {
        let lines = lines(|| {
            tracing::warn!(target: "audit", who = "alice", status = 401u16, late = -2i64, ok = false, "login_failed");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "audit");
        assert_eq!(line["message"], "login_failed");
        assert_eq!(line["who"], "alice");
        assert_eq!(line["status"], 401);
        assert_eq!(line["late"], -2);
        assert_eq!(line["ok"], false);
        assert!(line.get("span").is_none(), "outside a span: {line}");
        let at = line["timestamp"].as_str().unwrap();
        let parsed = humantime::parse_rfc3339(at).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() < 60, "{at}");
        assert_eq!(at.len(), "2026-12-04T17:13:17.670488Z".len(), "{at}");
    }

    #[test]
    fn every_line_of_a_span_carries_the_span_fields_recorded_so_far() {
        let lines = lines(|| {
            let span =
                tracing::error_span!("request", request_id = "abc", route = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("first");
            span.record("route", "/oauth/token");
            tracing::info!("second");
        });
        assert_eq!(
            lines[0]["span"],
            json!({"name": "request", "request_id": "abc"})
        );
        assert_eq!(
            lines[1]["span"],
            json!({"name": "request", "request_id": "abc", "route": "/oauth/token"})
        );
    }

    #[test]
    fn text_that_would_break_the_line_is_escaped() {
        let nasty = "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} é ✓";
        let lines = lines(|| {
            tracing::info!(name = nasty, debugged = ?nasty, "{nasty}");
        });
        assert_eq!(lines.len(), 1, "one line, whatever the text holds");
        assert_eq!(lines[0]["name"], nasty);
        assert_eq!(lines[0]["message"], nasty);
        assert_eq!(lines[0]["debugged"], format!("{nasty:?}"));
    }

    #[test]
    fn a_field_named_like_a_member_of_the_line_is_kept_apart_from_it() {
        let lines = lines(|| {
            tracing::info!(target: "access", level = "forged", target = "forged", "request");
        });
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], "access");
        assert_eq!(lines[0]["fields.level"], "forged");
        assert_eq!(lines[0]["fields.target"], "forged");
    }

    #[test]
    fn numbers_that_json_cannot_hold_are_null_and_errors_are_their_message() {
        let error = std::io::Error::other("disk on fire");
        let lines = lines(|| {
            tracing::info!(
                latency_ms = 1.5f64,
                bad = f64::NAN,
                big = u64::MAX,
                error = &error as &(dyn std::error::Error + 'static),
                "x"
            );
        });
        assert_eq!(lines[0]["latency_ms"], 1.5);
        assert_eq!(lines[0]["bad"], Value::Null);
        assert_eq!(lines[0]["big"].as_u64(), Some(u64::MAX));
        assert_eq!(lines[0]["error"], "disk on fire");
    }

    #[test]
    fn a_record_of_the_log_crate_is_a_line_under_its_own_target() {
        // Process-wide, as the service sets it up (each test runs in a process of its own).
        let _ = tracing_log::LogTracer::init();
        let lines = lines(|| tracing_log::log::warn!(target: "rustls::conn", "peer sent {}", 3));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["target"], "rustls::conn");
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["message"], "peer sent 3");
        let names: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
        assert!(
            names.iter().all(|name| !name.starts_with("log.")),
            "{names:?}"
        );
    }

    #[test]
    fn a_value_that_logs_while_it_is_formatted_leaves_the_line_whole() {
        struct Chatty;
        impl fmt::Debug for Chatty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!("inner");
                f.write_str("chatty")
            }
        }
        let lines = lines(|| tracing::info!(value = ?Chatty, "outer"));
        let outer = lines.iter().find(|l| l["message"] == "outer").unwrap();
        assert_eq!(outer["value"], "chatty");
    }
}
