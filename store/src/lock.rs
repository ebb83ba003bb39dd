//! An exclusive lock on a store's database, held for the store's life: a second process
//! opening the same data dir is refused, where two writers would otherwise interleave
//! recoveries and leases on one file.
//!
//! The lock is an advisory `flock` on `<database>.lock` beside the database; the kernel
//! releases it when the holder exits, even when it is killed. The holder writes its pid
//! into the file so that the refusal can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{OpenError, StoreError};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock of the database at `database`, or says which process holds it.
    pub fn acquire(database: &Path) -> Result<StoreLock, StoreError> {
        let path = lock_path(database);
        let open_error = |source: std::io::Error| StoreError::Open {
            path: path.display().to_string(),
            source: OpenError::Io(source),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let dir = database.parent().unwrap_or(database);
                return Err(StoreError::InUse {
                    dir: dir.display().to_string(),
                    holder: match holder.trim() {
                        "" => "another process".into(),
                        holder => holder.to_owned(),
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(open_error(e)),
        }
        file.set_len(0)
            .and_then(|()| write!(file, "marie pid {}", std::process::id()))
            .map_err(open_error)?;
        Ok(StoreLock { _file: file })
    }
}

/// `<database>.lock`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = dir.path().join("marie.db");
        let first = StoreLock::acquire(&database).expect("the first lock");
        let err = StoreLock::acquire(&database).expect_err("a second holder is refused");
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string())
                && message.contains(&format!("marie pid {}", std::process::id())),
            "{message}"
        );
        drop(first);
        StoreLock::acquire(&database).expect("free again once the first is dropped");
    }
}
