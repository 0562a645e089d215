//! A `wasi:config/store` that holds only what the artifact itself declares: `kv_create = swap`,
//! since the file store composed beside it (adapters/kv-file) swaps from absent exactly
//! (docs/storage.md). Composed into the `wasmtime serve` artifact that takes its settings as
//! `--env` only, so that it needs no `-S config`; `--env KV_CREATE=claim` still wins.

#[cfg(target_arch = "wasm32")]
mod component {
    #[expect(
        unsafe_code,
        reason = "wit-bindgen's generated glue is unsafe by nature"
    )]
    mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "set-my-phone:service/config-none",
        });

        use super::Empty;
        export!(Empty with_types_in self);
    }

    use bindings::exports::wasi::config::store;

    struct Empty;

    impl store::Guest for Empty {
        fn get(key: String) -> Result<Option<String>, store::Error> {
            Ok((key == "kv_create").then(|| "swap".to_owned()))
        }

        fn get_all() -> Result<Vec<(String, String)>, store::Error> {
            Ok(vec![("kv_create".to_owned(), "swap".to_owned())])
        }
    }
}
