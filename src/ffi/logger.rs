//! A tiny stderr logger, enabled by `JPKI_PKCS11_LOG=error|warn|info|debug|trace`, for the
//! module and for its card-link helper (which inherits the host's environment): each line
//! names which of the two wrote it. Nothing secret is ever logged (no PINs, no certificate
//! contents).

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    /// The program named at the start of each line.
    name: std::sync::OnceLock<&'static str>,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let name = self.name.get().copied().unwrap_or("jpki-pkcs11");
            eprintln!("{name} [{}] {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger {
    name: std::sync::OnceLock::new(),
};

/// Installs the module's logger if the variable asks for it and no other logger is set.
pub fn init() {
    init_named("jpki-pkcs11");
}

/// [`init`] for a program of this project, its lines starting with `name`.
pub fn init_named(name: &'static str) {
    let Ok(level) = std::env::var("JPKI_PKCS11_LOG") else {
        return;
    };
    let filter = match level.to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return,
    };
    let _ = LOGGER.name.set(name);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(filter);
    }
}
