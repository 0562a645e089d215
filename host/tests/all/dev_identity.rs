//! `set-my-phone-host dev-identity`, run as the built binary: the identity it prints makes the real
//! core (served by the host) accept its tokens, for both algorithms (EdDSA and RS256, ZITADEL's
//! default), each user acting as itself, and nobody else's tokens.
//!
//! They need the pre-initialised core (`scripts/build-artifacts`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly on anything unexpected"
)]

use std::process::{Command, Stdio};

use crate::common::{BIN, HostProcess, PHONE_URL, Scratch, get_phone, put_phone};

const ISSUER: &str = "https://bench.invalid";
const USERS: usize = 3;

/// What `dev-identity` printed and wrote.
struct Printed {
    /// The `export NAME='value'` lines, as pairs.
    exports: Vec<(String, String)>,
    /// The tokens file, one token a line.
    tokens: Vec<String>,
}

impl Printed {
    fn export(&self, name: &str) -> &str {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no export of {name}"))
    }

    /// The host's environment: the printed identity, with the abuse guards off.
    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .exports
            .iter()
            .filter(|(name, _)| name != "TOKEN")
            .cloned()
            .collect();
        env.extend(
            set_my_phone_test_harness::GUARDS_OFF
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        env
    }
}

/// Runs `dev-identity --alg ALG` for `USERS` users.
fn dev_identity(scratch: &Scratch, alg: &str) -> Printed {
    let tokens_file = scratch.path(&format!("tokens-{alg}"));
    let output = Command::new(BIN)
        .args(["dev-identity", "--issuer", ISSUER, "--users"])
        .arg(USERS.to_string())
        .arg("--alg")
        .arg(alg)
        .arg("--tokens-file")
        .arg(&tokens_file)
        .stdin(Stdio::null())
        .output()
        .expect("run dev-identity");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        output.status.success(),
        "dev-identity --alg {alg}: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // What a shell `eval` makes of the lines: export NAME='value'.
    let exports = stdout
        .lines()
        .map(|line| {
            let (name, value) = line
                .strip_prefix("export ")
                .and_then(|rest| rest.split_once('='))
                .unwrap_or_else(|| panic!("not an export line: {line}"));
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("not single-quoted: {line}"));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let tokens = std::fs::read_to_string(&tokens_file)
        .expect("the tokens file")
        .lines()
        .map(str::to_owned)
        .collect();
    Printed { exports, tokens }
}

/// The `alg` of a JWT's header, read without checking anything.
fn header_alg(token: &str) -> String {
    use base64::Engine as _;
    let segment = token.split('.').next().expect("a JWT");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .expect("base64url"),
    )
    .expect("JSON");
    header["alg"].as_str().expect("alg").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_core_accepts_eddsa_and_rs256_dev_tokens_and_only_its_own() {
    let scratch = Scratch::new("dev-identity");
    let eddsa = dev_identity(&scratch, "EdDSA");
    let rs256 = dev_identity(&scratch, "RS256");
    let client = reqwest::Client::new();
    for (alg, printed, other) in [("EdDSA", &eddsa, &rs256), ("RS256", &rs256, &eddsa)] {
        assert_eq!(printed.tokens.len(), USERS, "{alg}");
        assert_eq!(printed.export("TOKEN"), printed.tokens[0], "{alg}");
        assert_eq!(printed.export("AUTH_ISSUER"), ISSUER);
        for token in &printed.tokens {
            assert_eq!(header_alg(token), alg);
        }
        let host = HostProcess::start(
            &crate::common::initialised_core_path(),
            &["--store", "memory:", "--request-timeout", "300"],
            &printed.env(),
        );
        let url = host.url(PHONE_URL);
        for (n, token) in printed.tokens.iter().enumerate() {
            let set = put_phone(&client, &url, token, &format!("+41 71 000 00 0{n}")).await;
            assert_eq!(set.status, 200, "{alg} user {n}: {set:?}");
        }
        // Each token acts as its own user: each reads back the number it set.
        for (n, token) in printed.tokens.iter().enumerate() {
            let got = get_phone(&client, &url, token).await;
            assert_eq!(got.status, 200, "{alg} user {n}: {got:?}");
            let expected = format!("+4171000000{n}");
            assert_eq!(got.phone(), Some(expected.as_str()), "{alg} user {n}");
        }
        // The other run's key (other algorithm, same kid and issuer) is not trusted.
        let foreign = get_phone(&client, &url, &other.tokens[0]).await;
        assert_eq!(
            foreign.status, 401,
            "{alg} host took a foreign token: {foreign:?}"
        );
    }
}

#[test]
fn dev_identity_help_offers_both_algorithms_and_refuses_others() {
    let output = Command::new(BIN)
        .args(["dev-identity", "--help"])
        .output()
        .expect("run the host binary");
    let help = String::from_utf8_lossy(&output.stdout);
    for text in ["--alg", "EdDSA", "RS256", "[default: EdDSA]"] {
        assert!(help.contains(text), "{text} is missing:\n{help}");
    }
    let output = Command::new(BIN)
        .args(["dev-identity", "--issuer", ISSUER, "--alg", "HS256"])
        .output()
        .expect("run the host binary");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "printed an identity for HS256");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--alg"));
}
