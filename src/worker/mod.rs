//! Workers: the pool that claims and runs jobs, its events, the config file's shell hooks on
//! those events, and the registry of worker processes (liveness, lease recovery).

pub mod events;
pub mod hooks;
pub(crate) mod orphans;
pub mod pool;
pub mod registry;

pub use events::{Observer, WorkerEvent};
pub use pool::{PoolBuilder, ReloadRequest};
