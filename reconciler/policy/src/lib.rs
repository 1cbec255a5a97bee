#![warn(missing_docs)]
//! netward-policy: the engine, with no I/O. Kubernetes NetworkPolicy and
//! Calico v3 policies read from text with the position of every value,
//! selectors, the model of a cluster, verdicts on flows, lints, what a
//! change opens and closes, and the reports of all of it.
//!
//! Data flows one way: `manifest` reads texts into the `model` (policies,
//! tiers, network sets, endpoints); `analysis` answers "may A connect to B on
//! port P?" for one flow (`explain`) or for every pair (`matrix`); `validate`
//! looks for mistakes; `change` compares two revisions; `report` renders;
//! `synth` makes synthetic clusters for benchmarks and fuzzing.
//!
//! Builds without a C compiler and without any I/O dependency; the fuzz
//! targets and every other netward crate stand on it.

pub mod analysis;
pub mod change;
pub mod convert;
pub mod diag;
pub mod guard;
pub mod l7;
pub mod manifest;
pub mod model;
pub mod report;
pub mod selector;
pub mod synth;
pub mod text;
pub mod validate;
