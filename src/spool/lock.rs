//! The spool's ingest lock: one ingester per spool directory at a time, whether it is a
//! watcher (`spool watch`, `worker start`) or a one-off pass (`spool ingest`).

use super::SpoolPaths;
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;

/// The spool's ingest lock, held while the value lives (closing the file releases it).
#[derive(Debug)]
pub(crate) struct SpoolLock {
    _file: File,
}

/// Takes the spool's ingest lock, or returns `None` if another process (or another handle in
/// this one) holds it. An exclusive `flock(2)` on the lock file: released by the kernel when
/// the holder exits, however it exits.
pub(crate) fn try_lock(paths: &SpoolPaths) -> Result<Option<SpoolLock>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&paths.lock)
        .map_err(|e| Error::io(&paths.lock, e))?;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(SpoolLock { _file: file }));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(None),
            Some(libc::EINTR) => continue,
            _ => return Err(Error::io(&paths.lock, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let paths = SpoolPaths::new(dir.path());
        std::fs::create_dir_all(paths.lock.parent().unwrap()).unwrap();
        let first = try_lock(&paths).unwrap().expect("the first takes it");
        assert!(try_lock(&paths).unwrap().is_none(), "held by another open file");
        drop(first);
        assert!(try_lock(&paths).unwrap().is_some());
    }
}
