//! `set-my-phone-tools artifacts`: composes the built components into the shipped artifacts
//! and pre-initialises them, so hosts we did not write run them as they are.

mod compose;

use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str =
    "usage: set-my-phone-tools artifacts --core CORE.wasm --sms SMS.wasm --kv KV.wasm --out DIR

Writes into DIR:
  set-my-phone.wasm                core + SMS provider, pre-initialised; imports only wasi:*
                                   (key-value from the host: Spin, the reference host)
  set-my-phone-wasmtime-serve.wasm core + SMS provider + file-backed key-value, pre-initialised
                                   (for `wasmtime serve -Scli --dir DATA::/data`)
  set-my-phone-wasmtime-serve-slow.wasm  the same without pre-initialisation (benchmark baseline)
  set-my-phone-core-initialised.wasm     the pre-initialised core alone (imports key-value and
                                   sms: the reference host provides both, SMS printed)";

struct Options {
    core: PathBuf,
    sms: PathBuf,
    kv: PathBuf,
    out: PathBuf,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    if args.next().as_deref() != Some("artifacts") {
        bail!("expected the command `artifacts`");
    }
    let (mut core, mut sms, mut kv, mut out) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--core" => &mut core,
            "--sms" => &mut sms,
            "--kv" => &mut kv,
            "--out" => &mut out,
            other => bail!("unknown option {other:?}"),
        };
        *slot = Some(PathBuf::from(
            args.next()
                .with_context(|| format!("{flag} needs a path"))?,
        ));
    }
    Ok(Options {
        core: core.context("missing --core")?,
        sms: sms.context("missing --sms")?,
        kv: kv.context("missing --kv")?,
        out: out.context("missing --out")?,
    })
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
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match artifacts(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
