//! The command line: clap's definitions of `serve` and `dev-identity`, the checks clap's derive
//! cannot express, and the parsers of option values. `main.rs` runs what it asks for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, Parser, Subcommand};
use set_my_phone_host::keyvalue::{Backend, MemoryBackend, RedbBackend, RedisBackend};

use crate::dev;

/// The store used without `--store`.
pub(crate) const DEFAULT_STORE: &str = "redb:data/set-my-phone.redb";

/// `--max-memory`'s largest value, in MiB.
pub(crate) const MAX_MAX_MEMORY_MIB: usize = 4096;

/// `--request-timeout`'s largest value, in seconds.
pub(crate) const MAX_REQUEST_TIMEOUT_SECS: f64 = 3600.0;

/// `dev-identity --users`'s largest value.
pub(crate) const MAX_DEV_USERS: usize = 200_000;

/// Reference host for set-my-phone: embeds wasmtime, provides key-value and SMS.
#[derive(Debug, Parser)]
#[command(
    name = "set-my-phone-host",
    version,
    about,
    // A missing command is one line on stderr like every other usage error.
    arg_required_else_help = false,
    after_help = "`set-my-phone-host serve --help` lists serve's options and the environment variables \
                  the component sees."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What the command line asks for.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serves the set-my-phone component over HTTP/1.1 and h2c.
    ///
    /// Serves the set-my-phone component over HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
    /// one port. With --print-sms or --dev, SMS (codes included) are printed to stderr.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(Options),
    /// Prints `export` lines of a throwaway identity, for hosts such as `wasmtime serve`.
    ///
    /// Prints `export` lines (AUTH_ISSUER, AUTH_JWKS, PHONE_CODE_SECRET, TOKEN) that make a
    /// component trust a throwaway key, for hosts such as `wasmtime serve`, and writes one token
    /// per user (users bench-user-1..N of org dev-org) to --tokens-file. For trying out and
    /// benchmarks only.
    DevIdentity {
        /// The issuer URL the component is told to trust (AUTH_ISSUER).
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// How many users get a token (1 to 200000).
        #[arg(long, value_name = "N", default_value = "1", value_parser = parse_users)]
        users: usize,
        /// Where to write the users' tokens, one a line.
        #[arg(long, value_name = "PATH")]
        tokens_file: Option<PathBuf>,
        /// The tokens' signature: EdDSA (Ed25519) or RS256 (RSA-2048, ZITADEL's default).
        #[arg(long, value_name = "ALG", default_value = "EdDSA", ignore_case = true)]
        alg: dev::Algorithm,
    },
}

/// The end of `serve --help`: what the component sees and how the host stops.
pub(crate) const SERVE_AFTER_HELP: &str = "\
Environment:
  The component sees this process's variables that are settings (AUTH_*, PHONE_*, SMS_*,
  TWILIO_*, CORS_*, ZITADEL_*, KV_STORE and KV_CREATE, as docs/configuration.md lists them), and no other: e.g. AUTH_ISSUER and AUTH_JWKS (whom to trust), PHONE_CODE_SECRET,
  SMS_PROVIDER and the provider's SMS_* or TWILIO_* settings; KV_STORE names one more
  key-value store label besides \"default\"; KV_CREATE defaults to swap here (every store of
  this host swaps from absent exactly). Settings from --config-file reach it through
  wasi:config; a variable of this process overrides the file's value.

Stopping:
  SIGTERM or Ctrl-C stops accepting connections, lets requests in flight finish (up to 30 s)
  together with their after-response work (the SMS), and exits 0.

Exit status: 0 after a graceful stop, 2 for bad arguments, 1 for other start-up failures (each
printed as one line on stderr).";

