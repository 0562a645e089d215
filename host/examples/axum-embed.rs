//! A program that mounts set-my-phone inside its own axum server: the phone API under
//! `/phone/...` next to the program's own routes, its data in the program's redb file, and its
//! SMS sent by a Rust closure (where a real program would call its own SMS client).
//!
//! ```sh
//! scripts/build-artifacts
//! AUTH_ISSUER=https://issuer.example AUTH_JWKS='{"keys":[...]}' \
//!   cargo run -p set-my-phone-host --example axum-embed
//! curl -X PUT localhost:3000/phone/auth/v1/users/me/phone -H "authorization: Bearer $TOKEN" \
//!   -H 'content-type: application/json' -d '{"phone":"+41 71 000 00 01"}'
//! ```
//!
//! The component sees the program's variables that are settings (docs/configuration.md, the
//! list in wire/src/settings.rs).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use set_my_phone_host::HostBuilder;
use set_my_phone_host::embed::{HostService, sms_fn};
use set_my_phone_host::keyvalue::{Backend, RedbBackend};
use set_my_phone_host::sms::SmsSender;

/// The program's routes, with the phone API mounted under `/phone` (the component sees paths
/// without the prefix, e.g. `/auth/v1/users/me/phone`).
pub fn router(phone: HostService) -> Router {
    Router::new()
        .route("/", get(|| async { "the program's own page" }))
        .nest_service("/phone", phone)
}

/// The phone API on the given store and SMS sender, configured from `vars`.
pub fn phone_service(
    wasm: &str,
    vars: impl IntoIterator<Item = (String, String)>,
    store: Arc<dyn Backend>,
    sms: Arc<dyn SmsSender>,
) -> anyhow::Result<HostService> {
    let passed = vars
        .into_iter()
        .filter(|(name, _)| set_my_phone_wire::settings::is_env_name(name));
    Ok(HostBuilder::new(wasm)
        .envs(passed)
        .backend(store)
        .sms(sms)
        .build()?
        .into_service())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wasm = std::env::var("SET_MY_PHONE_WASM")
        .unwrap_or_else(|_| "target/artifacts/set-my-phone-core-initialised.wasm".into());
    std::fs::create_dir_all("data")?;
    let store = RedbBackend::open("data/axum-embed.redb")?;
    let sms = sms_fn(|message| async move {
        // A real program calls its SMS provider here.
        println!("SMS to {}: {}", message.recipient, message.text);
        Ok(format!("printed-{}", message.user_id))
    });
    let phone = phone_service(&wasm, std::env::vars(), Arc::new(store), sms)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(phone)).await?;
    Ok(())
}
