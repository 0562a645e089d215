//! Composition (what `wac plug` does): each plug's exports satisfy the matching imports of the
//! socket, and the result exports everything the socket exports.

use anyhow::Context as _;
use std::path::Path;
use wac_graph::{CompositionGraph, EncodeOptions};
use wac_types::Package;

pub fn plug(socket: &Path, plugs: &[&Path]) -> anyhow::Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let load = |graph: &mut CompositionGraph, name: &str, path: &Path| {
        let package = Package::from_file(name, None, path, graph.types_mut())
            .with_context(|| format!("cannot load {}", path.display()))?;
        graph
            .register_package(package)
            .with_context(|| format!("cannot register {}", path.display()))
    };
    let socket_id = load(&mut graph, "set-my-phone:core", socket)?;
    let mut plug_ids = Vec::new();
    for (n, path) in plugs.iter().enumerate() {
        plug_ids.push(load(&mut graph, &format!("set-my-phone:plug{n}"), path)?);
    }
    wac_graph::plug(&mut graph, plug_ids, socket_id).context("plugging the components together")?;
    graph
        .encode(EncodeOptions::default())
        .context("encoding the composition")
}
