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
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Members of the line itself; an event field of the same name is written as
/// `fields.<name>`, so that no line has a member twice.
const LINE_MEMBERS: [&str; 4] = ["level", "span", "target", "timestamp"];

/// Members of the `span` object that are not fields: the span's name.
const SPAN_MEMBERS: [&str; 1] = ["name"];

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

/// A span's fields, each value formatted as JSON, and all of them as the members of the line's
/// `span` object (`"name":"request","request_id":"…"`).
struct SpanFields {
    values: SpanValues,
    members: Vec<u8>,
}

impl SpanFields {
    fn new(name: &str, values: SpanValues) -> SpanFields {
        let mut fields = SpanFields {
            values,
            members: Vec::with_capacity(64),
        };
        fields.render(name);
        fields
    }

    /// Takes `fresh` values, replacing those of fields recorded before.
    fn update(&mut self, name: &str, fresh: SpanValues) {
        for (field, value) in fresh.0 {
            match self.values.0.iter_mut().find(|(known, _)| *known == field) {
                Some((_, old)) => *old = value,
                None => self.values.0.push((field, value)),
            }
        }
        self.render(name);
    }

    fn render(&mut self, name: &str) {
        self.members.clear();
        self.members.extend_from_slice(b"\"name\":");
        push_str(&mut self.members, name);
        for (field, value) in &self.values.0 {
            push_key(&mut self.members, field, &SPAN_MEMBERS);
            self.members.extend_from_slice(value);
        }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut values = Fields::new(SpanValues::default());
        attrs.record(&mut values);
        let fields = SpanFields::new(attrs.metadata().name(), values.sink);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Formatted before the span's extensions are locked: a value whose formatting logs
        // in this span would otherwise wait for the lock it holds.
        let mut fresh = Fields::new(SpanValues::default());
        values.record(&mut fresh);
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            fields.update(span.name(), fresh.sink);
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
        && let Some(fields) = span.extensions().get::<SpanFields>()
    {
        line.extend_from_slice(b",\"span\":{");
        line.extend_from_slice(&fields.members);
        line.push(b'}');
    }
    line.extend_from_slice(b",\"target\":");
    push_str(line, metadata.target());
    line.extend_from_slice(b",\"timestamp\":\"");
    // A clock set before 1970 (which Linux refuses) would make the formatter panic.
    if at.duration_since(UNIX_EPOCH).is_ok() {
        let _ = write!(line, "{}", humantime::format_rfc3339_micros(at));
    } else {
        line.extend_from_slice(b"1970-01-01T00:00:00.000000Z");
    }
    line.push(b'"');
    let mut members = Fields::new(LineMembers {
        out: line,
        skip_log_fields: from_log,
    });
    event.record(&mut members);
    line.extend_from_slice(b"}\n");
}

/// Appends `value` as a JSON string.
fn push_str(out: &mut Vec<u8>, value: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// Appends `,"<field>":`: the field's name as `tracing` spells it (without the `r#` of a raw
/// identifier), as `fields.<name>` where it would repeat one of `taken`.
fn push_key(out: &mut Vec<u8>, field: &str, taken: &[&str]) {
    let name = field.strip_prefix("r#").unwrap_or(field);
    out.push(b',');
    if taken.contains(&name) {
        push_str(out, &format!("fields.{name}"));
    } else if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        // Identifiers and dotted paths of them, as nearly every name is: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    } else {
        // `tracing` also takes names written as string literals.
        push_str(out, name);
    }
    out.push(b':');
}

/// Where [`Fields`] puts each field's value.
trait FieldSink {
    /// The buffer for the value of `field`, its key written already where the sink wants one;
    /// `None` to leave the field out.
    fn value_of(&mut self, field: &'static str) -> Option<&mut Vec<u8>>;
}

/// An event's fields as members of its line.
struct LineMembers<'a> {
    out: &'a mut Vec<u8>,
    /// Whether to leave out the `log.*` fields by which a `log` record names its origin.
    skip_log_fields: bool,
}

impl FieldSink for LineMembers<'_> {
    fn value_of(&mut self, field: &'static str) -> Option<&mut Vec<u8>> {
        if self.skip_log_fields && field.starts_with("log.") {
            return None;
        }
        push_key(self.out, field, &LINE_MEMBERS);
        Some(self.out)
    }
}

