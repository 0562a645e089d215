//! `set-my-phone-host serve`: serves the core on an embedded file store (or Redis, or memory), with
//! SMS printed to stderr; stops gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use set_my_phone_host::HostBuilder;
use set_my_phone_host::keyvalue::{Backend, MemoryBackend, RedbBackend, RedisBackend};
use set_my_phone_host::sms::LogSms;

mod dev;

const USAGE: &str = "usage: set-my-phone-host serve --wasm PATH [--listen ADDR] [--store URL]
       [--request-timeout SECS] [--max-memory MIB] [--dev [--token-file PATH]]

Serves the set-my-phone component over HTTP/1.1 and h2c (default address 127.0.0.1:8080).
--store picks where key-value data lives:
  redb:PATH                an embedded file, created if missing (default: redb:data/set-my-phone.redb)
  redis://HOST:PORT[/DB]   a Redis server, shared by several hosts
  memory:                  this process's memory, gone when it stops
SMS, codes included, are printed to stderr.
--request-timeout: how long the component may take to answer a request (default 10; decimals
  allowed); past it the component is stopped and the client gets 504 DEADLINE_EXCEEDED.
--max-memory: how many MiB of memory one request's component instance may hold (default 64,
  at most 4096); one that needs more is stopped and the client gets 500 INTERNAL.
The component sees the variables AUTH_*, PHONE_*, SMS_*, TWILIO_* and KV_STORE of this process.
--dev trusts a throwaway signing key instead of AUTH_ISSUER/AUTH_JWKS and prints a token
(also written to --token-file). Never use it in production.
SIGTERM or Ctrl-C stops accepting connections, lets requests in flight finish, and exits 0.

usage: set-my-phone-host dev-identity --issuer URL [--users N] [--tokens-file PATH]
Prints `export` lines (AUTH_ISSUER, AUTH_JWKS, PHONE_CODE_SECRET, TOKEN) that make a component
trust a throwaway key, for hosts such as `wasmtime serve`; writes one token per user (users
bench-user-1..N of org dev-org) to --tokens-file. For trying out and benchmarks only.";

/// The store used without `--store`.
const DEFAULT_STORE: &str = "redb:data/set-my-phone.redb";

/// `--request-timeout` without the option, and its largest value, in seconds.
const DEFAULT_REQUEST_TIMEOUT_SECS: f64 = 10.0;
const MAX_REQUEST_TIMEOUT_SECS: f64 = 3600.0;

/// `--max-memory` without the option, and its largest value, in MiB.
const DEFAULT_MAX_MEMORY_MIB: usize = 64;
const MAX_MAX_MEMORY_MIB: usize = 4096;

/// Prefixes of the process variables passed to the component.
const PASSED_PREFIXES: [&str; 4] = ["AUTH_", "PHONE_", "SMS_", "TWILIO_"];

/// Names of further process variables passed to the component.
const PASSED_NAMES: [&str; 1] = ["KV_STORE"];

/// Where key-value data lives (`--store`).
#[derive(Debug, PartialEq, Eq)]
enum StoreUrl {
    Memory,
    Redb(PathBuf),
    Redis(String),
}

impl StoreUrl {
    fn parse(url: &str) -> anyhow::Result<Self> {
        if url == "memory:" || url == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = url.strip_prefix("redb:") {
            if path.is_empty() {
                bail!("--store redb: needs a file path, e.g. redb:data/set-my-phone.redb");
            }
            return Ok(Self::Redb(PathBuf::from(path)));
        }
        if url.starts_with("redis://") {
            return Ok(Self::Redis(url.to_owned()));
        }
        if url.starts_with("rediss://") {
            bail!("--store {url:?}: TLS to Redis (rediss://) is not supported; use redis://");
        }
        bail!("--store {url:?} is not a store: use redb:PATH, redis://HOST:PORT or memory:")
    }

    /// Opens the store; a Redis that does not answer yet is only a warning.
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryBackend::new()),
            Self::Redb(path) => Arc::new(RedbBackend::open(path)?),
            Self::Redis(url) => {
                let backend = RedisBackend::connect(url)?;
                if let Err(err) = backend.ping().await {
                    eprintln!(
                        "warning: {url} does not answer yet ({err}); requests answer 503 until it does"
                    );
                }
                Arc::new(backend)
            }
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory (lost when the host stops)"),
            Self::Redb(path) => write!(f, "redb file {}", path.display()),
            Self::Redis(url) => write!(f, "Redis {url}"),
        }
    }
}

