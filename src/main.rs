use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kms-bridge",
    version,
    about = "AWS KMS API backed by a PKCS#11 token"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the KMS API.
    Serve {
        /// TOML configuration file (environment variables KMS_BRIDGE_* override it).
        #[arg(long, env = "KMS_BRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Drive a KMS endpoint with signed requests and compare with the raw token ceiling.
    Bench(Box<kms_bridge::bench::BenchArgs>),
    /// The bench's null endpoint (the floor experiment; started by `bench --null`).
    #[command(hide = true)]
    NullEndpoint(kms_bridge::bench::null::NullArgs),
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage principals, access keys and identity policies.
    Admin {
        #[arg(long, env = "KMS_BRIDGE_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: kms_bridge::admin::AdminCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of an audit file or directory; report the first bad record.
    Verify { path: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KMS_BRIDGE_LOG")
                // cryptoki logs every mechanism it has no name for while we probe the token.
                .unwrap_or_else(|_| EnvFilter::new("info,cryptoki::mechanism=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Bench(args) = &cli.command {
        return bench(args);
    }
    if let Command::NullEndpoint(args) = &cli.command {
        return null_endpoint(args.clone());
    }
    let config = match &cli.command {
        Command::Serve { config } | Command::Admin { config, .. } => config.clone(),
        Command::Bench(_) | Command::NullEndpoint(_) => None,
        Command::Audit {
            command: AuditCommand::Verify { path },
        } => return audit_verify(path),
    };
    let settings = match kms_bridge::config::Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms-bridge: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kms-bridge: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { .. } => rt.block_on(kms_bridge::serve(settings, shutdown_signal())),
        Command::Admin { command, .. } => rt.block_on(kms_bridge::admin::run(settings, command)),
        Command::Audit { .. } | Command::Bench(_) | Command::NullEndpoint(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &kms_bridge::bench::BenchArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kms-bridge bench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(kms_bridge::bench::cli(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("kms-bridge bench: errors on supported operations (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("kms-bridge bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The null endpoint, on a runtime built as `serve`'s.
fn null_endpoint(args: kms_bridge::bench::null::NullArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kms-bridge null-endpoint: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(kms_bridge::bench::null::serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-bridge null-endpoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn audit_verify(path: &std::path::Path) -> ExitCode {
    match kms_bridge::audit::verify_path(path) {
        Ok(r) => match r.problem {
            None => {
                println!(
                    "ok: {} records in {} file(s), chain intact",
                    r.records, r.files
                );
                ExitCode::SUCCESS
            }
            Some(p) => {
                println!("TAMPERED: {p} ({} records verified before it)", r.records);
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("kms-bridge: cannot read {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
