//! The wasm32 side: generated WIT bindings and the thin export that adapts them to the
//! native API (`api::handle`). Nothing here decides behaviour.

#[cfg(feature = "file-store-inside")]
mod file_store;
mod heap;
#[cfg(not(feature = "file-store-inside"))]
mod keyvalue;
mod services;
#[cfg(not(feature = "sms-inside"))]
mod sms_import;
#[cfg(feature = "sms-inside")]
mod sms_inside;
mod wasi_http;

/// The bindings of the core's world: `service` imports the SMS provider and the store;
/// `service-with-provider` (feature `sms-inside`) has the provider compiled in,
/// `service-with-provider-and-store` (`file-store-inside`) the file-backed store too, and
/// `service-standalone` (`standalone`) also reads its settings from the environment alone.
/// wit-bindgen refuses a `with` entry its world does not use, so each world names its own.
macro_rules! bindings {
    ($world:tt, { $($with:tt)* }) => {
        #[allow(
            unsafe_code,
            reason = "wit-bindgen's generated glue is unsafe by nature"
        )]
        mod bindings {
            wit_bindgen::generate!({
                path: "wit",
                world: $world,
                // One copy of each shared wasi type: the wasip2 crate's.
                with: {
                    "wasi:http/types@0.2.4": wasip2::http::types,
                    "wasi:io/error@0.2.4": wasip2::io::error,
                    "wasi:io/poll@0.2.4": wasip2::io::poll,
                    "wasi:io/streams@0.2.4": wasip2::io::streams,
                    "wasi:clocks/monotonic-clock@0.2.4": wasip2::clocks::monotonic_clock,
                    "wasi:clocks/wall-clock@0.2.4": wasip2::clocks::wall_clock,
                    "wasi:cli/environment@0.2.4": wasip2::cli::environment,
                    "wasi:random/random@0.2.4": wasip2::random::random,
                    "wasi:http/outgoing-handler@0.2.4": wasip2::http::outgoing_handler,
                    "wasi:http/incoming-handler@0.2.4": generate,
                    $($with)*
                },
            });

            use super::Component;
            export!(Component with_types_in self);
        }
    };
}

#[cfg(not(feature = "sms-inside"))]
bindings!("set-my-phone:service/service", {
    "wasi:config/store@0.2.0-draft-2024-09-27": generate,
    "wasi:keyvalue/store@0.2.0-draft2": generate,
    "wasi:keyvalue/atomics@0.2.0-draft2": generate,
    "set-my-phone:sms/sender@0.2.0": generate,
});
#[cfg(all(feature = "sms-inside", not(feature = "file-store-inside")))]
bindings!("set-my-phone:service/service-with-provider", {
    "wasi:config/store@0.2.0-draft-2024-09-27": generate,
    "wasi:keyvalue/store@0.2.0-draft2": generate,
    "wasi:keyvalue/atomics@0.2.0-draft2": generate,
});
#[cfg(all(feature = "file-store-inside", not(feature = "standalone")))]
bindings!("set-my-phone:service/service-with-provider-and-store", {
    "wasi:config/store@0.2.0-draft-2024-09-27": generate,
    "wasi:filesystem/types@0.2.4": wasip2::filesystem::types,
    "wasi:filesystem/preopens@0.2.4": wasip2::filesystem::preopens,
});
#[cfg(feature = "standalone")]
bindings!("set-my-phone:service/service-standalone", {
    "wasi:filesystem/types@0.2.4": wasip2::filesystem::types,
    "wasi:filesystem/preopens@0.2.4": wasip2::filesystem::preopens,
});

use bindings::exports::wasi::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Component;

impl bindings::Guest for Component {
    fn wizer_initialize() {
        crate::number::warm_up();
        heap::plug_holes();
    }
}

impl Guest for Component {
    /// Answers the request, then (after the response is finished) does follow-up work such
    /// as sending the SMS: "respond first, deliver after" (docs/design.md).
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let settings = services::HostSettings::read();
        let lookup = |name: &str| settings.get(name);
        #[cfg(not(feature = "file-store-inside"))]
        let open_store = keyvalue::open_store;
        #[cfg(feature = "file-store-inside")]
        let open_store = file_store::open_store;
        let services = crate::platform::Services {
            settings: &lookup,
            settings_generation: Some(settings.generation()),
            open_store: &open_store,
            clock: &services::WasiClock,
            random: &services::WasiRandom,
            http: &services::WasiHttp,
            #[cfg(not(feature = "sms-inside"))]
            sms: &sms_import::WasiSms,
            #[cfg(feature = "sms-inside")]
            sms: &sms_inside::ProviderInside(&settings),
        };
        let request = wasi_http::read_request(&request);
        let reply = crate::api::handle(&request, &services);
        wasi_http::write_response(response_out, reply.response);
        if let Some(followup) = reply.followup {
            followup.run();
        }
    }
}
