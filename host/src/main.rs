//! `set-my-phone-host serve`: serves the core on an embedded file store (or Redis, or memory), with
//! SMS printed to stderr with `--print-sms` or `--dev` (otherwise the core alone cannot deliver); stops
//! gracefully on SIGTERM or Ctrl-C. `dev-identity` prints a throwaway identity for other hosts. The
//! command line (`cli.rs`) is clap's; `--help` documents it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use set_my_phone_host::config_store::read_config_file;
use set_my_phone_host::sms::{LogSms, NoSms};
use set_my_phone_host::{ConfigStore, HostBuilder};

mod cli;
mod dev;
mod logs;

use cli::{Cli, Command, Options, usage_error_line};

/// Prints the development identity as `export NAME='value'` lines (values hold no `'`).
fn dev_identity(
    issuer: &str,
    users: usize,
    tokens_file: Option<&PathBuf>,
    alg: dev::Algorithm,
) -> anyhow::Result<()> {
    let names: Vec<String> = (1..=users).map(|n| format!("bench-user-{n}")).collect();
    let identity = dev::identity_for(issuer, &names, alg)?;
    for (name, value) in &identity.env {
        println!("export {name}='{value}'");
    }
    println!("export TOKEN='{}'", identity.token());
    if let Some(path) = tokens_file {
        std::fs::write(path, identity.tokens.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The settings among this process's variables: the wire crate's, and any `SMS_*` (the
/// settings of an SMS provider of your own, docs/sms-providers.md).
fn passed_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| {
            set_my_phone_wire::settings::is_env_name(name) || name.starts_with("SMS_")
        })
        .collect()
}

async fn serve(options: Options) -> anyhow::Result<()> {
    // Everything that can be wrong with the configuration fails here, before serving.
    let config_values = match &options.config_file {
        Some(path) => read_config_file(path).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let backend = options.store.open().await?;
    if !options.wasm.is_file() {
        bail!(
            "component {} not found (run scripts/build-component)",
            options.wasm.display()
        );
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let mut env = passed_env();
    let base_url = format!("http://{addr}");
    let mut dev_token = None;
    if options.dev {
        let identity = dev::identity(&base_url)?;
        env.retain(|(name, _)| !identity.env.iter().any(|(dev_name, _)| dev_name == name));
        let token = identity.token().to_owned();
        env.extend(identity.env);
        if let Some(path) = &options.token_file {
            std::fs::write(path, &token)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        dev_token = Some(token);
    }
    let mut stores = vec!["default".to_owned()];
    let label = set_my_phone_wire::settings::resolve(
        "KV_STORE",
        |name| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        |key| {
            config_values
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        },
    );
    // The component's store first: /readyz probes it and the admin listener's SMS-pumping
    // blocks are read from it.
    if let Some(label) = label
        && !stores.contains(&label)
    {
        stores.insert(0, label);
    }
    let mut builder = HostBuilder::new(&options.wasm);
    if let Some(addr) = options.admin_listen {
        builder = builder.admin_listen(addr);
    }
    if let Some(token) = &dev_token {
        builder = builder.front_page(dev::page(token));
    }
    let host = builder
        .envs(env)
        .config_store(ConfigStore::new(config_values))
        .stores(stores)
        .backend(backend)
        .sms(if options.dev || options.print_sms {
            Arc::new(LogSms::new())
        } else {
            Arc::new(NoSms)
        })
        .request_timeout(options.request_timeout)
        .max_memory(options.max_memory)
        .max_instance_reuse_count(options.max_instance_reuse_count)
        .idle_instance_timeout(options.idle_instance_timeout)
        .perfmap(options.profile.is_some())
        .build()?;
    let admin_url = host.admin_addr().map(|addr| format!("http://{addr}"));
    tracing::info!(
        message = "serving",
        url = base_url.as_str(),
        admin_url = admin_url.as_deref(),
        wasm = %options.wasm.display(),
        store = %options.store,
        request_timeout_secs = options.request_timeout.as_secs_f64(),
        max_memory_mib = options.max_memory >> 20,
        max_instance_reuse_count = options.max_instance_reuse_count,
    );
    if let Some(token) = &dev_token {
        eprintln!("{}", dev::instructions(&base_url, token));
    }
    let host = Arc::new(host);
    let stop = async {
        stop_signal().await;
        tracing::info!(message = "stopping: no new connections; finishing requests in flight");
    };
    Arc::clone(&host).serve(listener, stop).await?;
    // Work after the responses (SMS delivery) ends within the guest time limit.
    host.idle().await;
    tracing::info!(message = "stopped");
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(message = "cannot wait for Ctrl-C", error = %err);
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(message = "cannot wait for SIGTERM", error = %err);
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// `err` with its causes on one line, so that start-up failures are one clear line on stderr.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        // `--help` and `--version` are "errors" printed on stdout.
        Err(err) if !err.use_stderr() => {
            return match err.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Err(err) => {
            eprintln!(
                "set-my-phone-host: {} (see set-my-phone-host --help)",
                usage_error_line(&err)
            );
            return ExitCode::from(2);
        }
    };
    let options = match cli.command {
        Command::Serve(options) => {
            // The host's own logs become JSON lines (`logs.rs`); what `dev-identity` prints,
            // `--dev`'s instructions, the SMS of `LogSms` and start-up errors stay plain text.
            logs::init();
            options
        }
        Command::DevIdentity {
            issuer,
            users,
            tokens_file,
            alg,
        } => {
            return match dev_identity(&issuer, users, tokens_file.as_ref(), alg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("set-my-phone-host: error: {}", one_line(&err));
                    ExitCode::FAILURE
                }
            };
        }
    };
    match serve(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("set-my-phone-host: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}