/// `serve`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The component to serve.
    ///
    /// The component to serve, e.g. target/artifacts/set-my-phone-core-initialised.wasm (built by
    /// scripts/build-artifacts) or target/wasm32-wasip2/release/set_my_phone.wasm.
    #[arg(long, value_name = "PATH")]
    pub(crate) wasm: PathBuf,
    /// The address to listen on (port 0: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub(crate) listen: SocketAddr,
    /// Where key-value data lives: redb:PATH, redis://HOST:PORT[/DB] or memory:.
    ///
    /// Where key-value data lives, one of:
    ///   redb:PATH               an embedded file, created with its folders if missing
    ///   redis://HOST:PORT[/DB]  a Redis server, shared by several hosts
    ///   memory:                 this process's memory, gone when it stops
    #[arg(
        long,
        value_name = "URL",
        default_value = DEFAULT_STORE,
        value_parser = StoreUrl::parse,
        verbatim_doc_comment
    )]
    pub(crate) store: StoreUrl,
    /// Seconds the component may take to answer a request (decimals allowed; at most 3600).
    ///
    /// How long the component may take to answer a request, in seconds: more than 0, at most
    /// 3600, decimals allowed. Past it the component is stopped and the client gets 504
    /// DEADLINE_EXCEEDED.
    #[arg(
        long = "request-timeout",
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_request_timeout,
        allow_negative_numbers = true
    )]
    pub(crate) request_timeout: Duration,
    /// MiB of memory one request's component instance may hold (1 to 4096).
    ///
    /// How many MiB of memory one request's component instance may hold, from 1 to 4096. One
    /// that needs more is stopped and the client gets 500 INTERNAL.
    #[arg(
        long = "max-memory",
        value_name = "MIB",
        default_value = "64",
        value_parser = parse_max_memory,
        allow_negative_numbers = true
    )]
    pub(crate) max_memory: usize, // In bytes.
    /// Requests one component instance serves, one after the other, before it is dropped (1: a
    /// fresh instance per request).
    ///
    /// How many requests one component instance serves, one after the other, before it is
    /// dropped: at least 1 (a fresh instance per request, the slowest and most isolated). An
    /// instance is dropped sooner when it traps, misses its deadline or runs out of memory, and
    /// --max-memory counts all its requests together. Like wasmtime serve's option of the same
    /// name.
    #[arg(
        long = "max-instance-reuse-count",
        value_name = "N",
        default_value = "1000",
        value_parser = parse_reuse_count,
        allow_negative_numbers = true
    )]
    pub(crate) max_instance_reuse_count: u32,
    /// Seconds an idle component instance is kept for the next requests (decimals allowed).
    ///
    /// How long an idle component instance is kept for the next requests before it is dropped
    /// and its memory returned, in seconds: 0 to 3600, decimals allowed. At most 32 are kept.
    #[arg(
        long = "idle-instance-timeout",
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_idle_timeout,
        allow_negative_numbers = true
    )]
    pub(crate) idle_instance_timeout: Duration,
    /// Development mode: trusts a throwaway key and prints a ready token; never in production.
    ///
    /// Development mode: trusts a new throwaway signing key (instead of AUTH_ISSUER/AUTH_JWKS)
    /// and prints a ready token and example requests. Works with every store; tokens of an
    /// earlier run stop working after a restart. Never use it in production.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Prints each SMS, number and code included, to stderr instead of delivering it (local runs).
    ///
    /// For the core alone (which imports the SMS interface from the host): each message is printed
    /// to stderr as `sms #N to NUMBER (...): code CODE: TEXT` and counts as delivered. Implied by
    /// --dev. Without either, the core alone cannot deliver codes and each delivery fails with a
    /// reason that says so; the composed artifacts deliver through their own provider.
    #[arg(long)]
    pub(crate) print_sms: bool,
    /// Profiling: `perfmap` names the guest's functions for `perf` (/tmp/perf-PID.map).
    ///
    /// `perfmap` writes /tmp/perf-<pid>.map as wasmtime serve's --profile=perfmap does, so that
    /// `perf record -g -p PID` then `perf report` name the component's Rust functions. Off by
    /// default.
    #[arg(long, value_name = "STRATEGY", value_parser = ["perfmap"])]
    pub(crate) profile: Option<String>,
    /// With --dev: also writes the token to this file.
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
    /// Where to serve /healthz, /readyz and /metrics for operators (off without it).
    ///
    /// Serves, apart from the API: GET /healthz (200 while the process runs), GET /readyz (200
    /// when the store answers a read within 800 ms and the host is not stopping, else 503 with
    /// the reason) and GET /metrics (Prometheus). Off by default; port 0: a free port.
    #[arg(long = "admin-listen", value_name = "ADDR", value_parser = parse_listen)]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// Settings (secrets too) from a file that only its owner may read (chmod 600).
    ///
    /// Settings, secrets too, from a file that only its owner may read (chmod 600; another
    /// mode is refused): NAME=value lines in either spelling (PHONE_CODE_SECRET or
    /// phone_code_secret), `#` comments, optional quotes. The component reads them through
    /// wasi:config; a variable of this process with the same name overrides the file.
    #[arg(long = "config-file", value_name = "PATH")]
    pub(crate) config_file: Option<PathBuf>,
}

