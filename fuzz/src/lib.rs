//! Shared code of the fuzz targets: the pipeline every input goes through
//! (`pipeline`) and the grammar the structure-aware target draws policy
//! repositories from (`world`).

pub mod pipeline;
pub mod world;
