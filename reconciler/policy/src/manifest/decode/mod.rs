//! Decoders: the YAML tree of one object (with positions) into the model,
//! strictly, with Calico's and Kubernetes' own validation.

pub mod calico;
pub mod cluster;
pub mod k8s;
pub mod npapi;
pub mod scope;
