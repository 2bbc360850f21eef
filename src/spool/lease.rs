//! Read leases: the kernel's answer to "does anyone have this file open for writing?".
//!
//! A writer that opens `incoming/x.ndjson`, writes a line, pauses and writes another leaves a
//! file that parses after the first line. Waiting for the modification time to settle cannot
//! tell such a pause from a finished file; a read lease can. On Linux, `fcntl(F_SETLEASE,
//! F_RDLCK)` fails with `EAGAIN` while any process has the file open for writing, and while
//! the lease is held, a writer that opens the file *breaks* it: its `open` waits until the
//! lease is released (or `/proc/sys/fs/lease-break-time` passes) and `F_GETLEASE` stops saying
//! `F_RDLCK`. So the ingester takes a lease before reading and checks it is intact after: what
//! it read is then what the last writer left, with no writer in between.
//!
//! A lease needs the caller to own the file (or hold `CAP_LEASE`) and a file system that
//! supports leases. Where it cannot be had ([`LeaseCheck::Unavailable`]), the ingester falls
//! back to close events and `spool_settle_ms`.
//!
//! The kernel tells the lease holder of a break with a signal, `SIGIO` unless `F_SETSIG` says
//! otherwise, and `SIGIO` terminates a process that does not handle it. The library installs
//! no signal handler, so each leased file is set to signal `SIGURG` instead, whose default
//! action is to ignore it (and which runtimes that do handle it, like Go's, treat as possibly
//! spurious). The break is then read with `F_GETLEASE`, not from the signal.

use std::fs::File;
use std::io;

/// What asking for a read lease on a file found.
pub(crate) enum LeaseCheck<'a> {
    /// No one had the file open for writing; the lease is held until the value is dropped.
    Held(Lease<'a>),
    /// Some process has the file open for writing.
    OpenForWriting,
    /// The kernel cannot tell here (not the file's owner, or a file system without leases).
    Unavailable,
}

/// A read lease on an open file, released when dropped.
pub(crate) struct Lease<'a> {
    file: &'a File,
}

impl Lease<'_> {
    /// Asks for a read lease on `file`, which must be open read-only.
    pub(crate) fn take(file: &File) -> LeaseCheck<'_> {
        match set_lease(file) {
            Ok(()) => LeaseCheck::Held(Lease { file }),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => LeaseCheck::OpenForWriting,
            Err(_) => LeaseCheck::Unavailable,
        }
    }

    /// True while no one has opened the file for writing since the lease was taken.
    pub(crate) fn intact(&self) -> bool {
        lease_type(self.file) == Some(libc::F_RDLCK)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Releasing lets a writer blocked by a break go on. Failure leaves the kernel to end
        // the lease after lease-break-time; there is nothing better to do about it here.
        release(self.file);
    }
}

/// `F_SETSIG` from `<fcntl.h>` (the same on every Linux architecture); the libc crate does not
/// export it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const F_SETSIG: libc::c_int = 10;

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_lease(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor this function borrows; F_SETSIG takes a signal number.
    if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; F_SETLEASE takes a lease type.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn lease_type(file: &File) -> Option<libc::c_int> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: fcntl(2) F_GETLEASE on a descriptor this function borrows.
    let kind = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLEASE) };
    (kind != -1).then_some(kind)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn release(file: &File) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: fcntl(2) F_SETLEASE F_UNLCK on a descriptor this function borrows.
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_lease(_file: &File) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "file leases are Linux-only"))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn lease_type(_file: &File) -> Option<libc::c_int> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn release(_file: &File) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn read_only(path: &std::path::Path) -> File {
        File::open(path).unwrap()
    }

    #[test]
    fn a_lease_is_refused_while_a_writer_has_the_file_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let mut writer = File::create(&path).unwrap();
        writer.write_all(b"{").unwrap();
        let reader = read_only(&path);
        assert!(matches!(Lease::take(&reader), LeaseCheck::OpenForWriting));
        drop(writer);
        match Lease::take(&reader) {
            LeaseCheck::Held(lease) => assert!(lease.intact()),
            LeaseCheck::OpenForWriting => panic!("no writer is left"),
            LeaseCheck::Unavailable => panic!("leases are unavailable on the test file system"),
        };
    }

    #[test]
    fn a_writer_opening_the_file_breaks_the_lease_without_killing_us() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{}").unwrap();
        let reader = read_only(&path);
        let LeaseCheck::Held(lease) = Lease::take(&reader) else {
            panic!("expected a lease")
        };
        // The writer's open blocks until the lease is released, so it runs on a thread.
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut file = OpenOptions::new().append(true).open(path).unwrap();
                file.write_all(b"\n").unwrap();
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lease.intact() {
            assert!(std::time::Instant::now() < deadline, "the lease was never broken");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(lease);
        writer.join().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
    }
}
