//! Who is calling: reads the configuration (parsed once per instance and environment), opens the
//! caller's store and verifies the token.

use crate::auth::{self, Issuer};
use crate::config::Config;
use crate::domain::Caller;
use crate::error::Error;
use crate::http::Request;
use crate::platform::{OpenError, Services};
use crate::record::record_key;

/// Reads configuration, opens the store (which also caches what authentication learns from the
/// issuer) and verifies the request's token.
pub(super) fn authorize<'a>(
    services: &'a Services<'a>,
    request: &Request,
) -> Result<Caller<'a>, Error> {
    let authorization = request.header("authorization");
    let config = Config::load(services.settings, services.settings_generation)?;
    // Without any header there is nothing to look up: answer before touching the store.
    if authorization.is_none() {
        return Err(Error::AuthHeaderMissing);
    }
    let kv = (services.open_store)(&config.kv_store).map_err(|e| match e {
        OpenError::NoSuchStore => Error::Config {
            variable: "KV_STORE",
            problem: format!(
                "names store {:?}, which the host does not provide",
                config.kv_store
            ),
        },
        OpenError::AccessDenied => Error::Config {
            variable: "KV_STORE",
            problem: format!(
                "names store {:?}, which this component may not use",
                config.kv_store
            ),
        },
        OpenError::Other(why) => Error::StoreUnavailable(why),
    })?;
    let issuer = Issuer {
        settings: &config.auth,
        kv: kv.as_ref(),
        http: services.http,
        clock: services.clock,
        random: services.random,
    };
    let principal = auth::authenticate(authorization, &issuer)?;
    crate::log::authenticated(&principal.user_id, &principal.resource_owner);
    let record_key = record_key(&principal.resource_owner, &principal.user_id);
    Ok(
        Caller::new(services, Config::clone(&config), principal, record_key, kv)
            .with_accept_language(request.header("accept-language")),
    )
}
