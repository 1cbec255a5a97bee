//! The whole pipeline on policy text: load, warnings, analysis (both views,
//! matrix against evaluator), node rulesets (both modes), nft text and
//! netlink batches, on a fixed cluster (src/cluster.yaml). See
//! src/pipeline.rs for the invariants checked.
//!
//! A NUL byte separates files, so one input may be a repository of several
//! files (duplicates across files, references to tiers in another file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netward_fuzz::pipeline;

const NAMES: [&str; 4] = ["repo/a.yaml", "repo/b.yaml", "repo/c.json", "repo/d.yml"];

fuzz_target!(|data: &[u8]| {
    let mut files = Vec::new();
    for (i, part) in data.splitn(NAMES.len(), |b| *b == 0).enumerate() {
        let Ok(text) = std::str::from_utf8(part) else { return };
        files.push((NAMES[i], text));
    }
    let outcome = pipeline::run(&files);
    pipeline::note(outcome, &files);
});
