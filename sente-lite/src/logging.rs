//! Log output for applications (feature `logging`): readable lines on standard
//! error and/or JSON lines in a rotating file, filtered by `RUST_LOG` or the
//! configured filter.
//!
//! Libraries only emit; call [`init`] once in a binary:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = sente_lite::settings::Settings::load(None)?;
//! let _guard = sente_lite::logging::init(&settings.logging)?;
//! tracing::info!("ready");
//! # Ok(())
//! # }
//! ```

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LoggingSettings, Rotation};

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter does not parse.
    #[error("invalid log filter `{filter}`: {message}")]
    Filter {
        /// The filter.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// The log file's folder cannot be created.
    #[error("cannot create the log folder {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A global subscriber is already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the file writer's background thread alive; drop it at exit to flush.
#[must_use = "dropping the guard stops writing the log file"]
#[derive(Debug)]
pub struct LoggingGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global tracing subscriber described by `settings`.
pub fn init(settings: &LoggingSettings) -> Result<LoggingGuard, LoggingError> {
    let filter_text = std::env::var("RUST_LOG").unwrap_or_else(|_| settings.filter.clone());
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| LoggingError::Filter {
        filter: filter_text.clone(),
        message: e.to_string(),
    })?;
    let console = settings
        .console
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let mut guard = None;
    let file = match &settings.json_file {
        None => None,
        Some(path) => {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(folder).map_err(|source| LoggingError::Folder {
                path: folder.display().to_string(),
                source,
            })?;
            let name = path
                .file_name()
                .map_or_else(|| "sente-lite.jsonl".into(), |n| n.to_owned());
            let appender = match settings.rotation {
                Rotation::Hourly => tracing_appender::rolling::hourly(folder, name),
                Rotation::Daily => tracing_appender::rolling::daily(folder, name),
                Rotation::Never => tracing_appender::rolling::never(folder, name),
            };
            let (writer, worker) = tracing_appender::non_blocking(appender);
            guard = Some(worker);
            Some(tracing_subscriber::fmt::layer().json().with_writer(writer))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(file)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    Ok(LoggingGuard { _file: guard })
}
