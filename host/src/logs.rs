//! The binary's own log lines: one JSON object a line on stderr, in the component's shape
//! (`{"time":…,"level":…,"msg":…, …fields}`, see the core's `log.rs`) so that one parser reads
//! both, plus `target` (the module that logged), which component lines do not have.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the JSON line format on stderr; `RUST_LOG` filters (default `info`).
pub(crate) fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .event_format(JsonLines)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Formats each event as one JSON object.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&line(event))
    }
}

/// `event` as one JSON line, newline included.
fn line(event: &Event<'_>) -> String {
    let mut time = String::new();
    // RFC 3339 in UTC, e.g. 2026-11-27T18:02:07.333429Z.
    let _ = SystemTime.format_time(&mut Writer::new(&mut time));
    let metadata = event.metadata();
    let level = match *metadata.level() {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut line = format!(
        "{{\"time\":{},\"level\":\"{level}\",\"msg\":{}",
        json(&time.into()),
        json(&fields.msg.unwrap_or_default().into())
    );
    for (name, value) in fields.rest {
        let _ = write!(line, ",{}:{}", json(&name.into()), json(&value));
    }
    let _ = writeln!(line, ",\"target\":{}}}", json(&metadata.target().into()));
    line
}

fn json(value: &serde_json::Value) -> String {
    value.to_string()
}

/// An event's fields: `message` becomes `msg`, the others keep their names, in order.
#[derive(Default)]
struct Fields {
    msg: Option<String>,
    rest: Vec<(&'static str, serde_json::Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.msg = Some(match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            });
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Collects formatted lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<String>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .push_str(&String::from_utf8_lossy(bytes));
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_line_in_the_components_shape() -> anyhow::Result<()> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                message = "serving",
                url = "http://127.0.0.1:1",
                mib = 64_u64
            );
            tracing::warn!(message = "guest stopped", error = ?"line one\n\"two\"");
        });
        let text = lines
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(events.len(), 2, "{text}");
        assert!(text.starts_with(r#"{"time":""#), "{text}");
        assert!(
            text.contains(
                r#","level":"info","msg":"serving","url":"http://127.0.0.1:1","mib":64,"#
            ),
            "{text}"
        );
        assert_eq!(events[1]["level"], "warn");
        assert_eq!(events[1]["error"], r#""line one\n\"two\"""#);
        let time = events[0]["time"].as_str().unwrap_or_default();
        assert!(time.len() > 20 && time.ends_with('Z'), "{time}");
        assert_eq!(events[0]["target"], module_path!());
        Ok(())
    }
}
