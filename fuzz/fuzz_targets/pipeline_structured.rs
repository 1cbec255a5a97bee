//! The whole pipeline on generated policy repositories (src/world.rs): the
//! grammar writes Kubernetes and Calico policies, network sets and tiers as
//! YAML text, so the loader runs end to end and most inputs get through to
//! analysis and compilation. `cargo fuzz fmt pipeline_structured <input>`
//! prints an input as the files it stands for.
//!
//! Besides the pipeline's invariants (src/pipeline.rs), for one input in
//! four: the same objects written in the other style (block or flow) as one
//! file load to the same policies, network sets and tiers, with as many
//! errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netward_fuzz::pipeline;
use netward_fuzz::world::World;
use netward_policy::diag::{Diagnostic, Severity};
use netward_policy::model::PolicySet;

/// What loading made of a world: policy ids, network sets, tiers, errors.
fn summary(set: &PolicySet, diags: &[Diagnostic]) -> (Vec<String>, Vec<String>, Vec<String>, usize) {
    let mut ids: Vec<String> = set.policies.iter().map(|p| p.id.to_string()).collect();
    ids.sort();
    let mut sets: Vec<String> =
        set.network_sets.iter().map(|s| format!("{}/{}", s.namespace.as_deref().unwrap_or(""), s.name)).collect();
    sets.sort();
    let tiers: Vec<String> = set.tiers.keys().cloned().collect();
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    (ids, sets, tiers, errors)
}

fuzz_target!(|w: World| {
    let files = w.files();
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let (set, diags) = pipeline::load(&files);

    // A file that does not parse loses all its objects, so a raw world split
    // over several files may load differently from one file; tidy worlds are
    // always syntactically valid.
    if w.compare_styles() && (!w.raw() || files.len() == 1) {
        let (name, other) =
            if w.block_layout() { ("world.json", w.flow_text()) } else { ("world.yaml", w.block_text()) };
        let (set2, diags2) = pipeline::load(&[(name, &other)]);
        let (a, b) = (summary(&set, &diags), summary(&set2, &diags2));
        assert!(a == b, "{w:?}\n---- loads differently from {name}:\n{other}\n---- {a:?}\n---- {b:?}");
    }

    let outcome = pipeline::run_loaded(&set, &diags);
    pipeline::note(outcome, &files);
});
