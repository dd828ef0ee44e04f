//! Logging set-up: JSON lines (production) or pretty lines (`--dev`), at `LOG_LEVEL`.
//!
//! HTTP libraries are held at `info` or quieter whatever the level: their debug output
//! includes raw request lines, and a request line may carry a `?token=`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

const QUIET_LIBRARIES: &[&str] = &[
    "warp=info",
    // hyper warns once per connection that misses its header deadline: a client could
    // turn that into a log flood.
    "hyper=error",
    "hyper_util=info",
    "tungstenite=info",
    "tokio_tungstenite=info",
    "reqwest=info",
];

/// The filter for `level`, with the libraries above held down.
#[must_use]
pub fn filter(level: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in QUIET_LIBRARIES {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber (once; later calls are ignored, as in tests).
pub fn init(level: &str, format: LogFormat) {
    let colours = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter(level)).with_target(false).with_ansi(colours);
    let _ = match format {
        // `spans` lists the enclosing spans with their fields (socket: user and socket
        // ids; session: the session id), so lines need not repeat them.
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_span_list(true).try_init()
        }
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Logs every panic (a session actor's, a socket task's) as an error line with its
/// location and a backtrace. Tokio catches panics in spawned tasks, so without this a
/// failing task would vanish without a trace.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(%location, %backtrace, "panic: {message}");
    }));
}
