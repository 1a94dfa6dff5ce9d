//! Native logging.
//!
//! Inside a JVM: a `tracing` layer queues level-filtered, scrubbed records; a Java-owned thread
//! drains the queue into slf4j ([`poll`]). No Rust thread ever attaches to the JVM for logging.
//!
//! Without a JVM (cargo tests, benchmarks, tools): `tracing` falls back to the `log` facade and
//! [`init_standalone`] routes it through log4rs to stderr or a file, level from the
//! `SAMZA_AZURE_LOG` environment variable or the argument.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::redact;

/// Records kept while nobody drains the queue; beyond this the oldest are counted and dropped.
pub const QUEUE_CAPACITY: usize = 10_000;

/// SDK and HTTP crates are chatty and echo URLs; they are held to WARN unless we trace.
const NOISY_TARGETS: [&str; 6] = ["azure_", "reqwest", "hyper", "h2", "rustls", "tokio"];

/// Levels as small integers shared with Java: 1 = ERROR … 5 = TRACE, 0 = OFF.
pub fn level_to_u8(level: Level) -> u8 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

pub fn level_name(level: u8) -> &'static str {
    match level {
        1 => "ERROR",
        2 => "WARN",
        3 => "INFO",
        4 => "DEBUG",
        _ => "TRACE",
    }
}

pub fn parse_level(s: &str) -> Option<u8> {
    match s.trim().to_ascii_uppercase().as_str() {
        "OFF" => Some(0),
        "ERROR" => Some(1),
        "WARN" | "WARNING" => Some(2),
        "INFO" => Some(3),
        "DEBUG" => Some(4),
        "TRACE" => Some(5),
        _ => None,
    }
}

/// One log line on its way to Java.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub level: u8,
    pub target: String,
    pub message: String,
}

struct Queue {
    records: Mutex<VecDeque<Record>>,
    ready: Condvar,
    dropped: AtomicU64,
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(3);
static QUEUE: OnceLock<Queue> = OnceLock::new();

fn queue() -> &'static Queue {
    QUEUE.get_or_init(|| Queue {
        records: Mutex::new(VecDeque::new()),
        ready: Condvar::new(),
        dropped: AtomicU64::new(0),
    })
}

fn enabled(level: u8, target: &str) -> bool {
    let max = MAX_LEVEL.load(Ordering::Relaxed);
    let max = if NOISY_TARGETS.iter().any(|t| target.starts_with(t)) && max < 5 {
        max.min(2)
    } else {
        max
    };
    level <= max
}

/// Sets the most verbose level forwarded (0 = off).
pub fn set_max_level(level: u8) {
    MAX_LEVEL.store(level.min(5), Ordering::Relaxed);
}

struct QueueLayer;

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for QueueLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = level_to_u8(*meta.level());
        if !enabled(level, meta.target()) {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        visitor.message.push_str(&visitor.fields);
        push(Record {
            level,
            target: meta.target().to_owned(),
            message: redact::scrub(&visitor.message),
        });
    }
}

fn push(record: Record) {
    let q = queue();
    let mut records = q.records.lock().unwrap_or_else(|e| e.into_inner());
    if records.len() >= QUEUE_CAPACITY {
        records.pop_front();
        q.dropped.fetch_add(1, Ordering::Relaxed);
    }
    records.push_back(record);
    drop(records);
    q.ready.notify_one();
}

/// Installs the queueing subscriber as the process-wide default. Idempotent; the level can be
/// changed later with [`set_max_level`].
pub fn init_jvm_bridge(max_level: u8) -> Result<()> {
    set_max_level(max_level);
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let ok = *INSTALLED.get_or_init(|| {
        tracing_subscriber::registry()
            .with(QueueLayer)
            .try_init()
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Internal,
            "another tracing subscriber was installed before the JVM log bridge",
        ))
    }
}

/// Waits up to `timeout` for records and returns those queued (at most `max`), plus the
/// number dropped since the last call.
pub fn poll(timeout: Duration, max: usize) -> (Vec<Record>, u64) {
    let q = queue();
    let deadline = Instant::now() + timeout;
    let mut records = q.records.lock().unwrap_or_else(|e| e.into_inner());
    while records.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        records = q
            .ready
            .wait_timeout(records, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    let n = records.len().min(max);
    let out: Vec<Record> = records.drain(..n).collect();
    drop(records);
    (out, q.dropped.swap(0, Ordering::Relaxed))
}

/// log4rs encoder that scrubs secrets from every line.
#[derive(Debug)]
struct ScrubbingEncoder;

impl log4rs::encode::Encode for ScrubbingEncoder {
    fn encode(
        &self,
        w: &mut dyn log4rs::encode::Write,
        record: &log::Record<'_>,
    ) -> anyhow::Result<()> {
        let now = time::OffsetDateTime::now_utc();
        let line = format!(
            "{} {:5} {} - {}\n",
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            record.level(),
            record.target(),
            redact::scrub(&record.args().to_string())
        );
        w.write_all(line.as_bytes())?;
        Ok(())
    }
}

/// Where standalone logs go.
pub enum Sink {
    Stderr,
    File(std::path::PathBuf),
}

/// Configures log4rs for use without a JVM. `level` is used when `SAMZA_AZURE_LOG` is unset.
/// Safe to call more than once (later calls are ignored).
pub fn init_standalone(sink: Sink, level: &str) -> Result<()> {
    use log4rs::append::console::{ConsoleAppender, Target};
    use log4rs::append::file::FileAppender;
    use log4rs::config::{Appender, Config, Logger, Root};

    let env_level = std::env::var("SAMZA_AZURE_LOG").ok();
    let chosen = env_level.as_deref().unwrap_or(level);
    let lvl = parse_level(chosen).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!("log level '{chosen}': expected OFF, ERROR, WARN, INFO, DEBUG or TRACE"),
        )
    })?;
    let filter = match lvl {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let appender: Box<dyn log4rs::append::Append> = match sink {
        Sink::Stderr => Box::new(
            ConsoleAppender::builder()
                .target(Target::Stderr)
                .encoder(Box::new(ScrubbingEncoder))
                .build(),
        ),
        Sink::File(path) => Box::new(
            FileAppender::builder()
                .encoder(Box::new(ScrubbingEncoder))
                .build(&path)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("log file '{}': cannot open ({e})", path.display()),
                    )
                })?,
        ),
    };
    let mut builder = Config::builder().appender(Appender::builder().build("main", appender));
    for noisy in [
        "azure_core",
        "azure_storage",
        "azure_storage_blobs",
        "azure_data_tables",
        "reqwest",
        "hyper",
        "hyper_util",
        "h2",
        "rustls",
    ] {
        // Same rule as the JVM bridge: SDK chatter only when tracing.
        let level = if filter == log::LevelFilter::Trace {
            filter
        } else {
            filter.min(log::LevelFilter::Warn)
        };
        builder = builder.logger(Logger::builder().build(noisy, level));
    }
    let config = builder
        .build(Root::builder().appender("main").build(filter))
        .map_err(|e| Error::internal(format!("log4rs config: {e}")))?;
    // Already initialised (by an earlier call or another logger): keep the first.
    let _ = log4rs::init_config(config);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_targets_are_capped_at_warn() {
        set_max_level(4);
        assert!(enabled(4, "samza_azure_coordinator::lease"));
        assert!(!enabled(4, "azure_core::http_client"));
        assert!(enabled(2, "azure_core::http_client"));
        set_max_level(3);
    }

    #[test]
    fn parse_levels() {
        assert_eq!(parse_level("warn"), Some(2));
        assert_eq!(parse_level("bogus"), None);
    }
}