struct Options {
    wasm: PathBuf,
    listen: SocketAddr,
    store: StoreUrl,
    request_timeout: Duration,
    /// In bytes.
    max_memory: usize,
    dev: bool,
    token_file: Option<PathBuf>,
}

/// `--request-timeout SECS`: more than 0, at most an hour.
fn parse_request_timeout(secs: &str) -> anyhow::Result<Duration> {
    secs.parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0 && *secs <= MAX_REQUEST_TIMEOUT_SECS)
        .map(Duration::from_secs_f64)
        .with_context(|| {
            format!("--request-timeout {secs:?} is not a number of seconds from 0 to 3600")
        })
}

/// `--max-memory MIB`, in bytes.
fn parse_max_memory(mib: &str) -> anyhow::Result<usize> {
    mib.parse::<usize>()
        .ok()
        .filter(|mib| (1..=MAX_MAX_MEMORY_MIB).contains(mib))
        .map(|mib| mib << 20)
        .with_context(|| format!("--max-memory {mib:?} is not a number of MiB from 1 to 4096"))
}

/// What the command line asks for.
enum Command {
    Serve(Options),
    /// `dev-identity --issuer URL [--users N] [--tokens-file PATH]`: prints shell `export`
    /// lines that make a component trust a throwaway key, and writes one token per user.
    DevIdentity {
        issuer: String,
        users: usize,
        tokens_file: Option<PathBuf>,
    },
    Help,
}

