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
    ///   set-my-phone.wasm — core + SMS provider, pre-initialised; imports only wasi:* (key-value
    ///     from the host: Spin, the reference host);
    ///   set-my-phone-wasmtime-serve.wasm — core + SMS provider + file-backed key-value,
    ///     pre-initialised (for `wasmtime serve -Scli --dir DATA::/data`);
    ///   set-my-phone-wasmtime-serve-slow.wasm — the same without pre-initialisation (the
    ///     benchmark's baseline);
    ///   set-my-phone-core-initialised.wasm — the pre-initialised core alone (imports key-value
    ///     and sms: the reference host provides both).
    #[command(verbatim_doc_comment)]
    Artifacts(Options),
}

#[derive(clap::Args)]
struct Options {
    /// The core component (target/wasm32-wasip2/release/set_my_phone.wasm).
    #[arg(long, value_name = "CORE.wasm")]
    core: PathBuf,
    /// The SMS provider component (adapters/sms-provider).
    #[arg(long, value_name = "SMS.wasm")]
    sms: PathBuf,
    /// The file-backed key-value component (adapters/kv-file).
    #[arg(long, value_name = "KV.wasm")]
    kv: PathBuf,
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
    // Wizer snapshots flat components only, so the core is pre-initialised before composing.
    let core = std::fs::read(&options.core)
        .with_context(|| format!("cannot read {}", options.core.display()))?;
    let ready = options.out.join("set-my-phone-core-initialised.wasm");
    write(
        &options.out,
        "set-my-phone-core-initialised.wasm",
        &set_my_phone_host::preinit::preinitialize(&core).await?,
    )?;
    let slow = compose::plug(&options.core, &[&options.sms, &options.kv])?;
    write(&options.out, "set-my-phone-wasmtime-serve-slow.wasm", &slow)?;
    write(
        &options.out,
        "set-my-phone.wasm",
        &compose::plug(&ready, &[&options.sms])?,
    )?;
    let serve = compose::plug(&ready, &[&options.sms, &options.kv])?;
    write(&options.out, "set-my-phone-wasmtime-serve.wasm", &serve)?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Artifacts(options) = Cli::parse().command;
    match artifacts(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
