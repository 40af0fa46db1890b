//! An exclusive lock on a data directory, so two `crm serve` processes never share one.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "crm.lock";

/// How long a lock that looks released (its recorded holder is this process or a dead one)
/// is retried before it counts as held: see [`DataDirLock::acquire`].
const TRANSIENT_WAIT: Duration = Duration::from_secs(1);

/// Lock files held by this process (canonical paths).
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// An advisory, exclusive lock (`flock`) on `<data_dir>/crm.lock`, held until dropped. The
/// file records the holder's pid, so a second process can say who holds it. The kernel
/// releases the lock when the holder exits, however it exits; the file itself is left behind
/// (removing it would race with a new holder).
#[derive(Debug)]
pub struct DataDirLock {
    path: PathBuf,
    // Held for the lock; closed (and so unlocked) after `drop` runs.
    _file: File,
}

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another lock in this process) holds it.
    #[error(
        "the data dir {} is already in use by another crm process ({}); lock file {}",
        data_dir.display(),
        pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}")),
        lock_path.display()
    )]
    Held {
        data_dir: PathBuf,
        lock_path: PathBuf,
        /// The pid recorded by the holder, if readable.
        pid: Option<u32>,
    },
    /// The directory or the lock file could not be created or locked.
    #[error("cannot lock the data dir: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DataDirLock {
    /// Create `data_dir` if needed and lock it.
    ///
    /// A `flock` belongs to the open file, and a process that forks (any `Command::spawn`
    /// in this process, or in the previous holder) shares it with the child until the child
    /// execs. So a lock released a moment ago can still look held for a moment: when the
    /// recorded holder is this process (and no lock of this process holds the file) or a
    /// process that no longer exists, the attempt is retried for up to a second. A lock held
    /// by a live other process, or by this process, fails at once.
    ///
    /// # Errors
    /// [`LockError::Held`] (naming the holder's pid when known) if it is locked already.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, source }
        };
        fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        let path = fs::canonicalize(data_dir)
            .map_err(io_err(data_dir))?
            .join(LOCK_FILE);
        let held = |pid| LockError::Held {
            data_dir: data_dir.to_path_buf(),
            lock_path: path.clone(),
            pid,
        };
        let me = std::process::id();

        // In-process acquisitions are serialised by this guard.
        let mut registry = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if registry.get_or_insert_default().contains(&path) {
            return Err(held(Some(me)));
        }
        // Not truncated on open: the holder's pid must survive a failed attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let deadline = Instant::now() + TRANSIENT_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let pid: Option<u32> = fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse().ok());
                    let transient = pid.is_some_and(|pid| pid == me || !alive(pid));
                    if !transient || Instant::now() >= deadline {
                        return Err(held(pid));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{me}"))
            .and_then(|()| file.flush())
            .map_err(io_err(&path))?;
        registry.get_or_insert_default().insert(path.clone());
        Ok(DataDirLock { path, _file: file })
    }

    /// The lock file (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        let mut registry = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = registry.as_mut() {
            held.remove(&self.path);
        }
    }
}

/// Whether a process with this pid exists (EPERM: it exists, owned by someone else).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_pid_and_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(
            first.path(),
            fs::canonicalize(&data).unwrap().join(LOCK_FILE)
        );
        let err = DataDirLock::acquire(&data).unwrap_err();
        let LockError::Held { pid, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*pid, Some(std::process::id()));
        let msg = err.to_string();
        assert!(msg.contains("already in use"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&data.display().to_string()), "{msg}");
        drop(first);
        // Again and again: a concurrent fork in another test may hold the released lock for
        // a moment; `acquire` rides that out.
        for _ in 0..20 {
            let again = DataDirLock::acquire(&data).unwrap();
            drop(again);
        }
    }
}
