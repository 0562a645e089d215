//! An empty `wasi:config/store`: every key is absent. Composed into the `wasmtime serve`
//! artifact that takes its settings as `--env` only, so that it needs no `-S config` (the
//! components then read the environment alone, as before wasi:config).

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
        fn get(_key: String) -> Result<Option<String>, store::Error> {
            Ok(None)
        }

        fn get_all() -> Result<Vec<(String, String)>, store::Error> {
            Ok(Vec::new())
        }
    }
}