impl Cli {
    /// Parses `args` (the program name first), with the checks clap's derive cannot express.
    pub(crate) fn try_parse_args<I>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator,
        I::Item: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        if let Command::Serve(options) = &cli.command
            && options.token_file.is_some()
            && !options.dev
        {
            return Err(Self::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                "--token-file only goes with --dev",
            ));
        }
        Ok(cli)
    }
}

/// Where key-value data lives (`--store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    Memory,
    Redb(PathBuf),
    Redis(String),
}

impl StoreUrl {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        if url == "memory:" || url == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(path) = url.strip_prefix("redb:") {
            if path.is_empty() {
                bail!("redb: needs a file path, e.g. redb:data/set-my-phone.redb");
            }
            return Ok(Self::Redb(PathBuf::from(path)));
        }
        if url.starts_with("redis://") {
            return Ok(Self::Redis(url.to_owned()));
        }
        if url.starts_with("rediss://") {
            bail!("TLS to Redis (rediss://) is not supported; use redis://");
        }
        bail!("not a store: use redb:PATH, redis://HOST:PORT or memory:")
    }

    /// Opens the store; a Redis that does not answer yet is only a warning.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryBackend::new()),
            Self::Redb(path) => Arc::new(RedbBackend::open(path)?),
            Self::Redis(url) => {
                let backend = RedisBackend::connect(url)?;
                if let Err(err) = backend.ping().await {
                    tracing::warn!(
                        message = "the store does not answer yet; requests answer 503 until it does",
                        store = %self,
                        error = %err
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
            Self::Redis(url) => write!(f, "Redis {}", without_password(url)),
        }
    }
}

/// `url` with the password of its user part (`redis://user:password@host`) masked.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// `--listen ADDR`.
pub(crate) fn parse_listen(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.parse()
        .ok()
        .context("not an address like 127.0.0.1:8080")
}

/// `--request-timeout SECS`: more than 0, at most an hour.
pub(crate) fn parse_request_timeout(secs: &str) -> anyhow::Result<Duration> {
    secs.parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0 && *secs <= MAX_REQUEST_TIMEOUT_SECS)
        .map(Duration::from_secs_f64)
        .context("not a number of seconds more than 0 and at most 3600")
}

/// `--max-memory MIB`, in bytes.
pub(crate) fn parse_max_memory(mib: &str) -> anyhow::Result<usize> {
    mib.parse::<usize>()
        .ok()
        .filter(|mib| (1..=MAX_MAX_MEMORY_MIB).contains(mib))
        .map(|mib| mib << 20)
        .context("not a whole number of MiB from 1 to 4096")
}

/// `--max-instance-reuse-count N`: at least 1.
pub(crate) fn parse_reuse_count(n: &str) -> anyhow::Result<u32> {
    match n.parse::<u32>() {
        Ok(0) => bail!("must be at least 1 (1: a fresh instance per request)"),
        Ok(n) => Ok(n),
        Err(_) => bail!("not a whole number of requests from 1 to {}", u32::MAX),
    }
}

/// `--idle-instance-timeout SECS`: 0 to an hour.
pub(crate) fn parse_idle_timeout(secs: &str) -> anyhow::Result<Duration> {
    secs.parse::<f64>()
        .ok()
        .filter(|secs| (0.0..=MAX_REQUEST_TIMEOUT_SECS).contains(secs))
        .map(Duration::from_secs_f64)
        .context("not a number of seconds from 0 to 3600")
}

/// `dev-identity --users N`.
pub(crate) fn parse_users(n: &str) -> anyhow::Result<usize> {
    n.parse()
        .ok()
        .filter(|n| (1..=MAX_DEV_USERS).contains(n))
        .context("not a number from 1 to 200000")
}

