//! The config bridge for `wasmtime serve`: the core and the SMS provider import
//! `wasi:config/store@0.2.0-draft-2024-09-27` (what Spin provides); `wasmtime serve -S config`
//! provides the same interface as `@0.2.0-rc.1`. This component exports the first over the
//! second, passing every call and error through unchanged, and adds what the artifact itself
//! declares: `kv_create = swap` unless `-Sconfig-var` sets it, since the file store composed
//! beside it (adapters/kv-file) swaps from absent exactly (docs/storage.md).

#[cfg(target_arch = "wasm32")]
mod component {
    #[expect(
        unsafe_code,
        reason = "wit-bindgen's generated glue is unsafe by nature"
    )]
    mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "set-my-phone:config-rc1/bridge",
            generate_all,
        });

        use super::Bridge;
        export!(Bridge with_types_in self);
    }

    use bindings::exports::wasi::config0_2_0_draft_2024_09_27::store as exported;
    use bindings::wasi::config0_2_0_rc_1::store as provided;

    struct Bridge;

    /// The artifact's own setting: its store's swap from absent is exact.
    const DECLARED: (&str, &str) = ("kv_create", "swap");

    fn error(error: provided::Error) -> exported::Error {
        match error {
            provided::Error::Upstream(why) => exported::Error::Upstream(why),
            provided::Error::Io(why) => exported::Error::Io(why),
        }
    }

    impl exported::Guest for Bridge {
        fn get(key: String) -> Result<Option<String>, exported::Error> {
            let value = provided::get(&key).map_err(error)?;
            Ok(value.or_else(|| (key == DECLARED.0).then(|| DECLARED.1.to_owned())))
        }

        fn get_all() -> Result<Vec<(String, String)>, exported::Error> {
            let mut all = provided::get_all().map_err(error)?;
            if !all.iter().any(|(key, _)| key == DECLARED.0) {
                all.push((DECLARED.0.to_owned(), DECLARED.1.to_owned()));
            }
            Ok(all)
        }
    }
}
