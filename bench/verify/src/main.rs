//! Times the core's JWT signature checks inside WebAssembly (`bench/verify/run` builds this for
//! wasm32-wasip2 and runs it in wasmtime): RS256 and PS256 the way the core checks them now
//! (`core`) and the way it did before (`jsonwebtoken`, over the `rsa` crate), ES256 and EdDSA
//! (jsonwebtoken's, as the core uses). Each check starts from the JWK, as a request on a fresh
//! instance does, except `core-held-key`: the key as an instance that serves many requests holds
//! it, prepared once.
//!
//! Prints `verify <alg> <impl> <µs per verify>`, the median of several rounds. With
//! `VERIFY_CALLS=N` it instead makes N RS256 checks the way `core` does and prints nothing, for
//! A/B comparisons by CPU time (`perf stat -e task-clock`), steadier than wall time on a shared
//! machine. The tokens are a
//! ZITADEL-shaped access token signed with the test keys in `keys/` (RSA-2048 with e = 65537,
//! P-256, Ed25519) by `keys/make-tokens`, which uses `openssl` only.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, decode_header};
use set_my_phone::{Key, check_key_signature, check_signature, check_signature_with_library};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Rounds per measurement; the median is reported.
const ROUNDS: usize = 7;
/// Each round runs for at least this long.
const ROUND_TIME: Duration = Duration::from_millis(100);

/// A signature check of a token, by a key and algorithm it was made with.
type Check<'a> = Box<dyn Fn(&str) -> Result<(), String> + 'a>;

fn main() -> ExitCode {
    let keys: JwkSet = match serde_json::from_str(include_str!("../keys/jwks.json")) {
        Ok(keys) => keys,
        Err(e) => return fail(&format!("keys/jwks.json: {e}")),
    };
    if let Ok(calls) = std::env::var("VERIFY_CALLS") {
        return match calls.parse() {
            Ok(calls) => fixed_calls(&keys, calls),
            Err(_) => fail(&format!("VERIFY_CALLS={calls}: not a count")),
        };
    }
    let tokens = [
        include_str!("../keys/rs256.jwt"),
        include_str!("../keys/ps256.jwt"),
        include_str!("../keys/es256.jwt"),
        include_str!("../keys/eddsa.jwt"),
    ];
    for token in tokens.map(str::trim) {
        let header = match decode_header(token) {
            Ok(header) => header,
            Err(e) => return fail(&format!("token header: {e}")),
        };
        let Some(jwk) = header.kid.as_deref().and_then(|kid| keys.find(kid)) else {
            return fail(&format!("no key for {:?}", header.kid));
        };
        let alg = header.alg;
        let mut checks: Vec<(&str, Check)> = vec![(
            "jsonwebtoken",
            Box::new(move |token| check_signature_with_library(token, alg, jwk)),
        )];
        if matches!(alg, Algorithm::RS256 | Algorithm::PS256) {
            checks.push((
                "core",
                Box::new(move |token| check_signature(token, alg, jwk)),
            ));
            let held = Key::new(jwk.clone());
            checks.push((
                "core-held-key",
                Box::new(move |token| check_key_signature(token, alg, &held)),
            ));
        }
        for (name, check) in checks {
            if let Err(problem) = sound(&check, token) {
                return fail(&format!("{alg:?} {name}: {problem}"));
            }
            let micros = median_micros(|| check(token));
            println!("verify {alg:?} {name} {micros:.1}");
        }
    }
    ExitCode::SUCCESS
}

/// Whether `check` accepts the token and refuses it with one signature bit flipped: what is
/// timed must be a real check.
fn sound(check: &Check, token: &str) -> Result<(), String> {
    check(token).map_err(|e| format!("refuses the signed token: {e}"))?;
    let (message, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    // The first character of the signature carries its top six bits: flip one of them.
    let mut tampered = signature.as_bytes().to_vec();
    tampered[0] = if tampered[0] == b'A' { b'Q' } else { b'A' };
    let tampered = format!("{message}.{}", String::from_utf8_lossy(&tampered));
    match check(&tampered) {
        Ok(()) => Err("accepts a tampered signature".into()),
        Err(_) => Ok(()),
    }
}

/// The median over [`ROUNDS`] of the time per call of `run`, in microseconds.
fn median_micros(run: impl Fn() -> Result<(), String>) -> f64 {
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut calls = 0u32;
            while calls == 0 || start.elapsed() < ROUND_TIME {
                // The result was checked by `sound`; black_box keeps the call from being elided.
                let _ = std::hint::black_box(run());
                calls += 1;
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[ROUNDS / 2]
}

/// `calls` RS256 checks as `core` makes them (the key prepared each time), each checked.
fn fixed_calls(keys: &JwkSet, calls: u32) -> ExitCode {
    let token = include_str!("../keys/rs256.jwt").trim();
    let jwk = match decode_header(token) {
        Ok(header) => header.kid.as_deref().and_then(|kid| keys.find(kid)),
        Err(e) => return fail(&format!("token header: {e}")),
    };
    let Some(jwk) = jwk else {
        return fail("no key for the RS256 token");
    };
    for _ in 0..calls {
        if let Err(e) = check_signature(token, Algorithm::RS256, jwk) {
            return fail(&format!("RS256 core: {e}"));
        }
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bench-verify: {message}");
    ExitCode::FAILURE
}
