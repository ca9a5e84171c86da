//! `batond`: the IKEv2 gateway daemon.
//!
//! `batond --config FILE` runs the gateway; `batond --config FILE --check` only validates
//! the configuration. Configuration errors print `FILE:LINE:COL: KEY: what is wrong` and
//! exit with status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gateway::config::GatewayConfig;
use tracing_subscriber::EnvFilter;

/// The baton IKEv2 gateway daemon.
#[derive(Debug, Parser)]
#[command(name = "batond", version, about)]
struct Args {
    /// Configuration file (TOML; see docs/configuration.md).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "gen_cluster_key"
    )]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Write a new cluster key (`[cluster] key_file`) to PATH with mode 0600 and exit;
    /// refuses to overwrite. Copy the same file to every node.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["config", "check"])]
    gen_cluster_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.gen_cluster_key {
        return match heartbeat::ClusterKey::generate().write_new_file(path) {
            Ok(()) => {
                println!("{}: new cluster key written (mode 0600)", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("batond: {e}");
                ExitCode::from(1)
            }
        };
    }
    let Some(config_path) = args.config else {
        eprintln!("batond: --config FILE is required");
        return ExitCode::from(2);
    };
    let config = match GatewayConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("batond: configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check {
        println!(
            "{}: OK ({} connection(s), {} secret(s), {} pool(s))",
            config_path.display(),
            config.connections.len(),
            config.secrets.len(),
            config.pools.len()
        );
        return ExitCode::SUCCESS;
    }
    // RUST_LOG wins over the file's log_level.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(config.gateway.log_level.as_deref().unwrap_or("info"))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("batond: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let handle = match gateway::daemon::start(&config_path, None).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("batond: {e}");
                return ExitCode::from(1);
            }
        };
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("batond: cannot handle SIGTERM: {e}");
                    return ExitCode::from(1);
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}
