//! Settings the host's way: the binary's `--config-file` (the component reads it through
//! wasi:config), its refusal of a file others may read, the precedence of the environment, and
//! what a missing setting and a failing config store answer.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;
use set_my_phone_host::keyvalue::MemoryBackend;
use set_my_phone_host::sms::RecordingSms;
use set_my_phone_host::{ConfigStore, HostBuilder};

use crate::common::{
    BIN, HostProcess, Issuer, PHONE_URL, START_LIMIT, Scratch, get_phone, put_phone,
    wait_with_limit,
};

/// The settings `issuer` needs, as a config file's lines in Spin's spelling (lower case).
fn config_file(scratch: &Scratch, issuer: &Issuer, mode: u32) -> std::path::PathBuf {
    let path = scratch.path("settings.env");
    let mut text = String::from("# set-my-phone settings\n");
    for (name, value) in issuer.env() {
        text.push_str(&format!("{}='{value}'\n", name.to_lowercase()));
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_reads_every_setting_from_its_config_file() {
    let scratch = Scratch::new("config-file");
    let issuer = Issuer::new();
    let file = config_file(&scratch, &issuer, 0o600);
    let file = file.display().to_string();
    let host = HostProcess::start(
        &crate::common::initialised_core_path(),
        &["--store", "memory:", "--print-sms", "--config-file", &file],
        &[],
    );
    let client = reqwest::Client::new();
    let token = issuer.token("file-user");
    let url = host.url(PHONE_URL);
    let set = put_phone(&client, &url, &token, "+41 71 000 00 21").await;
    assert_eq!(set.status, 200, "{:?}\n{}", set.body, host.stderr());
    host.wait_for_stderr("sms #1 to +41710000021 ", crate::common::START_LIMIT);
    let stderr = host.stderr();
    let code = stderr
        .split("code ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the printed SMS carries its code")
        .to_owned();
    let verify = client
        .post(format!("{url}/_verify"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let get = get_phone(&client, &url, &token).await;
    assert_eq!(get.body["phone"]["isPhoneVerified"], Value::Bool(true));
    let secret = issuer
        .env()
        .into_iter()
        .find(|(name, _)| name == "PHONE_CODE_SECRET")
        .map(|(_, value)| value)
        .unwrap();
    assert!(!host.stderr().contains(&secret), "the secret was logged");
}

#[test]
fn a_config_file_others_may_read_is_refused_in_one_line() {
    let scratch = Scratch::new("config-file-mode");
    let issuer = Issuer::new();
    for mode in [0o644, 0o640] {
        let file = config_file(&scratch, &issuer, mode);
        let mut child = Command::new(BIN)
            .args(["serve", "--store", "memory:", "--config-file"])
            .arg(&file)
            .arg("--wasm")
            .arg(crate::common::initialised_core_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_with_limit(&mut child, START_LIMIT).expect("the host exits");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("chmod 600") && stderr.contains(&format!("{mode:o}")),
            "{stderr}"
        );
        assert!(!stderr.contains("serve-test-secret"), "{stderr}");
    }
}

/// The library host: the environment overrides wasi:config, a missing issuer is 500 naming
/// both spellings, a failing config store is 503 code 14 whose reason stays in the log.
#[tokio::test(flavor = "multi_thread")]
async fn precedence_missing_settings_and_a_failing_config_store() {
    let issuer = Issuer::new();
    let config = ConfigStore::new(
        issuer
            .env()
            .into_iter()
            .map(|(name, value)| (name.to_lowercase(), value)),
    );
    config.set("phone_default_region", "DE");
    let running = HostBuilder::new(crate::common::initialised_core_path())
        .env("PHONE_DEFAULT_REGION", "CH")
        .config_store(config.clone())
        .backend(Arc::new(MemoryBackend::new()))
        .sms(Arc::new(RecordingSms::new()))
        .build()
        .unwrap()
        .spawn_local()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}{PHONE_URL}", running.url());
    let token = issuer.token("precedence-user");

    // A national number: read in CH (the environment), not DE (the config store).
    let set = put_phone(&client, &url, &token, "071 000 00 22").await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let get = get_phone(&client, &url, &token).await;
    assert_eq!(get.body["phone"]["phone"], "+41710000022");

    config.fail_with(Some("vault sealed".into()));
    let down = get_phone(&client, &url, &token).await;
    assert_eq!((down.status, down.code()), (503, 14), "{:?}", down.body);
    assert!(!down.body.to_string().contains("vault"), "{:?}", down.body);
    config.fail_with(None);

    config.set("auth_issuer", "");
    let missing = get_phone(&client, &url, &token).await;
    assert_eq!(
        (missing.status, missing.code()),
        (500, 13),
        "{:?}",
        missing.body
    );
    let message = missing.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("AUTH_ISSUER (auth_issuer)"), "{message}");
}
