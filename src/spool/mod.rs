//! The spool directory: other programs enqueue by dropping JSON files into `incoming/`.

use crate::error::Result;
use std::path::Path;

/// Creates `incoming/`, `tmp/` and `failed/` under the spool directory, mode 0700.
pub fn create_layout(spool_dir: &Path) -> Result<()> {
    for sub in ["incoming", "tmp", "failed"] {
        crate::queue::create_dir(&spool_dir.join(sub), 0o700)?;
    }
    crate::queue::create_dir(spool_dir, 0o700)
}
