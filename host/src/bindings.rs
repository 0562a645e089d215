//! Host bindings for the imports the core needs beyond standard `wasi:*` (world `host-imports`).
//! They name `crate::keyvalue`'s resource types (bindgen's `with`), which implement the traits
//! generated here: the one cycle wasmtime's bindings ask for.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "set-my-phone:service/host-imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
        },
        require_store_data_send: true,
    });
}

pub(crate) use generated::set_my_phone::sms::sender;
pub(crate) use generated::wasi::config::store as config_store;
pub(crate) use generated::wasi::keyvalue::{atomics, store};