fn parse_dev_identity(mut args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    let (mut issuer, mut users, mut tokens_file) = (None, 1, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--issuer" => issuer = Some(args.next().context("--issuer needs a URL")?),
            "--users" => {
                let n = args.next().context("--users needs a number")?;
                users = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .with_context(|| format!("--users {n:?} is not a number from 1 to 10000"))?;
            }
            "--tokens-file" => {
                tokens_file = Some(PathBuf::from(
                    args.next().context("--tokens-file needs a path")?,
                ));
            }
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(Command::DevIdentity {
        issuer: issuer.context("missing --issuer URL")?,
        users,
        tokens_file,
    })
}

/// Prints the development identity as `export NAME='value'` lines (values hold no `'`).
fn dev_identity(issuer: &str, users: usize, tokens_file: Option<&PathBuf>) -> anyhow::Result<()> {
    let names: Vec<String> = (1..=users).map(|n| format!("bench-user-{n}")).collect();
    let identity = dev::identity_for(issuer, &names)?;
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

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Command> {
    match args.next().as_deref() {
        Some("serve") => {}
        Some("dev-identity") => return parse_dev_identity(args),
        Some("--help" | "-h" | "help") => return Ok(Command::Help),
        Some(other) => bail!("unknown command {other:?}"),
        None => bail!("missing command"),
    }
    let mut wasm = None;
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut store = None;
    let mut request_timeout = Duration::from_secs_f64(DEFAULT_REQUEST_TIMEOUT_SECS);
    let mut max_memory = DEFAULT_MAX_MEMORY_MIB << 20;
    let mut dev = false;
    let mut token_file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--wasm" => wasm = Some(PathBuf::from(args.next().context("--wasm needs a path")?)),
            "--store" => {
                store = Some(StoreUrl::parse(
                    &args.next().context("--store needs a URL")?,
                )?);
            }
            "--listen" => {
                let addr = args.next().context("--listen needs an address")?;
                listen = addr.parse().with_context(|| {
                    format!("--listen {addr:?} is not an address like 127.0.0.1:8080")
                })?;
            }
            "--request-timeout" => {
                request_timeout = parse_request_timeout(
                    &args
                        .next()
                        .context("--request-timeout needs a number of seconds")?,
                )?;
            }
            "--max-memory" => {
                max_memory =
                    parse_max_memory(&args.next().context("--max-memory needs a number of MiB")?)?;
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
    let store = match store {
        Some(store) => store,
        None => StoreUrl::parse(DEFAULT_STORE)?,
    };
    Ok(Command::Serve(Options {
        wasm: wasm.context("missing --wasm PATH")?,
        listen,
        store,
        request_timeout,
        max_memory,
        dev,
        token_file,
    }))
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
    // Everything that can be wrong with the configuration fails here, before serving.
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
    if let Some((_, label)) = env.iter().find(|(name, _)| name == "KV_STORE")
        && !stores.contains(label)
    {
        stores.push(label.clone());
    }
    let host = HostBuilder::new(&options.wasm)
        .envs(env)
        .stores(stores)
        .backend(backend)
        .sms(Arc::new(LogSms::new()))
        .request_timeout(options.request_timeout)
        .max_memory(options.max_memory)
        .build()?;
    eprintln!(
        "serving {} on {base_url} (store: {}; each request: {:?} to answer, {} MiB of memory)",
        options.wasm.display(),
        options.store,
        options.request_timeout,
        options.max_memory >> 20
    );
    if let Some(token) = &dev_token {
        eprintln!("{}", dev::instructions(&base_url, token));
    }
    let host = Arc::new(host);
    let stop = async {
        stop_signal().await;
        eprintln!("stopping: no new connections; finishing requests in flight");
    };
    Arc::clone(&host).serve(listener, stop).await?;
    // Work after the responses (SMS delivery) ends within the guest time limit.
    host.idle().await;
    eprintln!("stopped");
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

/// `err` with its causes on one line, so that start-up failures are one clear line on stderr.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Command::Serve(options)) => options,
        Ok(Command::DevIdentity {
            issuer,
            users,
            tokens_file,
        }) => {
            return match dev_identity(&issuer, users, tokens_file.as_ref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("set-my-phone-host: error: {}", one_line(&err));
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!(
                "set-my-phone-host: {} (see set-my-phone-host --help)",
                one_line(&err)
            );
            return ExitCode::from(2);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> impl Iterator<Item = String> {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn store_urls() {
        assert_eq!(StoreUrl::parse("memory:").ok(), Some(StoreUrl::Memory));
        assert_eq!(
            StoreUrl::parse("redb:/var/lib/x.redb").ok(),
            Some(StoreUrl::Redb(PathBuf::from("/var/lib/x.redb")))
        );
        assert_eq!(
            StoreUrl::parse("redis://127.0.0.1:6379").ok(),
            Some(StoreUrl::Redis("redis://127.0.0.1:6379".into()))
        );
        for bad in ["redb:", "sqlite:x.db", "rediss://h:1", "", "file.redb"] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_default_store_is_the_embedded_file() {
        let Ok(Command::Serve(options)) = parse(args("serve --wasm x.wasm")) else {
            panic!("parses");
        };
        assert_eq!(
            options.store,
            StoreUrl::Redb(PathBuf::from("data/set-my-phone.redb"))
        );
        assert!(parse(args("serve --wasm x.wasm --store nope")).is_err());
        assert!(matches!(parse(args("--help")), Ok(Command::Help)));
    }

    #[test]
    fn guest_limits() {
        let Ok(Command::Serve(options)) = parse(args("serve --wasm x.wasm")) else {
            panic!("parses");
        };
        assert_eq!(options.request_timeout, Duration::from_secs(10));
        assert_eq!(options.max_memory, 64 * 1024 * 1024);
        let line = "serve --wasm x.wasm --request-timeout 1.5 --max-memory 16";
        let Ok(Command::Serve(options)) = parse(args(line)) else {
            panic!("parses");
        };
        assert_eq!(options.request_timeout, Duration::from_millis(1500));
        assert_eq!(options.max_memory, 16 * 1024 * 1024);
        for bad in ["0", "-1", "nan", "inf", "3601", "ten", ""] {
            let line = format!("serve --wasm x.wasm --request-timeout {bad}");
            assert!(parse(args(&line)).is_err(), "--request-timeout {bad:?}");
        }
        for bad in ["0", "4097", "1.5", "-1", "64MiB"] {
            let line = format!("serve --wasm x.wasm --max-memory {bad}");
            assert!(parse(args(&line)).is_err(), "--max-memory {bad:?}");
        }
    }

    #[test]
    fn errors_print_on_one_line() {
        let err = anyhow::anyhow!("inner\n  detail").context("outer");
        assert_eq!(one_line(&err), "outer: inner detail");
    }
}
