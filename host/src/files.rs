//! The files incsync writes on the user's disk: warehouse directories and
//! their files, cassettes, the compiled-component cache, state and lease
//! files. Each is opened here, the same careful way, so that a file or
//! symlink planted in one of these directories can never be turned into a
//! write somewhere else:
//!
//! - a directory incsync writes into is created `0700`, and an existing one
//!   is accepted only if it is a real directory (not a symlink) of this user
//!   that group and others may not write to ([`trusted_dir`]);
//! - files are opened with `O_NOFOLLOW`, and must be regular files of this
//!   user ([`open_append`], [`open_to_cut`], [`read_own`]);
//! - new files (temporary files, cassette entries) are created with
//!   `O_EXCL`, `0600`, and renamed into place ([`create_new`],
//!   [`replace`]);
//! - names read back from a file incsync wrote are checked against the form
//!   incsync gives them by the caller (see `jsonl::is_table_file`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// This process's effective user.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A directory or file incsync refuses to write through, and why.
fn refused(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Creates `dir` and its missing parents `0700` if missing, then checks that
/// only this user may write to it: a directory, not a symlink, owned by this
/// user, not writable by group or others. (Its parents are the user's
/// choice: only the directory incsync fills is checked.)
pub fn trusted_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(refused(
            dir,
            "is a symlink; incsync writes only into a real directory",
        ));
    }
    if !meta.is_dir() {
        return Err(refused(dir, "is not a directory"));
    }
    if meta.uid() != euid() {
        return Err(refused(
            dir,
            format!(
                "is owned by user {}, not this user ({}); incsync writes only into its user's directories",
                meta.uid(),
                euid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused(
            dir,
            format!(
                "group or others may write to it (mode {:o}); `chmod go-w` it or use another directory",
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(())
}

/// Checks that an opened `file` is a regular file of this user.
fn own_regular(file: File, path: &Path) -> io::Result<File> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    if meta.uid() != euid() {
        return Err(refused(
            path,
            format!("is owned by user {}, not this user", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refused(
            path,
            format!(
                "group or others may write to it (mode {:o})",
                meta.mode() & 0o777
            ),
        ));
    }
    Ok(file)
}

/// What `O_NOFOLLOW` answers for a symlink, said plainly.
fn no_follow(e: io::Error, path: &Path) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        refused(path, "is a symlink; incsync never writes through one")
    } else {
        e
    }
}

/// Opens `path` as `options` say, never through a symlink (`O_NOFOLLOW`),
/// and only a regular file of this user that others cannot write.
fn open_own(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| no_follow(e, path))?;
    own_regular(file, path)
}

/// Opens `path` to append, creating it `0600` if missing.
pub fn open_append(path: &Path) -> io::Result<File> {
    open_own(OpenOptions::new().create(true).append(true), path)
}

/// Opens an existing `path` to write (to cut it back or lock it), creating it
/// `0600` if `create`.
pub fn open_to_cut(path: &Path, create: bool) -> io::Result<File> {
    open_own(
        OpenOptions::new()
            .create(create)
            .write(true)
            .truncate(false),
        path,
    )
}

/// Reads `path`.
pub fn read_own(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_own(OpenOptions::new().read(true), path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates the new file `path`, `0600`: an existing file or symlink there is
/// an error (`O_EXCL`), never overwritten or followed.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{}: already exists; incsync creates this file new",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })
}

/// Writes `bytes` to `path` atomically: a new temporary file beside it
/// (`O_EXCL`; named after this process and a counter, a stale one of a
/// crashed process removed first), fsync, rename onto `path` (a symlink
/// there is replaced, never written through), and fsync of the directory.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    // A crashed process of the same PID may have left it; unlinking never
    // follows a link.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Makes a directory's entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn symlinks_are_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_append(&link).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(open_to_cut(&link, true).is_err());
        assert!(read_own(&link).is_err());
        let e = create_new(&link).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        replace(&link, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    #[test]
    fn only_a_private_real_directory_is_trusted() {
        let root = tempfile::tempdir().unwrap();
        let made = root.path().join("a/b");
        trusted_dir(&made).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = trusted_dir(&open).unwrap_err().to_string();
        assert!(e.contains("group or others may write"), "{e}");
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&made, &link).unwrap();
        let e = trusted_dir(&link).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
    }
}
