//! The `bbrt-server` binary: flags, logging, runtime, signals. Everything else is in the
//! library.

use std::process::ExitCode;

use bbrt_server::config::{Config, LogFormat};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Colours only for a person at a terminal, never in files or journald.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    match bbrt_server::raise_fd_limit() {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.workers > 0 {
        runtime.worker_threads(config.workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "bbrt stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), bbrt_server::ServerError> {
    let server = bbrt_server::start(config).await?;
    let stop = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "no SIGTERM handler");
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    let addr = server.local_addr();
    tracing::info!("ws://{addr}/ ready");
    // A Hub failure ends this too: the process exits non-zero instead of running half alive.
    server
        .run_until(async {
            stop.await;
            tracing::info!("signal received; shutting down");
        })
        .await
}
