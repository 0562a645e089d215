//! `set-my-phone-tools artifacts`: composes the built components into the shipped artifacts
//! and pre-initialises them, so hosts we did not write run them as they are.

mod compose;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Build tooling for set-my-phone.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Composes the built components into the shipped artifacts and pre-initialises them.
    ///
    /// Writes into OUT:
    ///   set-my-phone.wasm — the core with the SMS provider inside, pre-initialised; imports
    ///     only wasi:* (key-value from the host: Spin, the reference host);
    ///   set-my-phone-wasmtime-serve.wasm — the core with the SMS provider and the file-backed
    ///     key-value inside, settings from the environment only, pre-initialised: one component
    ///     (for `wasmtime serve -Scli --dir DATA::/data` with settings as --env);
    ///   set-my-phone-wasmtime-serve-config.wasm — the same importing wasi:config, with the bridge
    ///     to wasmtime serve's (settings as `-Sconfig -Sconfig-var=NAME=VALUE`, --env overriding);
    ///   set-my-phone-wasmtime-serve-slow.wasm — the same without pre-initialisation (the
    ///     benchmark's baseline);
    ///   set-my-phone-core-initialised.wasm — the pre-initialised core alone (imports key-value
    ///     and sms: the reference host provides both).
    #[command(verbatim_doc_comment)]
    Artifacts(Options),
    /// Plugs an SMS provider of your own (a component exporting set-my-phone:sms/sender, e.g.
    /// examples/sms-provider-vonage) into the pre-initialised core: the result imports only
    /// wasi:*, like set-my-phone.wasm (docs/sms-providers.md).
    Plug(PlugOptions),
}

#[derive(clap::Args)]
struct PlugOptions {
    /// The pre-initialised core (target/artifacts/set-my-phone-core-initialised.wasm).
    #[arg(long, value_name = "CORE.wasm")]
    core: PathBuf,
    /// The provider component.
    #[arg(long, value_name = "SMS.wasm")]
    sms: PathBuf,
    /// The composed component to write.
    #[arg(long, value_name = "OUT.wasm")]
    out: PathBuf,
}

fn plug(options: PlugOptions) -> anyhow::Result<()> {
    let core = compose::read(&options.core)?;
    let sms = compose::read(&options.sms)?;
    // The interface is versioned: a provider of another version would plug into nothing and
    // leave the import open, so say which versions meet instead.
    let sender = |names: Vec<String>| {
        names
            .into_iter()
            .find(|name| name.starts_with("set-my-phone:sms/sender@"))
    };
    let wanted = sender(compose::interfaces("the core", &core)?.0)
        .context("the core imports no set-my-phone:sms/sender: is it the pre-initialised core?")?;
    match sender(compose::interfaces("the SMS provider", &sms)?.1) {
        Some(offered) if offered == wanted => {}
        Some(offered) => anyhow::bail!(
            "the SMS provider exports {offered}, the core imports {wanted}: move the provider \
             to the core's version (docs/sms-providers.md)"
        ),
        None => anyhow::bail!("the SMS provider exports no set-my-phone:sms/sender"),
    }
    let composed = compose::plug(("the core", &core), &[("the SMS provider", &sms)])?;
    std::fs::write(&options.out, &composed)
        .with_context(|| format!("cannot write {}", options.out.display()))?;
    eprintln!(
        "wrote {} ({} KiB)",
        options.out.display(),
        composed.len() / 1024
    );
    Ok(())
}

#[derive(clap::Args)]
struct Options {
    /// The core component (target/wasm32-wasip2/release/set_my_phone.wasm): imports
    /// set-my-phone:sms/sender.
    #[arg(long, value_name = "CORE.wasm")]
    core: PathBuf,
    /// The core built with the SMS provider inside (its `sms-inside` feature).
    #[arg(long, value_name = "CORE.wasm")]
    core_with_provider: PathBuf,
    /// The core built with the SMS provider and the file-backed key-value inside (its
    /// `file-store-inside` feature).
    #[arg(long, value_name = "CORE.wasm")]
    core_with_store: PathBuf,
    /// The same with settings from the environment only (its `standalone` feature).
    #[arg(long, value_name = "CORE.wasm")]
    core_standalone: PathBuf,
    /// The wasi:config bridge for `wasmtime serve -Sconfig` (adapters/config-rc1).
    #[arg(long, value_name = "CONFIG.wasm")]
    config: PathBuf,
    /// The directory to write the artifacts into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {} ({} KiB)", path.display(), bytes.len() / 1024);
    Ok(())
}

async fn artifacts(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let core = compose::read(&options.core)?;
    let with_provider = compose::read(&options.core_with_provider)?;
    let with_store = compose::read(&options.core_with_store)?;
    let standalone = compose::read(&options.core_standalone)?;
    let config = compose::read(&options.config)?;
    // Wizer snapshots flat components only, so each core is pre-initialised before composing.
    // The core that imports its SMS provider is for hosts that give one (the reference host)
    // and for providers of your own (`plug`); the artifacts have the provider (and for
    // `wasmtime serve` the store) inside, since every component composed in is instantiated
    // anew with each fresh instance.
    let preinit = set_my_phone_host::preinit::preinitialize;
    write(
        &options.out,
        "set-my-phone-core-initialised.wasm",
        &preinit(&core).await?,
    )?;
    write(
        &options.out,
        "set-my-phone.wasm",
        &preinit(&with_provider).await?,
    )?;
    write(
        &options.out,
        "set-my-phone-wasmtime-serve.wasm",
        &preinit(&standalone).await?,
    )?;
    // For `wasmtime serve -Sconfig`: the bridge to its wasi:config.
    let ready = preinit(&with_store).await?;
    write(
        &options.out,
        "set-my-phone-wasmtime-serve-config.wasm",
        &compose::plug(
            (
                "the pre-initialised core with its provider and store",
                &ready,
            ),
            &[("config-rc1", &config)],
        )?,
    )?;
    write(
        &options.out,
        "set-my-phone-wasmtime-serve-slow.wasm",
        &standalone,
    )?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Artifacts(options) => artifacts(options).await,
        Command::Plug(options) => plug(options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