/// A span's fields, by name, each value formatted as JSON.
#[derive(Default)]
struct SpanValues(Vec<(&'static str, Vec<u8>)>);

impl FieldSink for SpanValues {
    fn value_of(&mut self, field: &'static str) -> Option<&mut Vec<u8>> {
        self.0.push((field, Vec::new()));
        self.0.last_mut().map(|(_, value)| value)
    }
}

/// Formats the fields it visits as JSON values into its sink.
struct Fields<K> {
    sink: K,
    /// For values formatted by `Debug` or `Display` before they are escaped.
    scratch: String,
}

impl<K: FieldSink> Fields<K> {
    fn new(sink: K) -> Fields<K> {
        Fields {
            sink,
            scratch: String::new(),
        }
    }

    fn formatted(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.scratch.clear();
        let _ = self.scratch.write_fmt(value);
        if let Some(out) = self.sink.value_of(field.name()) {
            push_str(out, &self.scratch);
        }
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        if let Some(out) = self.sink.value_of(field.name()) {
            let _ = write!(out, "{value}");
        }
    }
}

impl<K: FieldSink> Visit for Fields<K> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(out) = self.sink.value_of(field.name()) {
            push_str(out, value);
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
        if let Some(out) = self.sink.value_of(field.name()) {
            // serde_json writes `1.0` as `1.0`, and NaN and infinity (which JSON lacks) as
            // `null`.
            let _ = serde_json::to_writer(out, &value);
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
        parsed(&text(log))
    }

    /// Each line of `text`, parsed.
    fn parsed(text: &str) -> Vec<Value> {
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// What `log` writes, as text.
    fn text(log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
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
    fn a_span_field_recorded_again_is_replaced_not_repeated() {
        let text = text(|| {
            let span = tracing::error_span!("request", route = "first", name = "field");
            let _entered = span.enter();
            span.record("route", "second");
            tracing::info!("x");
        });
        assert_eq!(text.matches("\"route\"").count(), 1, "{text}");
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            line["span"],
            json!({"name": "request", "route": "second", "fields.name": "field"})
        );
    }

    #[test]
    fn field_names_are_written_as_tracing_spells_them_and_escaped_where_needed() {
        let lines = lines(|| tracing::info!(r#type = "raw", "quote\"d" = 1, "x"));
        assert_eq!(lines[0]["type"], "raw");
        assert_eq!(lines[0]["quote\"d"], 1);
    }

    #[test]
    fn a_whole_number_float_stays_a_float() {
        let text = text(|| tracing::info!(latency_ms = 1.0f64, "x"));
        assert!(text.contains("\"latency_ms\":1.0"), "{text}");
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
    fn a_thread_that_is_exiting_still_writes_its_lines() {
        struct LogsOnDrop;
        impl Drop for LogsOnDrop {
            fn drop(&mut self) {
                tracing::info!("last words");
            }
        }
        thread_local! {
            static LAST: LogsOnDrop = const { LogsOnDrop };
        }
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        // Process-wide: thread-local defaults are gone by the time a thread's locals drop.
        tracing::subscriber::set_global_default(subscriber).unwrap();
        std::thread::spawn(|| {
            // Destroyed in reverse order of first use: the line buffer before `LAST`.
            LAST.with(|_| {});
            tracing::info!("first words");
        })
        .join()
        .unwrap();
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let messages: Vec<Value> = parsed(&text)
            .into_iter()
            .map(|line| line["message"].clone())
            .collect();
        assert_eq!(messages, ["first words", "last words"]);
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
