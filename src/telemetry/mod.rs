//! Logging: one tracing subscriber, JSON for machines and pretty text for terminals.

mod lines;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use lines::JsonLines;

use crate::configuration::{LogFormat, LogSettings};

/// Where the log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The service's log.
    Stdout,
    /// For commands whose standard output is their answer (`latchkey clients add` prints the
    /// secret as JSON): their audit events go beside it, not into it.
    Stderr,
}

/// Installs the global subscriber. `RUST_LOG` wins over the configured level. Calling it twice
/// (as tests that start several services in one process do) keeps the first.
pub fn init(settings: &LogSettings, output: Output) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => match output {
            Output::Stdout => !std::io::stdout().is_terminal(),
            Output::Stderr => !std::io::stderr().is_terminal(),
        },
    };
    let writer = || match output {
        Output::Stdout => BoxMakeWriter::new(std::io::stdout),
        Output::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    // An error means a subscriber is installed already: the first stays.
    if json {
        // Written by hand for the hot path (see `lines`). Each line names its innermost span,
        // which carries the request id.
        tracing_subscriber::registry()
            .with(filter)
            .with(JsonLines::new(writer()))
            .try_init()
            .ok();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer())
            .try_init()
            .ok();
    }
}
