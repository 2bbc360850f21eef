//! Workers: the pool that claims jobs and runs them, and the registry of worker processes.

pub mod registry;
