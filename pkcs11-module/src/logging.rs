//! `tracing` set-up: `HSMUX_LOG` (or the config's `log_level`) to stderr or `log_file`.

use crate::config::Config;
use std::sync::Once;

static INIT: Once = Once::new();

/// Installs the subscriber once per process; later calls do nothing.
pub fn init(cfg: &Config) {
    INIT.call_once(|| {
        let level = std::env::var("HSMUX_LOG")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| cfg.log_level.clone())
            .unwrap_or_else(|| "warn".into());
        let filter = tracing_subscriber::EnvFilter::try_new(format!("hsmux={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hsmux=warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false);
        let file = cfg.log_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        let _ = match file {
            Some(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init(),
            None => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .try_init(),
        };
    });
}
