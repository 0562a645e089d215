//! Composition (what `wac plug` does): each plug's exports satisfy the matching imports of the
//! socket, and the result exports everything the socket exports. Imports nobody satisfies stay
//! imports of the result.

use anyhow::Context as _;
use std::path::Path;
use wac_graph::{CompositionGraph, EncodeOptions};
use wac_types::Package;

/// What a component imports and exports, by name (`set-my-phone:sms/sender@0.2.0`).
pub fn interfaces(name: &str, bytes: &[u8]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut types = wac_types::Types::default();
    let package = Package::from_bytes("set-my-phone:inspect", None, bytes, &mut types)
        .with_context(|| format!("cannot load {name}"))?;
    let world = &types[package.ty()];
    Ok((
        world.imports.keys().cloned().collect(),
        world.exports.keys().cloned().collect(),
    ))
}

/// A component's bytes, read from `path`.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Plugs `plugs` (name, bytes) into `socket`; names appear in errors.
pub fn plug(socket: (&str, &[u8]), plugs: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let load = |graph: &mut CompositionGraph, package: &str, (name, bytes): (&str, &[u8])| {
        let package = Package::from_bytes(package, None, bytes, graph.types_mut())
            .with_context(|| format!("cannot load {name}"))?;
        graph
            .register_package(package)
            .with_context(|| format!("cannot register {name}"))
    };
    let socket_id = load(&mut graph, "set-my-phone:socket", socket)?;
    let mut plug_ids = Vec::new();
    for (n, plug) in plugs.iter().enumerate() {
        plug_ids.push(load(&mut graph, &format!("set-my-phone:plug{n}"), *plug)?);
    }
    wac_graph::plug(&mut graph, plug_ids, socket_id)
        .with_context(|| format!("plugging into {}", socket.0))?;
    graph
        .encode(EncodeOptions::default())
        .context("encoding the composition")
}
