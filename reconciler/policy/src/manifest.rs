//! Reading manifests: files and directories of YAML/JSON documents, turned
//! into policies and cluster snapshots with every problem reported in place.

pub mod decode;
pub mod fields;
pub mod kinds;
pub mod load;
mod scalar;
pub mod yaml;

pub use load::{load_cluster, load_policies, Loaded};
