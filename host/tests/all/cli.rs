//! The `set-my-phone-host` command line, run as the built binary: `--help` documents every option
//! and what the component sees, and a bad argument is one line on stderr and exit status 2.
//!
//! These need neither the component nor Redis: nothing here gets as far as serving.
#![expect(
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_set-my-phone-host");

/// Every option of `serve`, as docs/hosts.md and the scripts use them.
const SERVE_OPTIONS: [&str; 8] = [
    "--wasm",
    "--listen",
    "--store",
    "--request-timeout",
    "--max-memory",
    "--dev",
    "--token-file",
    "--profile",
];

/// The process variables the component sees: the prefixes (as `PREFIX*`) and a name.
const PASSED_VARIABLES: [&str; 5] = ["AUTH_*", "PHONE_*", "SMS_*", "TWILIO_*", "KV_STORE"];

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the host binary")
}

fn stdout_of_success(args: &[&str]) -> String {
    let output = run(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn serve_help_documents_every_option_and_what_the_component_sees() {
    let help = stdout_of_success(&["serve", "--help"]);
    for option in SERVE_OPTIONS {
        assert!(help.contains(option), "{option} is missing:\n{help}");
    }
    for variable in PASSED_VARIABLES {
        assert!(help.contains(variable), "{variable} is missing:\n{help}");
    }
    // The defaults, the store URL forms and the shutdown.
    for text in [
        "[default: 127.0.0.1:8080]",
        "[default: redb:data/set-my-phone.redb]",
        "[default: 10]",
        "[default: 64]",
        "redb:PATH",
        "redis://HOST:PORT",
        "memory:",
        "3600",
        "4096",
        "SIGTERM",
    ] {
        assert!(help.contains(text), "{text:?} is missing:\n{help}");
    }
    // `-h` is the summary: every option still, and the variables.
    let summary = stdout_of_success(&["serve", "-h"]);
    for text in SERVE_OPTIONS.iter().chain(&PASSED_VARIABLES) {
        assert!(summary.contains(text), "{text} is missing:\n{summary}");
    }
}

#[test]
fn the_other_helps_list_the_commands_and_dev_identity_options() {
    for args in [&["--help"][..], &["help"], &["-h"]] {
        let help = stdout_of_success(args);
        for text in ["serve", "dev-identity", "serve --help"] {
            assert!(help.contains(text), "{args:?}: {text} is missing:\n{help}");
        }
    }
    let help = stdout_of_success(&["dev-identity", "--help"]);
    for option in ["--issuer", "--users", "--tokens-file", "[default: 1]"] {
        assert!(help.contains(option), "{option} is missing:\n{help}");
    }
}

#[test]
fn a_bad_argument_is_one_line_naming_it_and_exit_status_2() {
    for (args, named) in [
        (&["serve", "--wasm", "x.wasm", "--bogus"][..], "--bogus"),
        (
            &["serve", "--wasm", "x.wasm", "--request-timeout", "0"],
            "--request-timeout",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--request-timeout", "3601"],
            "--request-timeout",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--request-timeout", "-1"],
            "--request-timeout",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--max-memory", "4097"],
            "--max-memory",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--max-memory", "1.5"],
            "--max-memory",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--store", "sqlite:x.db"],
            "--store",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--listen", "localhost"],
            "--listen",
        ),
        (
            &["serve", "--wasm", "x.wasm", "--token-file", "t"],
            "--token-file",
        ),
        (&["serve", "--store", "memory:"], "--wasm"),
        (
            &["serve", "--wasm", "x.wasm", "--profile", "jitdump"],
            "--profile",
        ),
        (
            &[
                "dev-identity",
                "--issuer",
                "https://x.invalid",
                "--users",
                "0",
            ],
            "--users",
        ),
        (&["dev-identity"], "--issuer"),
        (&["frobnicate"], "frobnicate"),
        (&[], "subcommand"),
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: not one line:\n{stderr}");
        assert!(
            stderr.contains(named),
            "{args:?} does not name {named}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    }
}
