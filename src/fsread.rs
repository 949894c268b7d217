//! Reading a file maestro-sh depends on, safely: every file it reads (flags snapshot, local
//! policy, credentials, grant key, outbox entries, a script operand it inspects) goes through
//! here.
//!
//! The contract (issue 10, "Files are read safely"):
//! - opened with `O_NONBLOCK | O_CLOEXEC`, so a FIFO or a device never blocks the open and the
//!   descriptor never leaks into the command;
//! - with `O_NOFOLLOW` where a planted symlink could redirect the read ([`Follow::No`]: files in
//!   our own data dir — grant key, outbox entries). Files named by a variable the user sets
//!   (flags, policy, credentials) may be symlinks on purpose (dotfile managers, Nix, secrets
//!   mounts), so they follow ([`Follow::Yes`]); what they point at must still be a regular file;
//! - `fstat` on the open descriptor (no race with the path) must say "regular file": a FIFO,
//!   socket, device or directory is refused without reading a byte;
//! - capped: a file larger than the cap is refused (config) before it is read; the read itself
//!   also stops at the cap + 1 byte, so a file that grows meanwhile cannot make us read more.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Cap for configuration files (flags snapshot, local policy, credentials): 64 KiB. Real ones
/// are a few hundred bytes; a bigger one is a mistake (or an attack on start-up time).
pub const CONFIG_CAP: u64 = 64 * 1024;
/// Cap for a spooled outbox record: 1 MiB (a record carries a sanitized command of at most a
/// few hundred KiB).
pub const OUTBOX_CAP: u64 = 1024 * 1024;

/// Whether the last path component may be a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Files the user names on purpose (a variable); the target must be a regular file.
    Yes,
    /// Files in our own directories, where a planted symlink could redirect the read.
    No,
}

/// Why a file could not be read. The message names the file and says what to do.
#[derive(Debug)]
pub enum ReadError {
    Missing {
        path: PathBuf,
    },
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The last component is a symlink and [`Follow::No`] was asked for.
    Symlink {
        path: PathBuf,
    },
    NotRegular {
        path: PathBuf,
        kind: &'static str,
    },
    TooLarge {
        path: PathBuf,
        size: u64,
        cap: u64,
    },
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Missing { .. })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing { path } => write!(f, "{} does not exist", path.display()),
            ReadError::Open { path, source } => {
                write!(f, "cannot open {} ({source})", path.display())
            }
            ReadError::Symlink { path } => write!(
                f,
                "{} is a symbolic link, which maestro-sh does not follow here; delete it",
                path.display()
            ),
            ReadError::NotRegular { path, kind } => write!(
                f,
                "{} is a {kind}, not a regular file; refusing to read it (replace it with a regular file)",
                path.display()
            ),
            ReadError::TooLarge { path, size, cap } => write!(
                f,
                "{} is {size} bytes, over the {cap}-byte limit; refusing to read it (use a smaller file)",
                path.display()
            ),
            ReadError::Read { path, source } => {
                write!(f, "cannot read {} ({source})", path.display())
            }
        }
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for std::io::Error {
    fn from(e: ReadError) -> std::io::Error {
        let kind = match &e {
            ReadError::Missing { .. } => std::io::ErrorKind::NotFound,
            ReadError::Open { source, .. } | ReadError::Read { source, .. } => source.kind(),
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// What kind of non-regular file this is, in words.
pub fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Open `path` without blocking and check, on the descriptor, that it is a regular file.
/// The returned file is in blocking mode again (reads of a regular file never block anyway).
///
/// The path is `stat`ed first and never opened unless it names a regular file: opening a FIFO,
/// even without blocking, would release a writer blocked in its own `open` and then break its
/// pipe (and opening some devices has side effects). The descriptor is checked again after the
/// open, so a swap between the two cannot get a FIFO read either.
pub fn open_regular(path: &Path, follow: Follow) -> Result<(File, Metadata), ReadError> {
    let pre = match follow {
        Follow::Yes => std::fs::metadata(path),
        Follow::No => std::fs::symlink_metadata(path),
    };
    match pre {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::Missing { path: path.into() })
        }
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ReadError::Symlink { path: path.into() })
        }
        Ok(m) if !m.file_type().is_file() => {
            return Err(ReadError::NotRegular {
                path: path.into(),
                kind: kind_name(&m),
            })
        }
        // Permission problems and the like are reported by the open below.
        _ => {}
    }
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing { path: path.into() },
            // O_NOFOLLOW on a symlink: ELOOP.
            _ if source.raw_os_error() == Some(libc::ELOOP) && follow == Follow::No => {
                ReadError::Symlink { path: path.into() }
            }
            _ => ReadError::Open {
                path: path.into(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| ReadError::Read {
        path: path.into(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.into(),
            kind: kind_name(&meta),
        });
    }
    Ok((file, meta))
}

/// Read a whole regular file of at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64, follow: Follow) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_regular(path, follow)?;
    read_open(file, meta, path, cap)
}

/// Read a file [`open_regular`] returned (after the caller checked `meta`, e.g. permissions).
pub fn read_open(file: File, meta: Metadata, path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            path: path.into(),
            size: meta.len(),
            cap,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Read {
            path: path.into(),
            source,
        })?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.into(),
            size: buf.len() as u64,
            cap,
        });
    }
    Ok(buf)
}

/// [`read_capped`] for a configuration file named by a variable ([`CONFIG_CAP`], follows).
pub fn read_config(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_capped(path, CONFIG_CAP, Follow::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_file_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_config(&p).unwrap(), b"hello");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = Instant::now();
        let e = read_config(&p).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        let msg = e.to_string();
        assert!(msg.contains("FIFO") && msg.contains("fifo"), "{msg}");
    }

    #[test]
    fn device_directory_oversize_and_symlink() {
        let e = read_config(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        assert!(read_config(dir.path())
            .unwrap_err()
            .to_string()
            .contains("directory"));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        let e = read_capped(&big, 10, Follow::Yes).unwrap_err();
        assert!(
            e.to_string().contains("100 bytes, over the 10-byte limit"),
            "{e}"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(read_capped(&link, 1000, Follow::Yes).is_ok());
        let e = read_capped(&link, 1000, Follow::No).unwrap_err();
        assert!(matches!(e, ReadError::Symlink { .. }), "{e}");
        assert!(read_config(&dir.path().join("none"))
            .unwrap_err()
            .is_not_found());
    }
}
