//! `set-my-phone-host serve`: runs the core locally with an in-memory store and SMS printed to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use set_my_phone_host::HostBuilder;
use set_my_phone_host::keyvalue::MemoryBackend;
use set_my_phone_host::sms::LogSms;

mod dev;

const USAGE: &str =
    "usage: set-my-phone-host serve --wasm PATH [--listen ADDR] [--dev [--token-file PATH]]

Serves the set-my-phone component over HTTP/1.1 and h2c (default address 127.0.0.1:8080).
Key-value data lives in memory; SMS, codes included, are printed to stderr.
The component sees the variables AUTH_*, PHONE_*, SMS_*, TWILIO_* and KV_STORE of this process.
--dev trusts a throwaway signing key instead of AUTH_ISSUER/AUTH_JWKS and prints a token
(also written to --token-file). Never use it in production.";

/// Prefixes of the process variables passed to the component.
const PASSED_PREFIXES: [&str; 4] = ["AUTH_", "PHONE_", "SMS_", "TWILIO_"];

/// Names of further process variables passed to the component.
const PASSED_NAMES: [&str; 1] = ["KV_STORE"];

struct Options {
    wasm: PathBuf,
    listen: SocketAddr,
    dev: bool,
    token_file: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some(other) => bail!("unknown command {other:?}"),
        None => bail!("missing command"),
    }
    let mut wasm = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut dev = false;
    let mut token_file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--wasm" => wasm = Some(PathBuf::from(args.next().context("--wasm needs a path")?)),
            "--listen" => {
                let addr = args.next().context("--listen needs an address")?;
                listen = addr.parse().with_context(|| {
                    format!("--listen {addr:?} is not an address like 127.0.0.1:8080")
                })?;
            }
            "--dev" => dev = true,
            "--token-file" => {
                token_file = Some(PathBuf::from(
                    args.next().context("--token-file needs a path")?,
                ));
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    if token_file.is_some() && !dev {
        bail!("--token-file only goes with --dev");
    }
    Ok(Options {
        wasm: wasm.context("missing --wasm PATH")?,
        listen,
        dev,
        token_file,
    })
}

fn passed_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| {
            PASSED_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || PASSED_NAMES.contains(&name.as_str())
        })
        .collect()
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let mut env = passed_env();
    let base_url = format!("http://{}", options.listen);
    let mut dev_token = None;
    if options.dev {
        let identity = dev::identity(&base_url)?;
        env.retain(|(name, _)| !identity.env.iter().any(|(dev_name, _)| dev_name == name));
        env.extend(identity.env);
        if let Some(path) = &options.token_file {
            std::fs::write(path, &identity.token)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        dev_token = Some(identity.token);
    }
    let mut stores = vec!["default".to_owned()];
    if let Some((_, label)) = env.iter().find(|(name, _)| name == "KV_STORE")
        && !stores.contains(label)
    {
        stores.push(label.clone());
    }
    let host = HostBuilder::new(&options.wasm)
        .envs(env)
        .stores(stores)
        .backend(Arc::new(MemoryBackend::new()))
        .sms(Arc::new(LogSms::new()))
        .build()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    eprintln!(
        "serving {} on http://{}",
        options.wasm.display(),
        listener.local_addr()?
    );
    if let Some(token) = &dev_token {
        eprintln!("{}", dev::instructions(&base_url, token));
    }
    let host = Arc::new(host);
    Arc::clone(&host).serve(listener, stop_signal()).await?;
    eprintln!("stopping: waiting for running requests");
    host.idle().await;
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("cannot wait for Ctrl-C ({err})");
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
                eprintln!("cannot wait for SIGTERM ({err})");
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

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