/// A command-line error as one line: clap's message without its tips and usage, which follow
/// the first blank line.
pub(crate) fn usage_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let message = text.split("\n\n").next().unwrap_or_default();
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::one_line;

    /// `line` (words split on spaces) as the host's command line.
    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("set-my-phone-host").chain(line.split_whitespace()))
    }

    /// `serve`'s options for `line`, which must parse.
    fn serve_options(line: &str) -> Options {
        match parse(line) {
            Ok(Cli {
                command: Command::Serve(options),
            }) => options,
            other => panic!("{line:?} does not parse as serve: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_help_names_the_variables_the_component_sees() {
        // How the help names the variables passed: every setting starts with one of these or
        // is KV_STORE or KV_CREATE.
        const PASSED_PREFIXES: [&str; 6] =
            ["AUTH_", "PHONE_", "SMS_", "TWILIO_", "CORS_", "ZITADEL_"];
        for passed in PASSED_PREFIXES.map(|prefix| format!("{prefix}*")) {
            assert!(SERVE_AFTER_HELP.contains(&passed), "{passed}");
        }
        assert!(SERVE_AFTER_HELP.contains("KV_STORE") && SERVE_AFTER_HELP.contains("KV_CREATE"));
        // Every setting is covered by what the help names.
        for setting in set_my_phone_wire::settings::SETTINGS {
            assert!(
                ["KV_STORE", "KV_CREATE"].contains(&setting.name)
                    || PASSED_PREFIXES.iter().any(|p| setting.name.starts_with(p)),
                "{}",
                setting.name
            );
        }
    }

    #[test]
    fn logged_store_urls_hold_no_password() {
        assert_eq!(
            without_password("redis://:s3cret@10.0.0.1:6379/2"),
            "redis://:***@10.0.0.1:6379/2"
        );
        assert_eq!(
            without_password("redis://app:s3cret@redis:6379"),
            "redis://app:***@redis:6379"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let shown = StoreUrl::Redis("redis://:s3cret@h:1".into()).to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_admin_listener_is_off_unless_asked() {
        assert_eq!(serve_options("serve --wasm x.wasm").admin_listen, None);
        let options = serve_options("serve --wasm x.wasm --admin-listen 127.0.0.1:9090");
        assert_eq!(
            options.admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        assert!(parse("serve --wasm x.wasm --admin-listen localhost:9090").is_err());
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
        let options = serve_options("serve --wasm x.wasm");
        assert_eq!(
            options.store,
            StoreUrl::Redb(PathBuf::from("data/set-my-phone.redb"))
        );
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(!options.dev);
        let options = serve_options("serve --wasm x.wasm --store memory: --listen 127.0.0.1:0");
        assert_eq!(options.store, StoreUrl::Memory);
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert!(parse("serve --wasm x.wasm --store nope").is_err());
        assert!(parse("serve --wasm x.wasm --listen localhost").is_err());
        for help in [
            "--help",
            "-h",
            "help",
            "serve --help",
            "dev-identity --help",
        ] {
            let err = parse(help).expect_err(help);
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{help}");
        }
    }

    #[test]
    fn guest_limits() {
        let options = serve_options("serve --wasm x.wasm");
        assert_eq!(options.request_timeout, Duration::from_secs(10));
        assert_eq!(options.max_memory, 64 * 1024 * 1024);
        let options = serve_options("serve --wasm x.wasm --request-timeout 1.5 --max-memory 16");
        assert_eq!(options.request_timeout, Duration::from_millis(1500));
        assert_eq!(options.max_memory, 16 * 1024 * 1024);
        let options = serve_options("serve --wasm x.wasm --request-timeout 3600 --max-memory 4096");
        assert_eq!(options.request_timeout, Duration::from_secs(3600));
        assert_eq!(options.max_memory, 4096 * 1024 * 1024);
        for bad in ["0", "-1", "nan", "inf", "3601", "ten", ""] {
            let line = format!("serve --wasm x.wasm --request-timeout {bad}");
            assert!(parse(&line).is_err(), "--request-timeout {bad:?}");
        }
        for bad in ["0", "4097", "1.5", "-1", "64MiB"] {
            let line = format!("serve --wasm x.wasm --max-memory {bad}");
            assert!(parse(&line).is_err(), "--max-memory {bad:?}");
        }
    }

    #[test]
    fn instance_reuse() {
        let options = serve_options("serve --wasm x.wasm");
        assert_eq!(options.max_instance_reuse_count, 1000);
        assert_eq!(options.idle_instance_timeout, Duration::from_secs(10));
        let line = "serve --wasm x.wasm --max-instance-reuse-count 1 --idle-instance-timeout 0.5";
        let options = serve_options(line);
        assert_eq!(options.max_instance_reuse_count, 1);
        assert_eq!(options.idle_instance_timeout, Duration::from_millis(500));
        let options = serve_options("serve --wasm x.wasm --idle-instance-timeout 0");
        assert_eq!(options.idle_instance_timeout, Duration::ZERO);
        for bad in ["0", "-1", "1.5", "4294967296", "many", ""] {
            let line = format!("serve --wasm x.wasm --max-instance-reuse-count {bad}");
            assert!(parse(&line).is_err(), "--max-instance-reuse-count {bad:?}");
        }
        for bad in ["-1", "3601", "nan", "soon"] {
            let line = format!("serve --wasm x.wasm --idle-instance-timeout {bad}");
            assert!(parse(&line).is_err(), "--idle-instance-timeout {bad:?}");
        }
    }

    #[test]
    fn dev_mode_and_its_token_file() {
        let options = serve_options("serve --wasm x.wasm --dev --token-file t");
        assert!(options.dev);
        assert_eq!(options.token_file, Some(PathBuf::from("t")));
        assert!(parse("serve --wasm x.wasm --token-file t").is_err());
        assert!(parse("serve --dev").is_err(), "--wasm is required");
    }

    #[test]
    fn dev_identity_options() {
        let Ok(Cli {
            command:
                Command::DevIdentity {
                    issuer,
                    users,
                    tokens_file,
                    alg,
                },
        }) = parse("dev-identity --issuer https://dev.invalid")
        else {
            panic!("parses");
        };
        assert_eq!(
            (issuer.as_str(), users, tokens_file, alg),
            ("https://dev.invalid", 1, None, dev::Algorithm::EdDsa)
        );
        for (line, expected) in [
            ("--alg RS256", dev::Algorithm::Rs256),
            ("--alg rs256", dev::Algorithm::Rs256),
            ("--alg EdDSA", dev::Algorithm::EdDsa),
        ] {
            let line = format!("dev-identity --issuer https://dev.invalid {line}");
            assert!(
                matches!(parse(&line), Ok(Cli { command: Command::DevIdentity { alg, .. } }) if alg == expected),
                "{line}"
            );
        }
        for bad in ["HS256", "none", "ES256", ""] {
            let line = format!("dev-identity --issuer https://dev.invalid --alg {bad}");
            assert!(parse(&line).is_err(), "--alg {bad:?}");
        }
        let line = "dev-identity --issuer https://b.invalid --users 200000 --tokens-file t";
        assert!(matches!(
            parse(line),
            Ok(Cli {
                command: Command::DevIdentity {
                    users: 200_000,
                    tokens_file: Some(_),
                    ..
                }
            })
        ));
        assert!(parse("dev-identity").is_err(), "--issuer is required");
        for bad in ["0", "200001", "x"] {
            let line = format!("dev-identity --issuer https://dev.invalid --users {bad}");
            assert!(parse(&line).is_err(), "--users {bad:?}");
        }
    }

    #[test]
    fn usage_errors_are_one_line_naming_the_option() {
        for (line, option) in [
            (
                "serve --wasm x.wasm --request-timeout 0",
                "--request-timeout",
            ),
            ("serve --wasm x.wasm --max-memory 4097", "--max-memory"),
            (
                "serve --wasm x.wasm --max-instance-reuse-count 0",
                "--max-instance-reuse-count",
            ),
            ("serve --wasm x.wasm --store sqlite:x.db", "--store"),
            ("serve --wasm x.wasm --bogus", "--bogus"),
            ("serve --wasm x.wasm --token-file t", "--token-file"),
            ("serve --wasm x.wasm --listen localhost", "--listen"),
            ("", "subcommand"),
            ("serve --store memory:", "--wasm"),
            (
                "dev-identity --issuer https://dev.invalid --users 0",
                "--users",
            ),
            (
                "dev-identity --issuer https://dev.invalid --alg HS256",
                "--alg",
            ),
        ] {
            let err = parse(line).expect_err(line);
            let message = usage_error_line(&err);
            assert!(!message.contains('\n'), "{line}: {message}");
            assert!(message.contains(option), "{line}: {message}");
        }
    }

    #[test]
    fn errors_print_on_one_line() {
        let err = anyhow::anyhow!("inner\n  detail").context("outer");
        assert_eq!(one_line(&err), "outer: inner detail");
    }
}
