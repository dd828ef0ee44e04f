//! The `chatbox` binary: `chatbox [--dev]` serves; `chatbox healthcheck` asks a running
//! server for its health (see [`chatbox::healthcheck`]); `chatbox migrate` converts the
//! earlier service's stored sessions (see `migrate.rs`). Anything else is refused.

#![forbid(unsafe_code)]

mod migrate;

use std::process::ExitCode;
use std::time::Duration;

use chatbox::config::{Secret, Settings};
use chatbox::{Application, startup};
use tracing::{error, info, warn};

/// jemalloc instead of the C library's allocator, so that memory freed when sockets close
/// goes back to the system instead of staying with the process (the C library's keeps
/// it; mimalloc keeps most of it until the threads that allocated it allocate again).
/// Its background thread gives back pages unused for a second; the settings are built
/// in (`.cargo/config.toml`). Measured in `docs/benchmarks.md`. Building without the
/// default `jemalloc` feature gives the C library's allocator, for heap profilers.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dev = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        // Before the configuration is loaded: the health check must not need (or log) it.
        ["healthcheck"] => return chatbox::healthcheck::run(),
        ["migrate"] => return migrate::main(),
        [] => false,
        ["--dev"] => true,
        _ => {
            eprintln!("usage: chatbox [--dev] | chatbox healthcheck | chatbox migrate");
            return ExitCode::from(2);
        }
    };
    let Some(settings) = startup::load_configuration(dev) else {
        return ExitCode::FAILURE;
    };
    info!("Configuration validated successfully");

    let Some(runtime) = startup::runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "chatbox stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let dev = settings.dev;
    let dev_secret = settings.auth.jwt_secret.clone();
    let algorithm = settings.auth.jwt_algorithms[0];
    let prefix = settings.http.chatbox_path_prefix.clone();
    let app = Application::build(settings).await?;
    if dev {
        print_dev_urls(&app, &dev_secret, algorithm, &prefix)?;
    }
    app.run_until(shutdown_signal()).await
}

/// `--dev` only: ready-to-use URLs with a user and an admin token (24 h), printed to
/// standard output, not to the log.
fn print_dev_urls(
    app: &Application,
    secret: &Secret,
    algorithm: jsonwebtoken::Algorithm,
    prefix: &str,
) -> anyhow::Result<()> {
    let address = app.address();
    let host = if address.ip().is_unspecified() { "127.0.0.1".to_owned() } else { address.ip().to_string() };
    let base = format!("{host}:{}{prefix}", address.port());
    // Signing is the one use of the secret here: it stays wrapped up to the signer.
    let key = secret.expose().as_bytes();
    let user =
        chatbox_http::auth::issue_token(key, algorithm, "dev-user", "Dev User", &["user"], DEV_TOKEN_TTL)?;
    let admin =
        chatbox_http::auth::issue_token(key, algorithm, "dev-admin", "Dev Admin", &["admin"], DEV_TOKEN_TTL)?;
    println!(
        "Chatbox dev mode: chat page http://{base}/ui/?token={user} | admin dashboard http://{base}/ui/admin?token={admin} | user socket ws://{base}/ws?token={user} | admin socket ws://{base}/ws?token={admin} | health http://{base}/healthz (tokens valid 24h)"
    );
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}
