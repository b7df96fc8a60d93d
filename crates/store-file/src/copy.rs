//! What a backup and an upgrade share: the new directory a copy of a store is written to. It is
//! refused when it exists or overlaps the source; it holds [`UNFINISHED_FILE`] from before
//! the first byte of the copy until the copy is whole and synced, so a copy a crash cut short
//! is refused by every open; and a copy that failed is removed.

use std::io;
use std::path::{Path, PathBuf};

use crate::vfs::Vfs;

/// The file a backup or an upgrade writes first in the copy's directory and removes once the
/// copy is whole: while it is there, every open refuses the directory
/// ([`OpenError::Unfinished`](crate::OpenError::Unfinished)), so a copy a crash cut short is
/// never taken for a store with fewer events.
pub const UNFINISHED_FILE: &str = "UNFINISHED";

/// Why a directory a copy of the store would be written to was refused; each caller turns it
/// into its own error.
pub(crate) enum Refused {
    /// What is wrong with the directory.
    Because(&'static str),
    /// It could not be looked at.
    Io(Failed),
}

/// An I/O failure while making a copy: what was being done, to which file.
pub(crate) struct Failed {
    pub(crate) operation: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) source: io::Error,
}

/// `FnOnce(io::Error) -> Failed` naming `operation` and `path`.
pub(crate) fn failed<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Failed + 'a {
    move |source| Failed { operation, path: path.to_path_buf(), source }
}

/// Refuses a destination that exists, lies inside the store `src` or holds it.
pub(crate) fn check_destination(vfs: &dyn Vfs, src: &Path, dest: &Path) -> Result<(), Refused> {
    let resolve = |path: &Path| vfs.canonicalize(path).map_err(|e| Refused::Io(failed("resolve", path)(e)));
    // A dangling link on the real file system exists too.
    if vfs.exists(dest) || dest.symlink_metadata().is_ok() {
        return Err(Refused::Because("exists; a copy never overwrites"));
    }
    let src = resolve(src)?;
    // The destination does not exist yet: resolve its parent.
    let parent = resolve(dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let dest = parent.join(dest.file_name().ok_or(Refused::Because("names no directory"))?);
    if dest.starts_with(&src) {
        return Err(Refused::Because("lies inside the store"));
    }
    if src.starts_with(&dest) {
        return Err(Refused::Because("holds the store"));
    }
    Ok(())
}

/// Makes the directory `dest` (checked by [`check_destination`]) with [`UNFINISHED_FILE`] in
/// it, durably, before anything else is written there: from here until [`finish`], a crash
/// leaves a directory every open refuses (before, `dest` is missing or empty after a crash:
/// no store either). `tool` names what writes the copy, in the marker's text.
pub(crate) fn begin(vfs: &dyn Vfs, dest: &Path, tool: &str) -> Result<(), Failed> {
    vfs.create_dir_all(dest).map_err(failed("create", dest))?;
    let text = format!(
        "{tool} is writing this copy of a store. While this file is here the copy is not whole: remove the \
         directory and make the copy again.\n"
    );
    write_synced(vfs, &dest.join(UNFINISHED_FILE), text.as_bytes())?;
    sync_dirs(vfs, dest)
}

/// Removes [`UNFINISHED_FILE`] from the copy in `dest`, every file of which is synced, and
/// makes that durable.
pub(crate) fn finish(vfs: &dyn Vfs, dest: &Path) -> Result<(), Failed> {
    let marker = dest.join(UNFINISHED_FILE);
    vfs.remove(&marker).map_err(failed("remove", &marker))?;
    sync_dirs(vfs, dest)
}

/// Syncs `dest` and its parent: the entries in it, and it.
fn sync_dirs(vfs: &dyn Vfs, dest: &Path) -> Result<(), Failed> {
    vfs.sync_dir(dest).map_err(failed("sync directory", dest))?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        vfs.sync_dir(parent).map_err(failed("sync directory", parent))?;
    }
    Ok(())
}

/// Removes a copy that failed: the files of `dest`, then `dest` (a directory [`begin`] made,
/// holding nothing else).
pub(crate) fn discard(vfs: &dyn Vfs, dest: &Path) {
    let removed = vfs
        .list(dest)
        .and_then(|names| names.iter().try_for_each(|name| vfs.remove(&dest.join(name))))
        .and_then(|()| vfs.remove_dir(dest));
    if let Err(e) = removed {
        tracing::warn!(error = %e, dest = %dest.display(), "the partial copy could not be removed");
    }
}

/// Writes `bytes` as the new file `to`, synced.
pub(crate) fn write_synced(vfs: &dyn Vfs, to: &Path, bytes: &[u8]) -> Result<(), Failed> {
    let mut f = vfs.open_append(to, true).map_err(failed("create", to))?;
    f.append(bytes).map_err(failed("write", to))?;
    f.sync_data().map_err(failed("sync", to))
}
