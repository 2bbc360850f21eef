//! Workers: the pool that claims and runs jobs, its events, and the registry of worker
//! processes (liveness, lease recovery).

pub mod events;
pub(crate) mod orphans;
pub mod pool;
pub mod registry;

pub use events::{Observer, WorkerEvent};
pub use pool::{PoolBuilder, ReloadRequest};
