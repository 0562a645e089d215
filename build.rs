//! Generates the protobuf messages from the shipped `.proto` files (with protox, a pure-Rust
//! parser, so no `protoc` is needed), so the published schema and the code cannot drift.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(
        [
            "phone.proto",
            "google/rpc/status.proto",
            "zitadel/v1/error_detail.proto",
            "zitadel/v1/message.proto",
            "zitadel/change/v1/change.proto",
        ],
        ["proto"],
    )?;
    prost_build::Config::new().compile_fds(files)?;
    Ok(())
}
