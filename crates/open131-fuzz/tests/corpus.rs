//! Every committed fuzz input, replayed through its target's harness in the
//! ordinary test run: the seed corpus (`fuzz/corpus/<target>/`) and every
//! crash a fuzz run found (`fuzz/regressions/<target>/`), so a fixed crash
//! stays fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_committed_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, harness) in open131_fuzz::TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "{name} has no seed corpus");
        for file in seeds.iter().chain(&inputs(&root.join("regressions").join(name))) {
            harness(&std::fs::read(file).unwrap());
        }
    }
}

/// Inputs at the harnesses' edges: not JSON, not an object, a header
/// longer than the input, a foreign file: no panic.
#[test]
fn edge_inputs_pass_every_target() {
    for (_, harness) in open131_fuzz::TARGETS {
        for input in [&b""[..], b"\xff[1,2]", b"\x7f{}", b"O131NPD\0garbage", b"{\"b\":1,\"a\":[true,null]}"] {
            harness(input);
        }
    }
}
