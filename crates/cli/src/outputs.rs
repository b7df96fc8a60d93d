//! Files the CLI writes (`--svg`, `--skip-invalid`) must never be the store's files or an
//! input: writing them would destroy data. They are told apart by identity (device and inode,
//! through links), not by name, before anything is written, and again on the opened file.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::anyhow;

use crate::{Failure, fail, shown};

/// A file's identity: its device and inode.
type Identity = (u64, u64);

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// What an output must not be.
pub(crate) struct Protected {
    /// The store directory, resolved (it may not exist yet: an import creates it).
    store: Option<PathBuf>,
    /// The inputs (an import's files, and standard input when `-` is one).
    inputs: Vec<PathBuf>,
    stdin: bool,
}

impl Protected {
    pub(crate) fn new(store: Option<&Path>, inputs: &[PathBuf]) -> Self {
        Self {
            store: store.map(resolve),
            inputs: inputs.iter().filter(|f| f.as_os_str() != "-").cloned().collect(),
            stdin: inputs.iter().any(|f| f.as_os_str() == "-"),
        }
    }

    /// Refuses `out` (given as `flag`) if it is, or would be, inside the store directory, or
    /// is one of the store's files or of the inputs. Call before anything is written.
    pub(crate) fn check(&self, flag: &str, out: &Path) -> Result<(), Failure> {
        let refuse = |why: String| Err(fail(2, anyhow!("{flag} {}: {why}", shown(out))));
        if let Some(store) = &self.store {
            let resolved = resolve(out);
            if resolved.starts_with(store) {
                return refuse(format!("is inside the store directory {}; write it elsewhere", shown(store)));
            }
        }
        match std::fs::metadata(out) {
            Ok(meta) => self.check_identity(&meta).or_else(&refuse),
            Err(_) => {
                // A new file: its directory must not be the store's (through links), nor
                // inside it.
                let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                match self.store_identity() {
                    Some(store) if ancestors_include(parent, store) => {
                        refuse("is inside the store directory; write it elsewhere".into())
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Opens `out` for writing, truncating it only once the opened file is known to be none of
    /// the protected ones (so a link swapped in after [`check`](Self::check) cannot redirect it).
    pub(crate) fn create(&self, flag: &str, out: &Path) -> Result<File, Failure> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(out)
            .map_err(|e| fail(1, anyhow!("{flag} {}: {e}", shown(out))))?;
        let meta = f.metadata().map_err(|e| fail(1, anyhow!("{flag} {}: {e}", shown(out))))?;
        if let Err(why) = self.check_identity(&meta) {
            return Err(fail(2, anyhow!("{flag} {}: {why}", shown(out))));
        }
        if meta.is_file() {
            f.set_len(0).map_err(|e| fail(1, anyhow!("{flag} {}: {e}", shown(out))))?;
        }
        Ok(f)
    }

    fn store_identity(&self) -> Option<Identity> {
        #[cfg(unix)]
        {
            self.store.as_ref().and_then(|s| std::fs::metadata(s).ok()).map(|m| identity(&m))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    /// Why a file with metadata `meta` must not be written, if it must not.
    fn check_identity(&self, meta: &std::fs::Metadata) -> Result<(), String> {
        #[cfg(unix)]
        {
            let id = identity(meta);
            if self.stdin && stdin_identity().is_some_and(|s| s == id) {
                return Err("is the standard input being imported; writing there would lose it".into());
            }
            for input in &self.inputs {
                if std::fs::metadata(input).is_ok_and(|m| identity(&m) == id) {
                    return Err(format!("is the input file {}; writing there would empty it", shown(input)));
                }
            }
            if let Some(store) = &self.store
                && let Ok(entries) = std::fs::read_dir(store)
            {
                if self.store_identity() == Some(id) {
                    return Err("is the store directory".into());
                }
                for entry in entries.flatten() {
                    if std::fs::metadata(entry.path()).is_ok_and(|m| identity(&m) == id) {
                        return Err(format!(
                            "is the store's file {} (through a link); writing there would destroy the store",
                            shown(&entry.path())
                        ));
                    }
                }
            }
            Ok(())
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok(())
        }
    }
}

/// Whether `dir` or any directory above it (after resolving links) is the directory `target`.
fn ancestors_include(dir: &Path, target: Identity) -> bool {
    #[cfg(unix)]
    {
        let dir = resolve(dir);
        dir.ancestors().any(|d| std::fs::metadata(d).is_ok_and(|m| identity(&m) == target))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, target);
        false
    }
}

/// `path` made absolute, with links resolved in the part that exists and `.` and `..` taken
/// lexically in the part that does not (as creating the missing directories would take them),
/// repeated until stable, since `..` can lead back into existing, linked directories.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let mut p = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for _ in 0..8 {
        let next = resolve_once(&p);
        if next == p {
            break;
        }
        p = next;
    }
    p
}

fn resolve_once(path: &Path) -> PathBuf {
    // The longest prefix that exists, canonicalized; the rest appended lexically.
    let components: Vec<Component<'_>> = path.components().collect();
    for cut in (0..=components.len()).rev() {
        let head: PathBuf = components[..cut].iter().collect();
        let Ok(mut out) = head.canonicalize() else { continue };
        for c in &components[cut..] {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other.as_os_str()),
            }
        }
        return out;
    }
    path.to_path_buf()
}

/// The identity of standard input, when it is a file, pipe or terminal.
#[cfg(unix)]
fn stdin_identity() -> Option<Identity> {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    File::from(fd).metadata().ok().map(|m| identity(&m))
}
